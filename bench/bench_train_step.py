"""One training iteration of a trainer recipe (the networks' forward, every gradient, every optimiser step) with
fastgan's fused networks against their eager twins and torch.compile of the twins — the trainer's own step code
(fastgan.train.recipes) in every case, so only the networks differ.

    pytest bench/bench_train_step.py --device cpu --benchmark-min-rounds 5 [--fastgan-save]

Group `train-step-<model>-B128`, one per recipe (fastgan.train.RECIPES), each with its own defaults (optimiser,
update mode, n_critic: one iteration of wgan / wgan-gp / mmdgan is 5 critic steps and a generator step) on the
networks of permutation-invariant MNIST (paper appendix C.1: x 784, z 50, hidden 1024), B = 128 for every recipe.
`bigan`: D(x, z) with z at every layer, G, E, alternating updates (the default since issue 15: a D step, then G and E
from a fresh forward through the updated D; results before 2026-12-02 measured the one-forward simultaneous step).
  eager     the eager twins (torch ops)
  compile   torch.compile of each eager twin (first-order step: compile can run it)
  fastgan   the fused nets (joint_linear in D, bias_act fused into every hidden layer)
Floor: the GEMM FLOPs of the eager step (counted with torch.utils.flop_counter's formulas,
fastgan.benchmarking.GemmFlops, on the eager twin's step: the work any implementation of these networks does) at the
GEMM rate measured in this run.

Group `train-step-gan-dcgan-B128` (issue 18): `gan --arch dcgan`, the DCGAN-style conv G and D (fastgan.nn.dcgan,
base width 32: 32-64-128-256, batch norm as the recipe trains them) on the same 28 x 28 rows padded to 32 x 32;
see test_train_step_gan_dcgan for its floor and prediction.

`train-step-began-B128` (issue 18; from the RECIPES parametrisation): BEGAN's alternating iteration on the MLPs with
the recipe's defaults (batch norm in hidden layer 2 of every net, as on images): a D step (G(z) without grad; the
autoencoder D = dec(enc(.)), 784-1024-1024-50-1024-1024-784, on the real and the fake batch; D's gradients; the k_t
update, a few 0-d tensor ops, no host sync), then G's step through the updated D. Floor: the eager step's GEMM FLOPs
(9.3 GFLOP counted: ~4.7 G multiply-adds) at the measured GEMM rate. Prediction (written before the first run): eager
at 55-70 % of the floor like ae-l1 and gan (2026-12-01); fastgan 1.05-1.2x eager (hidden layer 1 of each of the three
nets has its bias and activation in one bias_act pass, forward and backward; after the batch norm only the
activation is fused; the GEMMs are the same); torch.compile 0.9-1.1x eager. Measured (--fastgan-quick, 2-core AMD
EPYC, 18 rounds): eager 52.9 ms, 49.5 % of the 26.2 ms floor; fastgan-cpp 0.91x eager, compile 0.88x: the
prediction missed on fastgan's side, as for bigan and the f-GANs in the 2026-12-01 results (eager's addmm takes the
bias inside the GEMM, so fusing it into bias_act saves no pass here).

Measured again with the issue-18 steps (2026-12-02, quiet 2-core Intel Xeon VM, torch threads 2; GEMM rate 349
GFLOP/s; bench/results/intel-xeon-2c-2026-12-02.md), median ms, fastgan vs eager / vs compile: began 57.3 (0.89x /
1.06x; eager 51.1 at 52 % of the floor); `gan --arch dcgan` 212 (0.99x / 1.10x: inside its 0.95-1.1x prediction,
peak memory 47.7 MB against eager's 55.6); wae-mmd 18.0 (1.20x / 1.33x: its latent MMD^2 is one fused kernel sum
where the eager twin builds the kernel matrices, peak 15.8 MB against 22.0).
"""
from __future__ import annotations

import pytest
import torch

from fastgan.benchmarking import GemmFlops, flop_floor_s, sync
from fastgan.data import DataSplit
from fastgan.ops import OPS
from fastgan.train import RECIPES, config_for
from fastgan.train.recipes import StepContext
from fastgan.train.trainer import make_optimizers

