"""fastgan.kernel_sum / mmd2 / mmd_test / MMDLoss against the dense reference: values, first and second derivatives
for every kernel, both estimators, self-sums with and without the diagonal, tile boundaries, odd and zero sizes,
non-contiguous inputs, every dtype; gradcheck / gradgradcheck fp64; opcheck; properties (hypothesis); the memory of
a large call (no timing); error paths."""
import functools
import importlib
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import IMPL_DEVICE, close, impl_params
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgan
from fastgan import backend
from fastgan.ops import reference

IMPLS = impl_params()
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
KERNELS = [("gaussian", (0.5, 1.0, 2.0, 4.0), None), ("rq", (0.2, 0.5, 1.0, 2.0, 5.0), None),
           ("imq", (1.0, 3.0), (0.5, 2.0)), ("laplacian", (0.7, 2.0), None), ("laplacian_l1", (1.5, 4.0), (1.0, 0.5))]
SMOOTH = ("gaussian", "rq", "imq")  # twice differentiable; the laplacians are first order only
dtype_ids = functools.partial(lambda d: str(d).split(".")[-1])


def _points(n, d, device, dtype, shift=0.0, noncontig=False):
    if noncontig:  # every other column of a wider tensor
        return (torch.randn(n, 2 * d, device=device, dtype=torch.float64)[:, ::2] + shift).to(dtype)
    return (torch.randn(n, d, device=device, dtype=torch.float64) + shift).to(dtype)


def _sum_and_grads(fn, x, y, orders=2):
    """(value, [dS/dx, dS/dy], [d<g, dS/dx...>/dx, ...]) with a fixed random cotangent for the second order."""
    leaves = [x] if y is None else [x, y]
    leaves = [t.detach().requires_grad_(True) for t in leaves]  # not clone: that would make a strided view contiguous
    s = fn(*leaves) if y is not None else fn(leaves[0])
    g1 = torch.autograd.grad(s, leaves, create_graph=orders > 1)
    if orders < 2:
        return s.detach(), [g.detach() for g in g1], []
    gen = torch.Generator().manual_seed(7)
    dirs = [torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t) for t in leaves]
    g2 = torch.autograd.grad(sum((g.float() * v.float()).sum() for g, v in zip(g1, dirs)), leaves)
    return s.detach(), [g.detach() for g in g1], [g.detach() for g in g2]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_ids)
@pytest.mark.parametrize("impl", IMPLS)
def test_kernel_sum_matches_reference(impl, dtype):
    device = IMPL_DEVICE[impl]
    shapes = [(7, 5, 3, False), (1, 1, 1, False), (0, 4, 3, False), (33, 17, 1, False), (9, 6, 5, True)]
    if dtype in (torch.float64, torch.float32) and impl == "cpp":  # (the interpreter's tiles are 16: 33 crosses them)
        shapes.append((530, 517, 6, False))  # crosses the CPU kernel's 512-row tiles (a self-sum: 4 tiles)
    for n, m, d, noncontig in shapes:
        for kernel, bw, w in KERNELS:
            x = _points(n, d, device, dtype, noncontig=noncontig)
            y = _points(m, d, device, dtype, shift=0.3)
            for y_arg, diagonal in ((y, True), (None, True), (None, False)):
                what = f"{kernel} n={n} m={m} d={d} self={y_arg is None} diagonal={diagonal} noncontig={noncontig}"
                orders = 2 if dtype in (torch.float64, torch.float32) and kernel in SMOOTH else 1
                fast = functools.partial(fastgan.kernel_sum, kernel=kernel, bandwidths=bw, weights=w,
                                         diagonal=diagonal, impl=impl)
                ref = functools.partial(reference.kernel_sum, kernel=kernel, bandwidths=bw,
                                        weights=w or [1.0] * len(bw), diagonal=diagonal)
                if y_arg is None:
                    got = _sum_and_grads(lambda a: fast(a), x, None, orders)
                    exp = _sum_and_grads(lambda a: ref(a, None), x, None, orders)
                else:
                    got = _sum_and_grads(fast, x, y_arg, orders)
                    exp = _sum_and_grads(ref, x, y_arg, orders)
                close(got[0], exp[0], dtype, f"value {what}")
                for k, (a, e) in enumerate(zip(got[1] + got[2], exp[1] + exp[2])):
                    close(a, e, dtype, f"derivative #{k} {what}")


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=dtype_ids)
@pytest.mark.parametrize("impl", IMPLS)
def test_mmd2_matches_reference_and_eager(impl, dtype, estimator):
    device = IMPL_DEVICE[impl]
    for kernel, bw, w in KERNELS:
        x, y = _points(40, 5, device, dtype), _points(23, 5, device, dtype, shift=0.5)
        kw = dict(kernel=kernel, bandwidths=bw, weights=w, estimator=estimator)
        orders = 2 if kernel in SMOOTH else 1
        got = _sum_and_grads(lambda a, b: fastgan.mmd2(a, b, impl=impl, **kw), x, y, orders)
        exp = _sum_and_grads(lambda a, b: fastgan.mmd2(a, b, impl="reference", **kw), x, y, orders)
        close(got[0], exp[0], dtype, f"mmd2 {kernel}")
        for k, (a, e) in enumerate(zip(got[1] + got[2], exp[1] + exp[2])):
            close(a, e, dtype, f"mmd2 derivative #{k} {kernel}")
        if dtype == torch.float64:  # the eager cdist formulation (the benchmark baseline) agrees too
            close(reference.mmd2_functional(x, y, **kw), exp[0], dtype, f"eager mmd2 {kernel}")


