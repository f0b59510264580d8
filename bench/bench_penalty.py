"""A full WGAN-GP critic step (critic on real and fake, the gradient penalty, the parameter gradients) with fastgan
against eager PyTorch, and torch.compile's attempt.

    pytest bench/bench_penalty.py --device cpu --benchmark-min-rounds 5 [--fastgan-save]

Groups `wgan-gp-step-<critic>`: 'mlp' = MLPCritic 784-1024-1024-1 (lrelu 0.2) at B = 128, 'joint-D' = the BiGAN
paper's D(x, z) (784 + 50 -> 1024 -> 1024 (parameter-free BN) -> 1) at B = 128.
  eager    the textbook step on the eager twin: D(real), D(fake), x_hat, autograd.grad(create_graph=True), penalty,
           autograd.grad of the loss w.r.t. the parameters.
  compile  the same with torch.compile(critic): aot_autograd cannot run the double backward; the case records the
           error (xfail with the message) instead of hiding it.
  fastgan  fastgan.wgan_critic_loss: for the MLP one fused pass (layers once over [real; fake; x_hat], x_hat's first
           GEMM interpolated from real's and fake's, the penalty's gradients by GEMMs with the masks); for D(x, z)
           critic(real), critic(fake) and the generic double backward through joint_linear ops (without the inner
           weight gradients).
Floor (mlp, measured GEMM rate): the step's GEMM FLOPs, with S = sum of the layers' in x out and S1 the first's:
forward real + fake 4BS, their parameter and hidden-input gradients 4BS + 4B(S - S1), the penalty's forward, input
gradient chain and parameter-gradient chain 8BS  ->  (20 S - 4 S1) B (the fused path's first-layer interpolation
saves 2 B S1 of it, so it can pass 100%).
"""
from __future__ import annotations

import pytest
import torch

import fastgan
from fastgan.benchmarking import flop_floor_s, sync
from fastgan.nn import BiGANDiscriminator, MLPCritic

OP = ("bias_act", "joint_linear")  # the MLP critic's layers, D(x, z)'s joint layers
B, X, Z, H = 128, 784, 50, 1024
WARMUP = 2


def eager_penalty(critic, real, fake, eps, weight=10.0):
    pts = [(f + eps.view(-1, 1) * (r - f)).requires_grad_(True) for r, f in zip(real, fake)]
    grads = torch.autograd.grad(critic(*pts).sum(), pts, create_graph=True)
    flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads], 1)
    return weight * ((flat.norm(dim=1) - 1) ** 2).mean()


def make_critic(name, impl, device):
    torch.manual_seed(0)
    eager = impl in ("eager", "compile")
    if name == "mlp":
        return MLPCritic(X, hidden=(H, H), eager=eager).to(device)
    return BiGANDiscriminator(X, Z, hidden=H, eager=eager).to(device)


def floor_s(name, device) -> float:
    dims = [X, H, H, 1]
    if name != "mlp":
        dims = [X + Z, H + Z, H + Z, 1]  # z enters every layer
    sizes = [a * b for a, b in zip(dims[:-1], dims[1:])]
    return flop_floor_s((20 * sum(sizes) - 4 * sizes[0]) * B, device)


@pytest.mark.parametrize("name", ["mlp", "joint-D"])
def test_wgan_gp_step(measure, device, impl, name):
    critic = make_critic(name, impl, device)
    params = list(critic.parameters())
    gen = torch.Generator(device=device).manual_seed(0)
    real = (torch.randn(B, X, generator=gen, device=device),)
    fake = (torch.randn(B, X, generator=gen, device=device),)
    if name != "mlp":
        real += (torch.randn(B, Z, generator=gen, device=device),)
        fake += (torch.randn(B, Z, generator=gen, device=device),)
    eps = torch.rand(B, generator=gen, device=device)

    if impl in ("eager", "compile"):
        net = torch.compile(critic) if impl == "compile" else critic

        def step():
            loss = net(*fake).mean() - net(*real).mean() + eager_penalty(net, real, fake, eps)
            return torch.autograd.grad(loss, params, allow_unused=True)
    else:
        backend = impl.removeprefix("fastgan-")

        def step():
            with fastgan.use_backend(backend):  # the nets run on the backend in force
                loss = fastgan.wgan_critic_loss(critic, real, fake).loss
                return torch.autograd.grad(loss, params, allow_unused=True)

    def run():
        out = step()
        sync(device)
        return out

    measure(run, group=f"wgan-gp-step-{name}-B{B}", warmup=WARMUP, compile_fails="the WGAN-GP step",
            floor_s=lambda: floor_s(name, device), items=B, unit="samples", critic=name, B=B,
            floor="step GEMM FLOPs / gemm_rate")
