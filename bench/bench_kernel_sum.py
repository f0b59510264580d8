"""fastgan.mmd2 (tiled pair reductions, no n x m matrix) against the eager cdist formulation and torch.compile of it.

    pytest bench/bench_kernel_sum.py --device cpu --benchmark-min-rounds 5 [--fastgan-save]

Groups `mmd2-n<n>-d<d>-fwd+bwd`: the biased MMD^2 of two fp32 samples of n rows each with a 5-bandwidth gaussian
mixture (1, 2, 4, 8, 16 times sqrt(d): distances grow like sqrt(d)), then its gradients w.r.t. both. The dense
baselines run where their n x n matrices fit (n <= EAGER_MAX_N); at larger n only fastgan runs, so the groups over n
give the time and peak-memory curve.

Floor (measured in this run): the distinct pairs P = n(n+1)/2 + m(m+1)/2 + nm (symmetry of k(x, x) and k(y, y)),
each needing its distance (2d flops) and, for the gradients, two d-vector accumulations (4d flops) at the measured
GEMM rate, plus one exp per bandwidth at the measured exp rate: floor = 6 d P / gemm_rate + 5 P / exp_rate.
It is the floor of the straightforward method, not a bound on every method: on the CPU fastgan's vectorised exp is
faster than torch.exp (the rate measured) and, for bandwidths in a geometric progression, 3 of the 5 exponentials
become squarings, so "% floor" can exceed 100%.

One case of the polynomial kernel, `mmd2-poly-n1000-d256-fwd`: KID's computation per subset (the unbiased MMD^2 with
(x.y / d + 1)^3 of two sets of 1000 feature vectors, forward only, fp32 here; fastgan.metrics.kid runs it in fp64).
Floor: the distinct pairs' dot products, 2 d P flops at the GEMM rate (the cube is a few multiplications per pair).
No prediction was written before its first run. Measured (2026-12-02, quiet 2-core Intel Xeon, torch threads 2;
bench/results/intel-xeon-2c-2026-12-02-poly.md), median ms: eager (dense kernel matrices) 8.99, torch.compile 5.25,
fastgan-cpp 6.12 -- 1.47x eager but 0.86x compile, at 48 % of the floor; peak memory 1.1 MB against eager's 24.0 and
compile's 4.0.
"""
from __future__ import annotations

import math

import pytest
import torch

import fastgan
from fastgan.benchmarking import exp_rate, flop_floor_s, make_step
from fastgan.ops.reference import mmd2_functional

OP = "kernel_sum"  # mmd2's kernel
CASES = [(1024, 64), (4096, 64), (16384, 64), (1024, 784), (4096, 784)]
MULTIPLIERS = (1.0, 2.0, 4.0, 8.0, 16.0)
EAGER_MAX_N = 4096
WARMUP = 2


def floor_s(n: int, m: int, d: int, nbw: int, device) -> float:
    pairs = n * (n + 1) / 2 + m * (m + 1) / 2 + n * m
    return flop_floor_s(6 * d * pairs, device) + pairs * nbw / exp_rate(device)


def make_op(impl: str, bandwidths):
    kw = dict(kernel="gaussian", bandwidths=bandwidths, estimator="biased")
    if impl == "eager":
        return lambda x, y: mmd2_functional(x, y, **kw)
    if impl == "compile":
        f = torch.compile(mmd2_functional, dynamic=False)
        return lambda x, y: f(x, y, **kw)
    backend = impl.removeprefix("fastgan-")
    return lambda x, y: fastgan.mmd2(x, y, impl=backend, **kw)


@pytest.mark.parametrize("n,d", CASES, ids=[f"n{n}-d{d}" for n, d in CASES])
def test_mmd2(measure, device, impl, n, d):
    if impl in ("eager", "compile") and n > EAGER_MAX_N:
        pytest.skip(f"{impl}: its {n} x {n} kernel matrices (and their autograd copies) do not fit comfortably")
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, d, generator=gen, device=device, requires_grad=True)
    y = (torch.randn(n, d, generator=gen, device=device) * 1.1 + 0.1).requires_grad_(True)
    bandwidths = tuple(mult * math.sqrt(d) for mult in MULTIPLIERS)
    op = make_op(impl, bandwidths)
    gy = torch.ones((), device=device)
    run = make_step(lambda: op(x, y), "fwd+bwd", [x, y], gy, device)
    measure(run, group=f"mmd2-n{n}-d{d}-fwd+bwd", warmup=WARMUP,
            floor_s=lambda: floor_s(n, n, d, len(bandwidths), device), items=2 * n, unit="samples", n=n, m=n, d=d,
            kernel="gaussian", bandwidths=list(bandwidths), mode="fwd+bwd", floor="6 d P / gemm_rate + 5 P / exp_rate")


POLY_CASE = (1000, 256)


def make_poly_op(impl: str):
    kw = dict(kernel="poly", bandwidths=(1.0 / POLY_CASE[1],), estimator="unbiased")
    if impl == "eager":
        return lambda x, y: mmd2_functional(x, y, **kw)
    if impl == "compile":
        f = torch.compile(mmd2_functional, dynamic=False)
        return lambda x, y: f(x, y, **kw)
    return lambda x, y: fastgan.mmd2(x, y, impl=impl.removeprefix("fastgan-"), **kw)


def test_mmd2_poly(measure, device, impl):
    n, d = POLY_CASE
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, d, generator=gen, device=device)
    y = torch.randn(n, d, generator=gen, device=device) * 1.1 + 0.1
    op = make_poly_op(impl)
    run = make_step(lambda: op(x, y), "fwd", [x, y], None, device)
    pairs = n * (n + 1) / 2 * 2 + n * n
    measure(run, group=f"mmd2-poly-n{n}-d{d}-fwd", warmup=WARMUP, floor_s=lambda: flop_floor_s(2 * d * pairs, device),
            items=2 * n, unit="samples", n=n, m=n, d=d, kernel="poly", bandwidths=[1.0 / d], mode="fwd",
            floor="2 d P / gemm_rate")