OP = tuple(OPS)  # a recipe's step may run any op (mmdgan: kernel_sum; improved: minibatch_discrimination)
B, X, Z, H = 128, 784, 50, 1024
# --fastgan-quick: the BiGAN, WGAN-GP and BEGAN steps; the main job's BiGAN in fp32 and bf16; no scaling curve
QUICK = {"model": ("bigan", "wgan-gp", "began"), "precision": ("fp32", "bf16"), "size": ()}
# how the cost grows (issue 29): a gan / bigan step over the batch at H = 1024 and over the width at B = 128
SCALE = [f"B{b}" for b in (32, 64, 128, 256, 512, 1024)] + [f"H{h}" for h in (256, 512, 2048)]
WARMUP = 3


def make_recipe(model: str, impl: str, device, **cfg):
    backend = "eager" if impl in ("eager", "compile") else impl.removeprefix("fastgan-")
    cfg = config_for(model, **{"steps": 1, "hidden": H, "z_dim": Z, "batch_size": B, "backend": backend,
                               "device": str(device), **cfg})
    b = cfg.batch_size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4 * b, X, generator=gen) * 2 - 1
    split = DataSplit("bench", x, None, x[:b], None, image_shape=(28, 28))
    torch.manual_seed(0)
    recipe = RECIPES[model](cfg, split, device)
    if impl == "compile":
        recipe.nets = {k: torch.compile(v) for k, v in recipe.nets.items()}
    ctx = StepContext(opts=make_optimizers(recipe, cfg))  # what the trainer hands the step (fp32, one process)
    return recipe, ctx, x[:b].to(device)


_FLOPS = {}


def step_flops(model: str, device, **cfg) -> int:
    key = (model, *sorted(cfg.items()))
    if key not in _FLOPS:
        recipe, ctx, x = make_recipe(model, "eager", device, **cfg)
        gen = torch.Generator(device=device).manual_seed(1)
        with GemmFlops() as counter:
            recipe.step(ctx, lambda: x, gen)
        _FLOPS[key] = counter.total
    return _FLOPS[key]


def _precision(precision: str, impl: str) -> str:
    """The group-name part of a precision (fp32: none, the names results before issue 29 have); bf16 compares eager
    and fastgan only (a torch.compile per recipe and precision would double the run's longest part)."""
    if precision != "fp32" and impl == "compile":
        pytest.skip(f"{precision}: eager and fastgan only (torch.compile is measured in fp32)")
    return "" if precision == "fp32" else f"-{precision}"


@pytest.mark.parametrize("precision", ("fp32", "bf16"))
@pytest.mark.parametrize("model", sorted(RECIPES))
def test_train_step(measure, device, impl, model, precision):
    """Every recipe's iteration on the MLPs, fp32 and under bf16 autocast (issue 29: the bf16 speed-up per recipe
    family beside fp32; the weight-clipped critics keep their fp32 sections inside bf16 autocast, as they train)."""
    _measure_step(measure, device, impl, model, f"train-step-{model}{_precision(precision, impl)}-B{B}",
                  f"eager step's GEMM FLOPs / gemm_rate({precision})", {}, precision=precision, hidden=H)


def _measure_step(measure, device, impl, model, group, floor, kw, precision="fp32", **info):
    """One training iteration of `model` (make_recipe(model, impl, device, **kw)) measured in `group`, its floor the
    eager step's FLOPs at the measured GEMM rate of the step's GEMM dtype. precision 'bf16': the iteration under bf16
    autocast, as the trainer runs `--precision bf16` (fp32 parameters and optimiser states)."""
    recipe, ctx, x = make_recipe(model, impl, device, **kw)
    gen = torch.Generator(device=device).manual_seed(1)
    half = {"bf16": torch.bfloat16}.get(precision)
    autocast = torch.autocast(torch.device(device).type, dtype=half, enabled=half is not None)

    def run():
        with autocast:
            out = recipe.step(ctx, lambda: x, gen)
        sync(device)
        return out

    gemm_dtype = half or torch.float32
    measure(run, group=group, warmup=WARMUP, compile_fails="the step",
            floor_s=lambda: flop_floor_s(step_flops(model, device, **kw), device, gemm_dtype), items=x.shape[0],
            unit="samples", model=model, B=x.shape[0], precision=precision,
            gflops=lambda: step_flops(model, device, **kw) / 1e9, floor=floor,
            **{k: (v(recipe) if callable(v) else v) for k, v in info.items()})


