"""fastgan.joint_linear (the BiGAN joint layer act(W x + U z + b)) against its eager twin and torch.compile.

    pytest bench/bench_joint_linear.py --device cpu --benchmark-min-rounds 9 [--fastgan-save]

Groups `joint_linear-N<N>-<mode>` (in 1024, zdim 50, out 1024, fp32, lrelu 0.2) and `joint_D-<mode>` (a joint
critic D(x, z): 784 -> 1024 -> 1024 -> 1 with z = 50 injected at every layer, B = 128). The floor of this
GEMM-bound layer is the time of its bare GEMMs alone, measured in the same run on preallocated outputs (fwd: x W^T and
z U^T; fwd+bwd adds dA W, dA U, dA^T x, dA^T z): `% floor` = GEMM time / case time, so >= 97% means within 1.03x of
the bare GEMMs. `saved_MB`: the bytes autograd saves for backward that are neither parameters nor the inputs (unique
storages) — for a stack, what the layers keep alive between forward and backward.
"""
from __future__ import annotations

import functools

import pytest
import torch

from fastgan.benchmarking import make_step, timeit
from fastgan.nn import EagerJointLinear, JointLinear

OP = "joint_linear"
IN, ZD, OUT, ALPHA = 1024, 50, 1024, 0.2
SIZES = (128, 4096)
MODES = ("fwd", "fwd+bwd")
WARMUP = 3


def make_layer(impl: str, in_f: int, out_f: int, act: str, device) -> torch.nn.Module:
    torch.manual_seed(0)
    if impl in ("eager", "compile"):
        return EagerJointLinear(in_f, ZD, out_f, act=act, alpha=ALPHA).to(device)
    return JointLinear(in_f, ZD, out_f, act=act, alpha=ALPHA, impl=impl.removeprefix("fastgan-")).to(device)


class Stack(torch.nn.Module):
    """D(x, z): joint layers with z injected at every layer, lrelu hidden, linear output."""

    def __init__(self, impl, sizes, device):
        super().__init__()
        acts = ["lrelu"] * (len(sizes) - 2) + ["linear"]
        self.layers = torch.nn.ModuleList(make_layer(impl, i, o, a, device)
                                          for i, o, a in zip(sizes[:-1], sizes[1:], acts))

    def forward(self, x, z):
        for layer in self.layers:
            x = layer(x, z)
        return x


def saved_bytes(fn, exclude) -> int:
    """Bytes of the unique storages autograd saves during fn(), other than those of `exclude` tensors."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen = {}

    def pack(t):
        p = t.untyped_storage().data_ptr()
        if p not in skip:
            seen[p] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


@functools.lru_cache(maxsize=None)
def gemm_floor_s(dims: tuple, mode: str, device: torch.device) -> float:
    """Median time of the bare GEMMs of a stack of joint layers (dims = (N, in, out, ...)), preallocated outputs."""
    n, sizes = dims[0], dims[1:]
    g = torch.Generator(device=device).manual_seed(1)
    calls = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        x, z = torch.randn(n, i, generator=g, device=device), torch.randn(n, ZD, generator=g, device=device)
        w, u = torch.randn(o, i, generator=g, device=device), torch.randn(o, ZD, generator=g, device=device)
        da = torch.randn(n, o, generator=g, device=device)
        y = torch.empty(n, o, device=device)
        calls += [lambda x=x, w=w, y=y: torch.mm(x, w.t(), out=y), lambda z=z, u=u, y=y: y.addmm_(z, u.t())]
        if mode == "fwd+bwd":
            dx, dz = torch.empty(n, i, device=device), torch.empty(n, ZD, device=device)
            dw, du = torch.empty(o, i, device=device), torch.empty(o, ZD, device=device)
            calls += [lambda da=da, w=w, dx=dx: torch.mm(da, w, out=dx),
                      lambda da=da, u=u, dz=dz: torch.mm(da, u, out=dz),
                      lambda da=da, x=x, dw=dw: torch.mm(da.t(), x, out=dw),
                      lambda da=da, z=z, du=du: torch.mm(da.t(), z, out=du)]

    def run():
        for c in calls:
            c()

    return timeit(run, warmup=3, reps=21, device=device).median


def _case(measure, device, impl, group, dims, mode):
    n, sizes = dims[0], dims[1:]
    net = Stack(impl, sizes, device) if len(sizes) > 2 else make_layer(impl, sizes[0], sizes[1], "lrelu", device)
    op = torch.compile(net, dynamic=False) if impl == "compile" else net
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, sizes[0], generator=g, device=device)
    z = torch.randn(n, ZD, generator=g, device=device)
    params = list(net.parameters())
    gy = None
    if mode == "fwd+bwd":
        x.requires_grad_(True)
        z.requires_grad_(True)
        gy = torch.randn(n, sizes[-1], generator=g, device=device)
    run = make_step(lambda: op(x, z), mode, [x, z] + params, gy, device)
    saved = {"saved_bytes": lambda: saved_bytes(lambda: op(x, z), [x, z] + params)} \
        if mode == "fwd+bwd" and impl != "compile" else {}
    measure(run, group=group, warmup=WARMUP, floor_s=lambda: gemm_floor_s(dims, mode, device), items=n,
            unit="samples", dims=list(dims), mode=mode, floor="bare GEMMs", **saved)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", SIZES)
def test_joint_linear(measure, device, impl, n, mode):
    _case(measure, device, impl, f"joint_linear-N{n}-{mode}", (n, IN, OUT), mode)


@pytest.mark.parametrize("mode", MODES)
def test_joint_critic(measure, device, impl, mode):
    _case(measure, device, impl, f"joint_D-784-1024-1024-1-B128-{mode}", (128, 784, 1024, 1024, 1), mode)
