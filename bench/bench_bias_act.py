"""fastgan.bias_act against the eager F.* composition and torch.compile of it (docs/design.md, "Benchmarks").

    pytest bench/bench_bias_act.py --device cpu --benchmark-min-rounds 5 [--fastgan-save]

Groups `bias_act-<shape>-<mode>`; in each, impl ∈ eager, compile, fastgan-<backend> (bench/conftest.py: the op's
backends that can run here); mode fwd (forward without autograd) or fwd+bwd (forward, then dx and db from a
preallocated gy). Every case records its byte floor, % of floor and peak memory in extra_info; bench/conftest.py adds
the speedups vs eager and vs compile of the same session at the end.
"""
from __future__ import annotations

import math

import pytest
import torch

import fastgan
from fastgan.benchmarking import byte_floor_s, make_step
from fastgan.ops.reference import bias_act_functional

OP = "bias_act"
# The op's arguments, resolved (the eager baseline takes numbers, not defaults): StyleGAN's lrelu layer.
DIM, ACT, ALPHA, GAIN, CLAMP = 1, "lrelu", 0.2, math.sqrt(2), 256.0
DTYPE = torch.float32

# name -> shape; the bias runs along dim 1. 32x256x32x32 fp32 is 33.5 MB per tensor, mostly DRAM-bound (but a CPU
# whose last-level cache holds the working set, e.g. a VM showing the host's 105 MB L3, can come near or beat the
# DRAM floor in fwd, whose x and y are 67 MB); 128x1024 is 0.5 MB, cache-resident, so its byte floor (from the DRAM
# copy bandwidth) can be beaten: there % floor above 100 means "faster than DRAM", and the case mostly measures
# per-call overhead.
SHAPES = {
    "32x256x32x32": (32, 256, 32, 32),
    "128x1024": (128, 1024),
}
MODES = ("fwd", "fwd+bwd")
WARMUP = 3  # untimed calls first: torch.compile compiles, the allocator reaches its steady state


def floor_bytes(shape, mode: str, itemsize: int) -> int:
    """Bytes a perfect fused implementation must move (N elements of x, C of b):

    fwd:     read x + write y                                                     + read b     = (2N + C) * itemsize
    fwd+bwd: fwd, then read gy + read the saved tensor (y, or x) + write dx          + write db  = (5N + 2C) * itemsize
             (db = sum of dx over all dims but DIM, reduced from dx in the same pass: no extra traffic)
    """
    n, c = math.prod(shape), shape[DIM]
    return (2 * n + c) * itemsize if mode == "fwd" else (5 * n + 2 * c) * itemsize


def make_op(impl: str):
    """(x, b) -> y for one implementation, all with the same resolved arguments."""
    if impl == "eager":
        return lambda x, b: bias_act_functional(x, b, DIM, ACT, ALPHA, GAIN, CLAMP)
    if impl == "compile":
        # A fresh torch.compile wrapper per case; dynamic=False: one specialised graph per shape, like a training loop
        # with fixed shapes. fwd (no_grad) and fwd+bwd (joint graph, partitioned) compile separately.
        f = torch.compile(bias_act_functional, dynamic=False)
        return lambda x, b: f(x, b, DIM, ACT, ALPHA, GAIN, CLAMP)
    backend = impl.removeprefix("fastgan-")
    return lambda x, b: fastgan.bias_act(x, b, DIM, ACT, ALPHA, GAIN, CLAMP, impl=backend)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_bias_act(measure, device, impl, shape_name, mode):
    shape = SHAPES[shape_name]
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(shape, generator=gen, device=device, dtype=DTYPE)
    b = torch.randn(shape[DIM], generator=gen, device=device, dtype=DTYPE)
    op = make_op(impl)
    gy = None
    if mode == "fwd+bwd":
        x.requires_grad_(True)
        b.requires_grad_(True)
        gy = torch.randn(shape, generator=gen, device=device, dtype=DTYPE)  # preallocated upstream gradient
    run = make_step(lambda: op(x, b), mode, [x, b], gy, device)
    nbytes = floor_bytes(shape, mode, x.element_size())
    measure(run, group=f"bias_act-{shape_name}-{mode}", warmup=WARMUP, floor_s=byte_floor_s(nbytes, device),
            items=math.prod(shape), unit="elements", shape=list(shape), dtype=str(DTYPE).removeprefix("torch."),
            act=ACT, mode=mode, floor_bytes=nbytes)