@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_gradgradcheck_fp64(impl):
    device = IMPL_DEVICE[impl]
    x, y = _points(9, 3, device, torch.float64), _points(7, 3, device, torch.float64, shift=0.4)
    x, y = x.requires_grad_(True), y.requires_grad_(True)
    for kernel, bw, w in KERNELS:
        kw = dict(kernel=kernel, bandwidths=bw, weights=w, impl=impl)
        # the interpreter runs each of the many small launches slowly: there, compare random projections of the
        # Jacobians (fast_mode) instead of whole Jacobians
        fast = impl == "triton" and backend.triton_interpreter()
        for f, ins in ((lambda a, b: fastgan.kernel_sum(a, b, **kw), (x, y)),
                       (lambda a: fastgan.kernel_sum(a, None, diagonal=False, **kw), (x,)),
                       (lambda a, b: fastgan.mmd2(a, b, estimator="unbiased", **kw), (x, y))):
            assert torch.autograd.gradcheck(f, ins, fast_mode=fast)
            if kernel in SMOOTH:
                assert torch.autograd.gradgradcheck(f, ins, fast_mode=fast)
            else:
                with pytest.raises(NotImplementedError, match=f"second-order derivatives of the {kernel} kernel"):
                    torch.autograd.gradgradcheck(f, ins, fast_mode=fast)


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_distance_has_finite_gradients(impl):
    """Duplicated points (zero distance off the diagonal, and the diagonal itself) give finite, exact derivatives."""
    device = IMPL_DEVICE[impl]
    x = _points(5, 3, device, torch.float64)
    x = torch.cat([x, x[:2]])  # rows 5, 6 duplicate rows 0, 1
    for kernel, bw, w in KERNELS:
        for diagonal in (True, False):
            orders = 2 if kernel in SMOOTH else 1
            got = _sum_and_grads(lambda a: fastgan.kernel_sum(a, None, kernel, bw, w, diagonal, impl=impl), x, None,
                                 orders)
            exp = _sum_and_grads(lambda a: reference.kernel_sum(a, None, kernel, bw, w or [1.0] * len(bw),
                                                                 diagonal), x, None, orders)
            for a, e in zip([got[0]] + got[1] + got[2], [exp[0]] + exp[1] + exp[2]):
                assert torch.isfinite(a).all()
                close(a, e, torch.float64, f"{kernel} diagonal={diagonal}")


