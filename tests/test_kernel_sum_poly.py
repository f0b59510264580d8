"""kernel_sum / mmd2 with the polynomial kernel (g a.b + c)^p, a function of the dot product (KID's kernel with
g = 1 / d, c = 1, p = 3): values, first and second derivatives against the dense fp64 reference on every backend,
degrees 1 ... 4 and offsets (0 included), mixtures of scales, self-sums with and without the diagonal (whose pairs
count in every order here, unlike the distance kernels'), tile boundaries, odd / zero sizes, non-contiguous inputs,
every dtype; gradcheck / gradgradcheck fp64; the errors (opcheck with the poly arguments: test_kernel_sum.py)."""
import functools

import pytest
import torch
from conftest import IMPL_DEVICE, close, impl_params

import fastgan
from fastgan import backend
from fastgan.ops import reference

IMPLS = impl_params()
TRITON = impl_params(("triton",))
# (bandwidths = the scales g, weights, degree, offset); None: the defaults (1 / d, 1, 3, 1)
CONFIGS = [(None, None, None, None), ((0.3, 0.05), (1.0, -0.5), 2, 0.0), ((0.5,), None, 1, 2.5),
           ((0.2, 0.4, 0.1), (0.5, 1.0, 2.0), 4, 0.5)]


def _points(n, d, device, dtype, shift=0.0, noncontig=False):
    if noncontig:  # every other column of a wider tensor
        return (torch.randn(n, 2 * d, device=device, dtype=torch.float64)[:, ::2] + shift).to(dtype)
    return (torch.randn(n, d, device=device, dtype=torch.float64) + shift).to(dtype)


def _sum_and_grads(fn, leaves, orders=2):
    """(value, first derivatives, second derivatives along fixed random directions) of fn(*leaves)."""
    leaves = [t.detach().requires_grad_(True) for t in leaves]
    s = fn(*leaves)
    g1 = torch.autograd.grad(s, leaves, create_graph=orders > 1)
    if orders < 2:
        return [s.detach()] + [g.detach() for g in g1]
    gen = torch.Generator().manual_seed(7)
    dirs = [torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t) for t in leaves]
    g2 = torch.autograd.grad(sum((g.float() * v.float()).sum() for g, v in zip(g1, dirs)), leaves)
    return [s.detach()] + [g.detach() for g in g1] + [g.detach() for g in g2]


def _ref_args(d, bw, w, degree, offset):
    bw = (1.0 / max(d, 1),) if bw is None else bw
    return dict(kernel="poly", bandwidths=bw, weights=w or [1.0] * len(bw), degree=3 if degree is None else degree,
                offset=1.0 if offset is None else offset)