@pytest.mark.parametrize("precision", ("fp32", "bf16"))
@pytest.mark.parametrize("model", ("gan", "bigan"))
def test_train_step_mnist5k(measure, device, impl, model, precision):
    """The main job's iteration (issue 29): `fastgan train gan|bigan --data mnist5k` at its defaults -- R1 (gamma 1)
    on D's real inputs, one D forward serving the loss and the penalty, its double backward through bias_act and (the
    BiGAN's D) joint_linear -- in fp32 and under bf16 autocast. Floor: the eager step's GEMM FLOPs (the R1 double
    backward's included) at the GEMM rate of fp32 or bf16 measured in this run."""
    _measure_step(measure, device, impl, model, f"train-step-{model}-mnist5k-{precision}-B{B}",
                  f"eager step's GEMM FLOPs / gemm_rate({precision})", dict(data="mnist5k"), precision=precision,
                  hidden=H)


DCGAN = dict(arch="dcgan", hidden=None)  # hidden None: the conv nets' default base width (recipes.nets.DCGAN_BASE)


@pytest.mark.parametrize("precision", ("fp32", "bf16"))
def test_train_step_gan_dcgan(measure, device, impl, precision):
    """One `gan --arch dcgan` iteration (a D step on real and fake, then G through the updated D), B 128, z 50.

    Floor: the step's convolution and GEMM FLOPs (GemmFlops counts convolutions too: 30.8 GFLOP, 5.8x the MLP gan
    step's 5.3) at the measured GEMM rate. Prediction (written before the first run): fastgan ~1.0x eager
    (0.95-1.1x). bias_act saves one pass per layer at most: in the forward the eager conv adds its bias inside the
    conv kernel and the activation is one more pass either way; in the backward fastgan's pass yields the bias
    gradient with the input gradient, where eager's conv backward reduces the gradient once more for its bias; with
    batch norm (the recipe's default on images) the hidden layers have no bias at all. Those passes move ~16 k floats
    per image per net (~10 MB per step), milliseconds against a step of a few hundred ms of 5 x 5 convolutions on
    small channel counts (im2col GEMMs of K = 25 C_in, below the GEMM rate: expect 20-40 % of the floor).
    torch.compile: near eager too (it fuses batch norm and activation passes of the same small size).

    Re-measured after the nets' geometry changed (issue 18: three stride-2 layers at 32 x 32, from / to 4 x 4, where
    there were four down to 2 x 2): the step loses the 2 x 2 layer (the widest, 8 base channels) and G's projection
    grows; prediction written before the run: the same 0.95-1.1x eager and compile, the step ~30 % shorter. Outcome
    (bench/results/intel-xeon-2c-2026-12-02-dcgan4x4.md): 20.7 GFLOP (was 30.8), eager 121 ms (was 212: 43 %
    shorter); fastgan 0.92x eager / 1.05x compile in the pytest-benchmark run, 1.01x eager in an interleaved A/B
    right after it (the run order and the VM's drift, not the step: see the report's note)."""
    _measure_step(measure, device, impl, "gan", f"train-step-gan-dcgan{_precision(precision, impl)}-B{B}",
                  f"eager step's conv + GEMM FLOPs / gemm_rate({precision})", DCGAN, precision=precision,
                  arch="dcgan", base=lambda r: r.base)


@pytest.mark.parametrize("size", SCALE)
@pytest.mark.parametrize("precision", ("fp32", "bf16"))
@pytest.mark.parametrize("model", ("gan", "bigan"))
def test_train_step_scaling(measure, device, impl, model, precision, size):
    """How a step's cost grows (issue 29): `gan` / `bigan` at their mnist5k defaults (R1 on D), the batch from 32 to
    1024 at H = 1024 (`B<n>`) and the hidden width from 256 to 2048 at B = 128 (`H<n>`), fp32 and bf16 autocast,
    eager twins against fastgan (torch.compile is left out: a compile per size). The report draws samples / s and
    % of the GEMM floor against the batch and the width (bench/report.py, FAMILIES_STEP)."""
    if impl == "compile":
        pytest.skip("the scaling curves compare eager and fastgan (a torch.compile per size would dominate the run)")
    batch, hidden = (int(size[1:]), H) if size[0] == "B" else (B, int(size[1:]))
    _measure_step(measure, device, impl, model, f"train-step-scale-{model}-{precision}-{size}",
                  f"eager step's GEMM FLOPs / gemm_rate({precision})",
                  dict(data="mnist5k", batch_size=batch, hidden=hidden), precision=precision, hidden=hidden,
                  scale_axis="batch" if size[0] == "B" else "width")