@pytest.mark.parametrize("impl", IMPLS)
def test_opcheck(impl):
    device = IMPL_DEVICE[impl]
    check = torch.library.opcheck
    ns = fastgan.ops.OPS["kernel_sum"].namespace(impl)  # defines the Triton ops on first use
    if impl == "triton" and backend.triton_interpreter():
        # the interpreter runs kernels eagerly, also on fake tensors: no fake/compile tracing there
        check = functools.partial(torch.library.opcheck, test_utils=("test_schema", "test_autograd_registration"))
    x = torch.randn(6, 3, device=device, requires_grad=True)
    y = torch.randn(5, 3, device=device, requires_grad=True)
    u, v = torch.randn(6, 3, device=device), torch.randn(5, 3, device=device)
    op, op2 = ns.kernel_sum.default, ns.kernel_sum_backward2.default
    for args in ((x, y, "gaussian", [1.0, 2.0], [1.0, 1.0], True, True, True),
                 (x, None, "imq", [1.0], [2.0], False, True, False),
                 (x.detach(), y.detach(), "rq", [0.5], [1.0], True, False, False),
                 (x, y, "poly", [0.5, 0.2], [1.0, 1.0], True, True, True, 3, 1.0),  # + degree, offset
                 (x, None, "poly", [1.0], [2.0], True, True, False, 2, 0.0),
                 (x.detach(), y.detach(), "poly", [0.5], [1.0], True, False, False, 1, 3.0)):
        check(op, args)
    for args in ((x.detach(), y.detach(), u, v, "gaussian", [1.0], [1.0], True, True),
                 (x.detach(), None, u, None, "rq", [1.0, 2.0], [1.0, 0.5], True, False),
                 (x.detach(), y.detach(), u, v, "poly", [0.3], [1.0], True, True, True, 3, 1.0),  # + diagonal, ...
                 (x.detach(), None, u, None, "poly", [1.0, 0.5], [1.0, 0.5], True, False, True, 4, 0.5),
                 (x.detach(), None, u, None, "poly", [1.0], [1.0], True, False, False, 2, 1.0)):
        check(op2, args)


@pytest.mark.parametrize("impl", IMPLS)
def test_third_order_raises(impl):
    x = torch.randn(5, 2, device=IMPL_DEVICE[impl], dtype=torch.float64, requires_grad=True)
    s = fastgan.kernel_sum(x, None, impl=impl)
    (g,) = torch.autograd.grad(s, x, create_graph=True)
    (h,) = torch.autograd.grad(g.square().sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="kernel_sum: third-order derivatives are not implemented"):
        torch.autograd.grad(h.sum(), x)


@pytest.mark.parametrize("impl", IMPLS)
def test_median_bandwidth_and_mmd_test(impl):
    device = IMPL_DEVICE[impl]
    x = torch.randn(60, 4, device=device, dtype=torch.float64)
    z = torch.cat([x, torch.randn(50, 4, device=device, dtype=torch.float64)])
    d = torch.cdist(z, z)
    iu = torch.triu_indices(len(z), len(z), 1)
    assert fastgan.median_bandwidth(x, z[60:]) == pytest.approx(d[iu[0], iu[1]].median().item(), rel=1e-12)
    big = torch.randn(3000, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)  # fixed draw
    # subsampled: deterministic, and near the population median sqrt(2) * sqrt(2 ln 2) of |a - b| for 2-d normals
    m1, m2 = fastgan.median_bandwidth(big), fastgan.median_bandwidth(big)
    assert m1 == m2 and m1 == pytest.approx(2 ** 0.5 * (2 * math.log(2)) ** 0.5, rel=0.05)
    # the same median as a 0-d tensor on the inputs' device, without gradient (no host sync: usable in a step)
    xf = x.float().requires_grad_()
    t = fastgan.median_distance(xf, z[60:].float())
    assert t.shape == () and t.device == xf.device and t.dtype == torch.float32 and not t.requires_grad
    assert t.item() == pytest.approx(fastgan.median_bandwidth(x, z[60:]), rel=1e-6)
    l1 = fastgan.median_distance(x, norm=1)
    assert l1.item() == pytest.approx(torch.pdist(x, p=1).median().item(), rel=1e-12)
    with pytest.raises(ValueError, match="norm: expected 1 or 2"):
        fastgan.median_distance(x, norm=3)
    perms = 19 if backend.triton_interpreter() and impl == "triton" else 40
    # under H0 the p-value is uniform: a check on random data would fail in 1 run of 10 at p > 0.1; the samples of
    # this check are fixed instead (their p-value is ~0.5; a broken statistic or permutation moves it)
    g0 = torch.Generator().manual_seed(12345)
    x0 = torch.randn(60, 4, generator=g0, dtype=torch.float64).to(device)
    same = fastgan.mmd_test(x0, torch.randn(50, 4, generator=g0, dtype=torch.float64).to(device), permutations=perms,
                            impl=impl)
    diff = fastgan.mmd_test(x, torch.randn(50, 4, device=device, dtype=torch.float64) + 1.0, permutations=perms,
                            impl=impl)
    assert diff.p_value == pytest.approx(1 / (perms + 1)) and diff.statistic > 0.05
    assert same.p_value > 0.1 and same.permutations == perms
    ref = fastgan.mmd2(x, z[60:], bandwidths=(fastgan.median_bandwidth(x, z[60:]),), estimator="unbiased",
                       impl="reference")
    got = fastgan.mmd2(x, z[60:], bandwidths="median", estimator="unbiased", impl=impl)
    close(got, ref, torch.float64, "mmd2 with the median bandwidth")