def _check(impl, x, y, dtype, cfg, diagonal=True, orders=2, what=""):
    bw, w, degree, offset = cfg
    fast = functools.partial(fastgan.kernel_sum, kernel="poly", bandwidths=bw, weights=w, diagonal=diagonal,
                             impl=impl, degree=degree, offset=offset)
    ref = functools.partial(reference.kernel_sum, diagonal=diagonal, **_ref_args(x.shape[1], bw, w, degree, offset))
    leaves = [x] if y is None else [x, y]
    got = _sum_and_grads((lambda a: fast(a)) if y is None else fast, leaves, orders)
    exp = _sum_and_grads((lambda a: ref(a, None)) if y is None else ref, leaves, orders)
    for k, (a, e) in enumerate(zip(got, exp)):
        close(a, e, dtype, f"#{k} (value, d1..., d2...) {what} cfg={cfg} self={y is None} diagonal={diagonal}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16],
                         ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("impl", IMPLS)
def test_poly_matches_reference(impl, dtype):
    device = IMPL_DEVICE[impl]
    interp = impl == "triton" and backend.triton_interpreter()
    shapes = [(7, 5, 3, False), (1, 1, 1, False), (0, 4, 3, False), (3, 2, 0, False), (9, 6, 5, True)]
    if not interp:
        shapes.append((33, 17, 2, False))
    if impl == "cpp" and dtype in (torch.float64, torch.float32):
        shapes.append((530, 517, 4, False))  # crosses the CPU kernel's 512-row tiles (a self-sum: 4 tiles)
    full = dtype in (torch.float64, torch.float32)
    configs = CONFIGS if full else CONFIGS[:1]
    for n, m, d, noncontig in shapes:
        x = _points(n, d, device, dtype, noncontig=noncontig)
        y = _points(m, d, device, dtype, shift=0.3)
        for cfg in configs if (n, m) != (530, 517) else CONFIGS[:2]:
            what = f"n={n} m={m} d={d} noncontig={noncontig}"
            orders = 2 if full else 1
            _check(impl, x, y, dtype, cfg, True, orders, what)
            for diagonal in (True, False):
                _check(impl, x, None, dtype, cfg, diagonal, orders, what)
            if interp:  # (the interpreter is slow: one configuration per shape beyond the first)
                configs = CONFIGS[:1]


@pytest.mark.parametrize("impl", IMPLS)
def test_poly_default_is_kid_kernel_and_mmd2(impl):
    device = IMPL_DEVICE[impl]
    x, y = _points(11, 4, device, torch.float64), _points(8, 4, device, torch.float64, shift=0.5)
    dense = (x @ y.T / 4 + 1) ** 3
    close(fastgan.kernel_sum(x, y, "poly", impl=impl), dense.sum(), torch.float64, "default poly = (x.y / d + 1)^3")
    kxx, kyy = (x @ x.T / 4 + 1) ** 3, (y @ y.T / 4 + 1) ** 3
    unbiased = ((kxx.sum() - kxx.diagonal().sum()) / (11 * 10) + (kyy.sum() - kyy.diagonal().sum()) / (8 * 7)
                - 2 * dense.mean())
    close(fastgan.mmd2(x, y, "poly", estimator="unbiased", impl=impl), unbiased, torch.float64, "unbiased mmd2")
    biased = kxx.mean() + kyy.mean() - 2 * dense.mean()
    close(fastgan.mmd2(x, y, "poly", impl=impl), biased, torch.float64, "biased mmd2")
    close(reference.mmd2_functional(x, y, "poly", (0.25,)), biased, torch.float64, "eager baseline")
    close(fastgan.nn.MMDLoss("poly", impl=impl)(x, y), biased, torch.float64, "MMDLoss('poly'): scale 1 / d per call")
    loss = fastgan.nn.MMDLoss("poly", (0.3,), degree=2, offset=0.5, estimator="unbiased", impl=impl)
    close(loss(x, y), fastgan.mmd2(x, y, "poly", (0.3,), estimator="unbiased", degree=2, offset=0.5,
                                   impl="reference"), torch.float64, "MMDLoss('poly', degree=2, offset=0.5)")
    for est in ("biased", "unbiased"):  # the mmd2 derivatives (through the three kernel sums) against the reference
        kw = dict(kernel="poly", bandwidths=(0.3,), degree=2, offset=0.5, estimator=est)
        got = _sum_and_grads(lambda a, b: fastgan.mmd2(a, b, impl=impl, **kw), [x, y])
        exp = _sum_and_grads(lambda a, b: fastgan.mmd2(a, b, impl="reference", **kw), [x, y])
        for k, (a, e) in enumerate(zip(got, exp)):
            close(a, e, torch.float64, f"mmd2 {est} #{k}")


@pytest.mark.parametrize("impl", IMPLS)
def test_poly_gradcheck_gradgradcheck_fp64(impl):
    device = IMPL_DEVICE[impl]
    x = _points(6, 3, device, torch.float64).requires_grad_(True)
    y = _points(5, 3, device, torch.float64, shift=0.4).requires_grad_(True)
    fast = impl == "triton" and backend.triton_interpreter()  # random projections under the slow interpreter
    kw = dict(kernel="poly", bandwidths=(0.4, 0.1), weights=(1.0, 0.5), degree=3, offset=1.0, impl=impl)
    for f, ins in ((lambda a, b: fastgan.kernel_sum(a, b, **kw), (x, y)),
                   (lambda a: fastgan.kernel_sum(a, None, diagonal=True, **kw), (x,)),
                   (lambda a: fastgan.kernel_sum(a, None, diagonal=False, **kw), (x,)),
                   (lambda a, b: fastgan.mmd2(a, b, estimator="unbiased", **kw), (x, y))):
        assert torch.autograd.gradcheck(f, ins, fast_mode=fast)
        assert torch.autograd.gradgradcheck(f, ins, fast_mode=fast)


@pytest.mark.parametrize("impl", TRITON)
def test_poly_triton_column_splits(impl, monkeypatch):
    """Uneven column splits of the Triton kernel (partials summed on the host) with the poly kernel's terms."""
    tk = pytest.importorskip("fastgan._triton.kernel_sum")
    monkeypatch.setattr(tk, "_SPLITS_OVERRIDE", 2)
    device = IMPL_DEVICE[impl]
    x, y = _points(20, 3, device, torch.float64), _points(37, 3, device, torch.float64, shift=0.2)
    _check(impl, x, y, torch.float64, CONFIGS[1], what="2 splits")
    _check(impl, y, None, torch.float64, CONFIGS[0], diagonal=True, what="2 splits")


@pytest.mark.parametrize("impl", IMPLS)
def test_poly_errors(impl):
    device = IMPL_DEVICE[impl]
    x, y = torch.randn(4, 3, device=device), torch.randn(5, 3, device=device)
    cases = [
        (lambda: fastgan.kernel_sum(x, y, "poly", degree=0, impl=impl), ValueError, r"degree: expected an int in \[1"),
        (lambda: fastgan.kernel_sum(x, y, "poly", degree=2.0, impl=impl), TypeError, "degree: expected an int"),
        (lambda: fastgan.kernel_sum(x, y, "poly", degree=True, impl=impl), TypeError, "degree: expected an int"),
        (lambda: fastgan.kernel_sum(x, y, "poly", offset=-1.0, impl=impl), ValueError,
         "offset: expected a number >= 0"),
        (lambda: fastgan.kernel_sum(x, y, "poly", offset=float("inf"), impl=impl), ValueError, "offset"),
        (lambda: fastgan.kernel_sum(x, y, "poly", bandwidths=(0.0,), impl=impl), ValueError, "bandwidths"),
        (lambda: fastgan.kernel_sum(x, y, "gaussian", degree=3, impl=impl), ValueError,
         "degree: only the 'poly' kernel takes a degree"),
        (lambda: fastgan.mmd2(x, y, "rq", offset=1.0, impl=impl), ValueError, "offset: only the 'poly' kernel"),
        (lambda: fastgan.mmd2(x, y, "poly", bandwidths="median", impl=impl), ValueError,
         "bandwidths='median': the poly kernel's parameters are scales of the dot product"),
        (lambda: fastgan.mmd_test(x, y, kernel="poly", impl=impl), ValueError, "bandwidths='median'"),
        (lambda: fastgan.kernel_sum(x, y, "poly", bandwidths="median", impl=impl), ValueError, "bandwidths="),
        (lambda: fastgan.nn.MMDLoss("gaussian", degree=2), ValueError, "degree: only the 'poly' kernel"),
        (lambda: fastgan.nn.MMDLoss("cubic"), ValueError, "kernel: expected one of"),
    ]
    if impl == "cpp":  # the op's own checks (the public function checks first)
        op = torch.ops.fastgan.kernel_sum
        cases += [
            (lambda: op(x, y, "poly", [1.0], [1.0], True, False, False, 0, 1.0), ValueError,
             r"degree: expected an integer in \[1, 64\] for the poly kernel, got 0"),
            (lambda: op(x, y, "poly", [1.0], [1.0], True, False, False, 3, -0.5), ValueError,
             "offset: expected a finite number >= 0 for the poly kernel"),
            (lambda: torch.ops.fastgan.kernel_sum_backward2(x, y, x, y, "poly", [1.0], [1.0], True, True, True, 65,
                                                              1.0), ValueError, "degree: expected an integer"),
        ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()
    # the other kernels ignore the op's degree / offset (the schema's defaults when not given)
    a = torch.ops.fastgan.kernel_sum(x.cpu(), y.cpu(), "gaussian", [1.0], [1.0], True, False, False)[0]
    b = torch.ops.fastgan.kernel_sum(x.cpu(), y.cpu(), "gaussian", [1.0], [1.0], True, False, False, 7, 9.0)[0]
    assert torch.equal(a, b)


@pytest.mark.parametrize("impl", IMPLS)
def test_poly_penalty_through_the_diagonal(impl):
    """A gradient penalty through a biased poly MMD: the self-sum's pairs (i, i) contribute to the second derivative
    (|x_i|^2 depends on x_i), unlike the distance kernels' (r2 = 0 there): the double backward matches the
    reference."""
    device = IMPL_DEVICE[impl]
    x, y = _points(5, 3, device, torch.float64), _points(4, 3, device, torch.float64, shift=1.0)
    x = x.requires_grad_(True)
    out = []
    for which in (impl, "reference"):
        s = fastgan.mmd2(x, y, "poly", bandwidths=(0.5,), estimator="biased", impl=which)
        (g,) = torch.autograd.grad(s, x, create_graph=True)
        (h,) = torch.autograd.grad(g.square().sum(), x)
        out.append(h)
    close(out[0], out[1], torch.float64, "d/dx |dMMD^2/dx|^2")
