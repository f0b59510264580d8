"""Bring your own model: a user's plain-torch DCGAN (the examples' nets, examples/byo_models.py) as it is, compiled,
and after `fastgan.fuse` — what fuse buys on a model fastgan did not write.

    pytest bench/bench_byo.py --device cpu --benchmark-min-rounds 5 [--fastgan-save]

Sizes: batch 64, 32 x 32 images with one channel (the examples' digits), base width 64 (DCGAN's 64-128-256), z 64.
  eager     the plain model (nn.Conv2d / ConvTranspose2d with their bias, BatchNorm2d, torch activations)
  compile   torch.compile of the plain model (inductor)
  fastgan   fastgan.fuse(plain model, impl=<backend>): every Conv + activation pair whose conv has a bias becomes the
            convolution without bias + one bias_act (batch norm between them ends a pair: with batch norm only D's
            conv1 + LeakyReLU and G's output ConvTranspose2d + Tanh are fused; without it all 3 of D's and 4 of G's)

Groups `byo-dcgan-<net>-B64-fwd+bwd`, net G | D (batch norm in the hidden layers, the DCGAN way) | G-nobn | D-nobn (no
batch norm: every layer keeps its bias): the forward in training mode, then the gradients of every parameter
(autograd.grad with a fixed upstream gradient, fastgan.benchmarking.make_step).
Group `byo-wgan-gp-critic-step-B64`: the WGAN-GP critic step on D-nobn (torch's default initialisation, as in the
critic_penalty example): loss E[D(fake)] - E[D(real)] + 10 E[(|grad D(x_hat)| - 1)^2], then the parameter gradients.
eager and compile: the hand-written penalty (examples/byo_models.hand_written_penalty: autograd.grad with
create_graph=True); fastgan: fastgan.wgan_critic_loss on the fused critic (the generic double backward, the inner
gradient without the weight gradients). torch.compile cannot run the double backward (aot_autograd refuses it): its
case records the error (xfail).

Floor: the convolution FLOPs of the eager case (fastgan.benchmarking.GemmFlops on one eager call: the work any
implementation of these nets does) at the GEMM rate measured in this run. Counted by hand (multiply-adds per image:
D 0.26 M + 8.4 M + 8.4 M + 4 k = 17.1 M; G 0.26 M + 8.4 M + 8.4 M + 0.26 M = 17.3 M): fwd+bwd is about 3x the
forward's 2 x 64 x 17 M = 2.2 GFLOP, ~6.5 GFLOP (no input gradient for the first layer); the critic step ~26 GFLOP
(three forwards, the inner input gradient, its backward (two convolutions per layer), and the backward of the real
and fake forwards). At the ~170 GFLOP/s the 2-core AMD EPYC measured on 2026-12-01: ~38 ms and ~150 ms.

Prediction (written before this benchmark's first run; the examples had been run on the same machine while it was
loaded, with the same outcome, which is not a result): fuse buys next to nothing here on the CPU. A fused pair saves at
most one pass over the layer's output per training step: forward, both compute conv (eager adds its bias inside the
convolution kernel) then one activation pass; backward, fastgan reduces the bias gradient in the same pass as the
input gradient, where eager's convolution backward reads the gradient once more for it. The largest activation is
64 x 64 x 16 x 16 fp32 = 4 MB (D's conv1, G's deconv3): with all pairs fused ~10 MB of ~30 GB/s traffic, ~0.3 ms of
a step of tens of ms of small-channel convolutions. So: fastgan 0.95-1.05x eager in every group (noise), G and D
with batch norm the same as without; eager at 30-60 % of the floor (4 x 4 convolutions on 64-256 channels). The
critic step: fastgan 0.9-1.1x eager (the penalty's double backward through bias_act's backward op against torch's
leaky_relu_backward; the inner gradient skips the weight gradients in both). torch.compile: 0.95-1.2x eager on the
batch-norm nets (inductor fuses batch norm's and the activation's elementwise passes), ~1.0x without batch norm; its
critic step fails (xfail).

Measured (2026-12-02, quiet 2-core Intel Xeon VM, torch threads 2, `python -m bench run --device cpu -k "byo or ..."`;
bench/results/intel-xeon-2c-2026-12-02.md; GEMM rate 349 GFLOP/s in that run), median ms, fastgan vs eager / vs
compile: D 33.0 (1.02x / 1.14x), D-nobn 30.5 (1.01x / 1.40x), G 39.3 (0.93x / 0.94x), G-nobn 35.1 (0.98x / 1.02x);
eager at 52-61 % of the floor; the critic step 135 ms against eager's 126 (0.93x; compile xfailed as predicted).
Peak memory: the fused D 21.0 MB against eager's 25.2 (the activation's output is not kept twice). Outcome: the
prediction held for D, D-nobn, G-nobn and the critic step; G with batch norm, 0.93x, is just below its band (two
fused pairs there, its output layer's ConvTranspose2d + Tanh the larger: fastgan's tanh pass plus the separate
transposed convolution without bias lose ~3 ms to eager's bias-inside-the-conv); torch.compile was slower than eager
on every net here (0.72-0.98x), not faster as predicted for the batch-norm nets.
"""
from __future__ import annotations