@pytest.mark.parametrize("impl", IMPLS)
def test_mmd_loss_module(impl):
    device = IMPL_DEVICE[impl]
    loss = fastgan.nn.MMDLoss(kernel="imq", bandwidths=(1.0, 2.0), estimator="unbiased", impl=impl)
    x = torch.randn(8, 2, 3, device=device, requires_grad=True)
    y = torch.randn(6, 6, device=device)
    out = loss(x, y)
    close(out, fastgan.mmd2(x.flatten(1), y, "imq", (1.0, 2.0), estimator="unbiased", impl="reference"),
          torch.float32, "MMDLoss")
    out.backward()
    assert x.grad.shape == x.shape and "imq" in repr(loss)
    assert list(loss.parameters()) == []


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 12), m=st.integers(2, 12), d=st.integers(1, 4), seed=st.integers(0, 2**16),
       kernel=st.sampled_from(["gaussian", "rq", "imq", "laplacian", "laplacian_l1"]))
def test_properties(n, m, d, seed, kernel):
    """Biased MMD^2 >= 0, MMD^2(x, x) = 0, symmetry, invariance to row permutations (fp64, C++ kernel)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, d, generator=g, dtype=torch.float64) * 1.5
    bw = (0.5, 1.0, 2.0)
    f = functools.partial(fastgan.mmd2, kernel=kernel, bandwidths=bw, impl="cpp")
    assert f(x, y).item() >= -1e-12
    assert abs(f(x, x).item()) <= 1e-12
    for est in ("biased", "unbiased"):
        a = f(x, y, estimator=est).item()
        assert f(y, x, estimator=est).item() == pytest.approx(a, abs=1e-12)
        assert f(x[torch.randperm(n, generator=g)], y[torch.randperm(m, generator=g)],
                 estimator=est).item() == pytest.approx(a, abs=1e-12)


def test_large_call_memory():
    """n = m = 65536, d = 64 (fp32, with both gradients): the op's extra memory stays under 256 MB (peak RSS growth
    of a fresh process; the dense kernel matrix alone would be 16 GiB)."""
    code = textwrap.dedent("""
        import resource, torch, fastgan
        torch.manual_seed(0)
        x = torch.randn(65536, 64, requires_grad=True)
        y = torch.randn(65536, 64, requires_grad=True)
        fastgan.kernel_sum(x[:600], y[:600], "imq", [8.0]).backward()  # warm up the allocator and BLAS buffers
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        s = fastgan.kernel_sum(x, y, "imq", [8.0], impl="cpp")
        s.backward()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) / 1024.0, bool(torch.isfinite(x.grad).all()), s.item())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    assert out.returncode == 0, out.stderr
    grown_mb, finite, value = out.stdout.split()
    assert finite == "True" and float(value) > 0
    assert float(grown_mb) < 256.0, f"peak RSS grew by {grown_mb} MB"


