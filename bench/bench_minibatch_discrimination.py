"""The minibatch discrimination layer (f T, then the pairwise part) against the eager broadcast formulation and
torch.compile of it.

    pytest bench/bench_minibatch_discrimination.py --device cpu --benchmark-min-rounds 5 [--fastgan-save]

Groups `minibatch_discrimination-B<B>-fwd+bwd`: A = 1024 input features, K = 100 kernels of C = 5 dims, fp32; forward
and the gradients w.r.t. f and T from a preallocated upstream gradient. Floor (measured in this run): the three GEMMs of
the projection (forward, d f, d T: 6 B A K C flops) at the measured GEMM rate, plus one exp per distinct pair and kernel
(B (B + 1) / 2 * K) at the measured exp rate (the pairs' |differences| ride along in the same pass).
"""
from __future__ import annotations

import pytest
import torch

from fastgan.benchmarking import exp_rate, flop_floor_s, make_step
from fastgan.nn import MinibatchDiscrimination
from fastgan.ops.reference import minibatch_discrimination_functional

OP = "minibatch_discrimination"
A, K, C = 1024, 100, 5
SIZES = (64, 256, 1024)
WARMUP = 2


def floor_s(b: int, device) -> float:
    return flop_floor_s(6 * b * A * K * C, device) + (b * (b + 1) / 2) * K / exp_rate(device)


@pytest.mark.parametrize("b", SIZES)
def test_minibatch_discrimination(measure, device, impl, b):
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(A, K, C, impl=None if impl in ("eager", "compile") else
                                    impl.removeprefix("fastgan-")).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    f = torch.randn(b, A, generator=gen, device=device, requires_grad=True)
    gy = torch.randn(b, A + K, generator=gen, device=device)
    if impl == "eager":
        op = lambda: minibatch_discrimination_functional(f, layer.T, K, C)  # noqa: E731
    elif impl == "compile":
        fn = torch.compile(minibatch_discrimination_functional, dynamic=False)
        op = lambda: fn(f, layer.T, K, C)  # noqa: E731
    else:
        op = lambda: layer(f)  # noqa: E731
    run = make_step(op, "fwd+bwd", [f, layer.T], gy, device)
    measure(run, group=f"minibatch_discrimination-B{b}-fwd+bwd", warmup=WARMUP, floor_s=lambda: floor_s(b, device),
            items=b, unit="samples", B=b, A=A, K=K, C=C, mode="fwd+bwd",
            floor="6 B A K C / gemm_rate + B(B+1)/2 K / exp_rate")