import pytest
import torch

import fastgan
from examples.byo_models import Discriminator, generator, hand_written_penalty
from fastgan.benchmarking import GemmFlops, flop_floor_s, make_step, sync

OP = "bias_act"  # what a fused layer runs
B, BASE, Z, SIZE = 64, 64, 64, 32
NETS = ("G", "D", "G-nobn", "D-nobn")
QUICK = {"net": ("G", "D")}  # --fastgan-quick: the DCGAN as written (with batch norm); the critic step always runs
WARMUP = 2


def build(net: str, device) -> torch.nn.Module:
    torch.manual_seed(0)
    batch_norm = not net.endswith("-nobn")
    if net.startswith("G"):
        return generator(z_dim=Z, base=BASE, batch_norm=batch_norm).to(device)
    return Discriminator(base=BASE, batch_norm=batch_norm).to(device)


def for_impl(model: torch.nn.Module, impl: str):
    """(the module to run, how many layers fuse fused): the plain model, torch.compile of it, or fuse's copy."""
    if impl == "eager":
        return model, 0
    if impl == "compile":
        return torch.compile(model), 0
    fused, report = fastgan.fuse(model, impl=impl.removeprefix("fastgan-"), report=True)
    return fused, len(report.fused)


_FLOPS: dict = {}


def eager_flops(key: str, run) -> int:
    """The convolution FLOPs of one eager call of run() (counted once per case)."""
    if key not in _FLOPS:
        with GemmFlops() as counter:
            run()
        _FLOPS[key] = counter.total
    return _FLOPS[key]


@pytest.mark.parametrize("net", NETS)
def test_dcgan_fwd_bwd(measure, device, impl, net):
    model = build(net, device)
    gen = torch.Generator(device=device).manual_seed(1)
    x = torch.randn(B, Z, generator=gen, device=device) if net.startswith("G") else \
        torch.rand(B, 1, SIZE, SIZE, generator=gen, device=device) * 2 - 1
    plain_params = list(model.parameters())
    gy = torch.randn_like(model(x).detach())
    eager_run = make_step(lambda: model(x), "fwd+bwd", plain_params, gy, device)
    runner, fused = for_impl(model, impl)
    params = list(runner.parameters())  # fuse's copy has its own Parameter objects
    run = make_step(lambda: runner(x), "fwd+bwd", params, gy, device)
    key = f"dcgan-{net}"
    measure(run, group=f"byo-dcgan-{net}-B{B}-fwd+bwd", warmup=WARMUP, compile_fails="the model's fwd+bwd",
            floor_s=lambda: flop_floor_s(eager_flops(key, eager_run), device), items=B, unit="samples", net=net, B=B,
            base=BASE, size=SIZE, fused_layers=fused, gflops=lambda: eager_flops(key, eager_run) / 1e9,
            mode="fwd+bwd", floor="eager fwd+bwd conv FLOPs / gemm_rate")


def test_wgan_gp_critic_step(measure, device, impl):
    torch.manual_seed(0)
    critic = Discriminator(base=BASE, batch_norm=False, init="torch").to(device)
    gen = torch.Generator(device=device).manual_seed(1)
    real = torch.rand(B, 1, SIZE, SIZE, generator=gen, device=device) * 2 - 1
    fake = torch.rand(B, 1, SIZE, SIZE, generator=gen, device=device) * 2 - 1
    eps = torch.rand(B, generator=gen, device=device)

    def hand_written_step(net, params):
        loss = net(fake).mean() - net(real).mean() + hand_written_penalty(net, real, fake, eps)
        out = torch.autograd.grad(loss, params)
        sync(device)
        return out

    plain_params = list(critic.parameters())
    runner, fused = for_impl(critic, impl)
    params = list(runner.parameters())
    if impl in ("eager", "compile"):
        def run():
            return hand_written_step(runner, params)
    else:
        def run():
            out = torch.autograd.grad(fastgan.wgan_critic_loss(runner, real, fake, eps=eps).loss, params)
            sync(device)
            return out

    def flops():
        return eager_flops("wgan-gp-critic-step", lambda: hand_written_step(critic, plain_params))

    measure(run, group=f"byo-wgan-gp-critic-step-B{B}", warmup=WARMUP, compile_fails="the WGAN-GP critic step",
            floor_s=lambda: flop_floor_s(flops(), device), items=B, unit="samples", net="D-nobn", B=B, base=BASE,
            size=SIZE, fused_layers=fused, gflops=lambda: flops() / 1e9,
            floor="eager step conv FLOPs (incl. the double backward) / gemm_rate")