@pytest.mark.parametrize("impl", IMPLS)
def test_errors(impl):
    device = IMPL_DEVICE[impl]
    x, y = torch.randn(4, 3, device=device), torch.randn(5, 3, device=device)
    cases = [
        (lambda: fastgan.kernel_sum(x, torch.randn(5, 2, device=device), impl=impl), ValueError,
         "y: expected 3 features like x"),
        (lambda: fastgan.kernel_sum(torch.randn(4, 3, 2, device=device), impl=impl), ValueError,
         r"x: expected a 2-d tensor of shape \(n, d\)"),
        (lambda: fastgan.kernel_sum(x, y.double(), impl=impl), TypeError, "y: expected dtype torch.float32"),
        (lambda: fastgan.kernel_sum(x.long(), impl=impl), TypeError, "x: expected a floating tensor"),
        (lambda: fastgan.kernel_sum(x, y, kernel="laplace", impl=impl), ValueError, "kernel: expected one of"),
        (lambda: fastgan.kernel_sum(x, y, bandwidths=(1.0, -2.0), impl=impl), ValueError,
         "bandwidths: expected numbers > 0"),
        (lambda: fastgan.kernel_sum(x, y, bandwidths=(), impl=impl), ValueError, "bandwidths: expected a non-empty"),
        (lambda: fastgan.kernel_sum(x, y, bandwidths=(1.0, 2.0), weights=(1.0,), impl=impl), ValueError,
         "weights: expected 2 weights"),
        (lambda: fastgan.kernel_sum(x, y, bandwidths=(float("nan"),), impl=impl), ValueError, "bandwidths"),
        (lambda: fastgan.mmd2(x[:1], y, estimator="unbiased", impl=impl), ValueError,
         "x: the unbiased estimator needs at least 2 samples, got 1"),
        (lambda: fastgan.mmd2(x, y[:0], impl=impl), ValueError, "y: the biased estimator needs at least 1 samples"),
        (lambda: fastgan.mmd2(x, y, estimator="mle", impl=impl), ValueError, "estimator: expected 'biased'"),
        (lambda: fastgan.mmd2(x, y, kernel="rq", bandwidths="median", impl=impl), ValueError,
         "the rq kernel's parameters are shape exponents"),
        (lambda: fastgan.mmd2(x, y, bandwidths="mean", impl=impl), ValueError, "or 'median'"),
        (lambda: fastgan.mmd2(torch.zeros(4, 3), torch.zeros(5, 3), bandwidths="median", impl=impl), ValueError,
         "median pairwise distance is 0"),
        (lambda: fastgan.mmd_test(x, y, permutations=0, impl=impl), ValueError, "permutations: expected an int >= 1"),
        (lambda: fastgan.kernel_sum(x.cpu(), y.cpu(), impl="cuda"), RuntimeError, "impl='cuda' cannot run"),
        (lambda: fastgan.kernel_sum(x, y, bandwidths=[1.0] * 17, impl=impl), ValueError,
         "bandwidths: expected at most 16 bandwidths, got 17"),
        (lambda: torch.ops.fastgan.kernel_sum(x, y, "gaussian", [1.0] * 17, [1.0] * 17, True, False, False),
         ValueError, "bandwidths: expected at most 16 bandwidths, got 17"),
        (lambda: torch.ops.fastgan.kernel_sum(x, y, "gaussian", [1.0], [], True, False, False), ValueError,
         "weights: expected 1 weights"),
        (lambda: torch.ops.fastgan.kernel_sum(x, y, "cauchy", [1.0], [1.0], True, False, False), ValueError,
         "kernel: expected 'gaussian', 'rq', 'imq', 'laplacian', 'laplacian_l1' or 'poly'"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()
    xr = x.clone().requires_grad_(True)  # the raw op called with its gradient flags off: a clear error, not zeros
    with pytest.raises(RuntimeError, match="grad_x / grad_y flag was False"):
        torch.ops.fastgan.kernel_sum(xr, y, "gaussian", [1.0], [1.0], True, False, False)[0].backward()


@pytest.mark.parametrize("impl", IMPLS)
def test_half_inputs_sum_in_fp32(impl):
    """fp16 / bf16 samples: the kernel sums come back in fp32 (n m terms of ~5 each overflow fp16 at n = 200) and
    MMD^2 matches the fp64 reference of the same (rounded) samples."""
    device = IMPL_DEVICE[impl]
    n = 200 if impl == "cpp" else 40
    for dtype in (torch.float16, torch.bfloat16):
        x = torch.randn(n, 2, device=device).to(dtype)
        y = (torch.randn(n, 2, device=device) + 0.5).to(dtype)
        s = fastgan.kernel_sum(x, None, impl=impl)
        assert s.dtype == torch.float32 and torch.isfinite(s)
        got = fastgan.mmd2(x, y, impl=impl)
        exp = fastgan.mmd2(x.double(), y.double(), impl="reference")
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), exp, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_nan_propagates(impl):
    device = IMPL_DEVICE[impl]
    for kernel in ("gaussian", "laplacian", "laplacian_l1"):
        x = torch.randn(5, 3, device=device, dtype=torch.float64)
        x[2, 1] = float("nan")
        x.requires_grad_(True)
        y = torch.randn(4, 3, device=device, dtype=torch.float64)
        for fn in (lambda a: fastgan.kernel_sum(a, y, kernel, (1.0,), impl=impl),
                   lambda a: reference.kernel_sum(a, y, kernel, (1.0,), (1.0,), True)):
            s = fn(x)
            (g,) = torch.autograd.grad(s, x)
            assert torch.isnan(s), kernel
            assert torch.isnan(g[2]).any(), kernel


def test_autocast_promotes_mixed_dtypes():
    """Under autocast a half-precision generator output meets an fp32 data batch: mmd2 / kernel_sum promote both
    to fp32 (outside autocast mixed dtypes stay an error)."""
    x, y = torch.randn(20, 3), torch.randn(17, 3)
    want = fastgan.mmd2(x.bfloat16().float(), y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fastgan.mmd2(x.bfloat16(), y)
        assert fastgan.kernel_sum(y, x.bfloat16()).dtype == torch.float32
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    with pytest.raises(TypeError, match="y: expected dtype"):
        fastgan.mmd2(x.bfloat16(), y)


# ---- the Triton kernels' 2-D grid (row blocks x column splits), their scalar parameters, their static variants ----
TRITON = impl_params(("triton",))


@pytest.mark.parametrize("splits", [2, 3, 32])
@pytest.mark.parametrize("impl", TRITON)
def test_triton_column_splits(impl, splits, monkeypatch):
    """Forced split counts (even, uneven: 4 column tiles of 16 over 3 splits, capped at the tiles) give the reference's
    values and first and second derivatives, bit-identical from run to run (fixed-order reduction, no atomics)."""
    tk = importlib.import_module("fastgan._triton.kernel_sum")
    monkeypatch.setattr(tk, "_SPLITS_OVERRIDE", splits)
    device = IMPL_DEVICE[impl]
    x, y = _points(37, 5, device, torch.float64), _points(50, 5, device, torch.float64, shift=0.3)
    for kernel, bw, w in (KERNELS[0], KERNELS[2], KERNELS[3]):
        orders = 2 if kernel in SMOOTH else 1
        for y_arg, diagonal in ((y, True), (None, False)):
            fast = functools.partial(fastgan.kernel_sum, kernel=kernel, bandwidths=bw, weights=w, diagonal=diagonal,
                                     impl=impl)
            ref = functools.partial(reference.kernel_sum, kernel=kernel, bandwidths=bw, weights=w or [1.0] * len(bw),
                                    diagonal=diagonal)
            ins = (x, y_arg) if y_arg is not None else (x, None)
            got = _sum_and_grads(fast if y_arg is not None else (lambda a: fast(a)), *ins, orders)
            again = _sum_and_grads(fast if y_arg is not None else (lambda a: fast(a)), *ins, orders)
            exp = _sum_and_grads(ref if y_arg is not None else (lambda a: ref(a, None)), *ins, orders)
            what = f"{kernel} splits={splits} self={y_arg is None}"
            for a, b, e in zip([got[0]] + got[1] + got[2], [again[0]] + again[1] + again[2],
                               [exp[0]] + exp[1] + exp[2]):
                close(a, e, torch.float64, what)
                assert torch.equal(a, b), f"{what}: not deterministic"


@pytest.mark.parametrize("impl", TRITON)
def test_triton_many_bandwidths_and_no_host_tensors(impl, monkeypatch):
    """More bandwidths than one launch takes (NS_MAX) are summed over launches; the parameters travel as scalar
    kernel arguments: no tensor is built from Python numbers on the way (a pageable copy + sync on CUDA)."""
    tk = importlib.import_module("fastgan._triton.kernel_sum")
    device = IMPL_DEVICE[impl]
    bw = tuple(0.25 * (k + 1) for k in range(tk.NS_MAX + 3))
    w = tuple(1.0 / (k + 1) for k in range(len(bw)))
    x, y = _points(20, 3, device, torch.float64), _points(17, 3, device, torch.float64, shift=0.2)
    exp = _sum_and_grads(lambda a, b: reference.kernel_sum(a, b, "gaussian", bw, w, True), x, y, 2)

    def no_tensor(*args, **kwargs):
        raise AssertionError("torch.tensor called in the Triton launch path")

    monkeypatch.setattr(tk.torch, "tensor", no_tensor)
    got = _sum_and_grads(lambda a, b: fastgan.kernel_sum(a, b, "gaussian", bw, w, impl=impl), x, y, 2)
    monkeypatch.undo()
    for a, e in zip([got[0]] + got[1] + got[2], [exp[0]] + exp[1] + exp[2]):
        close(a, e, torch.float64, f"{len(bw)} bandwidths")


def test_triton_static_variants_contract():
    """static_variants(): the report's contract, from the launcher's own pick_config; at the H100 benchmark batches
    (n = 256 ... 1024) every grid is at least one wave of 132 programs with <= 32 splits."""
    tk = pytest.importorskip("fastgan._triton.kernel_sum")
    variants = list(tk.static_variants())
    assert variants and any(v["hot"] for v in variants) and any(not v["hot"] for v in variants)
    by_name = {}
    for v in variants:
        assert {"name", "kernel", "signature", "constexprs", "options", "grid", "shape", "hot"} <= set(v)
        assert v["kernel"] is tk._pair_kernel and isinstance(v["name"], str) and isinstance(v["shape"], str)
        assert set(v["signature"]) == set(tk._pair_kernel.arg_names)
        assert all(v["signature"][k] == "constexpr" for k in v["constexprs"])
        assert set(v["options"]) == {"num_warps", "num_stages"}
        assert len(v["grid"]) == 2 and all(isinstance(g, int) and g >= 1 for g in v["grid"])
        assert v["grid"][1] <= tk.MAX_SPLITS
        key = (repr(v["signature"]), repr(v["constexprs"]), repr(v["options"]))
        assert by_name.setdefault(v["name"], key) == key, f"{v['name']}: one name, two compiles"
        n = int(v["shape"].split("n=m=")[1].split()[0])
        if 256 <= n <= 1024:
            assert v["grid"][0] * v["grid"][1] >= tk.H100_SMS, v
    # the launcher's choice is the report's: the same function, the same answer
    cfg = tk.pick_config(512, 512, 64, torch.float32, 0, 1)
    v = next(v for v in variants if v["shape"].startswith("n=m=512 d=64 ") and v["hot"]
             and v["constexprs"]["MODE"] == 1 and v["constexprs"]["KERNEL"] == 0)
    assert v["grid"] == (triton_cdiv(512, cfg.bm), cfg.splits) and v["constexprs"]["BM"] == cfg.bm
    assert cfg.splits > 1  # this shape needs the column splits for a full wave


def triton_cdiv(a, b):
    return -(-a // b)
