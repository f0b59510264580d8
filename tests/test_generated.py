"""Generated inputs for the ops (issue 31): hypothesis draws the shapes (zero and one included), the layouts
(contiguous, permuted, sliced with a step, expanded from size 1, channels-last), the dtypes, the bias, which inputs
require grad, and values with NaN, infinities, +-1e30 and denormals mixed in. Every case must equal the reference
(forward; backward where every input is finite; NaN where the reference has NaN) or raise a clear
TypeError / ValueError / RuntimeError naming the argument -- never crash, hang or differ silently.

Examples per test: FASTGAN_HYPOTHESIS_EXAMPLES (default 40, what CI runs; `python -m tests.faults` is the long fault
suite, `FASTGAN_HYPOTHESIS_EXAMPLES=1000 pytest tests/test_generated.py` the long run of this one).
"""
from __future__ import annotations

import math
import os

import pytest
import torch
from conftest import IMPL_DEVICE, TOL, impl_params
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastgan
from fastgan.activations import ACTIVATIONS
from fastgan.ops import reference

EXAMPLES = int(os.environ.get("FASTGAN_HYPOTHESIS_EXAMPLES", "40"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FLOATS = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
SPECIAL = [float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 1e-40, -1e-40, 0.0, -0.0]
# Triton's interpreter (3.9, CPU) converts bf16 subnormals to fp32 wrongly (9.2e-41 -> 0, 1.0e-39 -> 4.4e-39: a plain
# load / .to(tl.float32) / store kernel shows it, tests/test_generated.py's history); the GPU conversion is exact.
# Under the interpreter bf16 draws no subnormals.
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@st.composite
def tensors(draw, shape, dtype, specials: bool, subnormals: bool = True):
    """A tensor of `shape` and `dtype` in one of the layouts, maybe with special values in it."""
    layout = draw(st.sampled_from(["contiguous", "permuted", "sliced", "expanded", "channels-last"]))
    if layout == "channels-last" and len(shape) != 4:
        layout = "contiguous"
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if layout == "permuted" and len(shape) >= 2:
        perm = list(reversed(range(len(shape))))
        t = torch.randn([shape[p] for p in perm], generator=gen, dtype=torch.float64).permute(perm)
    elif layout == "sliced" and len(shape) >= 1:
        big = list(shape)
        big[-1] = 2 * shape[-1]
        t = torch.randn(big, generator=gen, dtype=torch.float64)[..., ::2]
    elif layout == "expanded" and len(shape) >= 1 and shape[0] > 1:
        t = torch.randn([1, *shape[1:]], generator=gen, dtype=torch.float64).expand(*shape)
    else:
        t = torch.randn(shape, generator=gen, dtype=torch.float64)
    t = (t * draw(st.sampled_from([1.0, 3.0, 1e-3]))).to(dtype)
    if layout == "channels-last":
        t = t.contiguous(memory_format=torch.channels_last)
    if specials and t.numel() and layout != "expanded":
        flat = t.view(-1) if t.is_contiguous() else None
        idx = draw(st.lists(st.integers(0, t.numel() - 1), max_size=4))
        pool = SPECIAL if subnormals else [v for v in SPECIAL if v == 0 or not 0 < abs(v) < 1e-38]
        vals = draw(st.lists(st.sampled_from(pool), min_size=len(idx), max_size=len(idx)))
        with torch.no_grad():
            for i, v in zip(idx, vals):
                if flat is not None:
                    flat[i] = v
                else:
                    t[tuple(torch.unravel_index(torch.tensor(i), t.shape))] = v
    return t


def _assert_like(actual, expected, dtype, what):
    tol = TOL[dtype]
    finite = torch.isfinite(expected)
    scale = max(1.0, expected[finite].abs().max().item()) if finite.any() else 1.0
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale, equal_nan=True,
                               msg=lambda m: f"{what}: {m}")


def _assert_within(actual, expected, magnitude, dtype, what):
    """|actual - expected| <= tol * max(1, magnitude) elementwise: a sum of products rounded in low precision errs in
    proportion to the sum of the products' magnitudes (`magnitude`: the same computation on absolute values), not to
    the result, which cancellation can make arbitrarily small."""
    tol = TOL[dtype]
    a, e, m = actual.double(), expected.double(), magnitude.double().clamp_min(1.0)
    bad = (a - e).abs() > tol * m
    if bad.any():
        i = bad.nonzero()[0].tolist()
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.numel()} elements beyond tol {tol} x magnitude; at "
                             f"{i}: {actual[tuple(i)].item()} vs {expected[tuple(i)].item()} (magnitude "
                             f"{magnitude[tuple(i)].item():.3g})")


def _clear_error(e: Exception, *names) -> bool:
    return isinstance(e, (TypeError, ValueError, RuntimeError)) and any(n in str(e) for n in names)


@pytest.mark.parametrize("impl", impl_params(("cpp", "triton", "cuda")))
@SETTINGS
@given(data=st.data())
def test_bias_act_on_generated_inputs(impl, data):
    dev = IMPL_DEVICE[impl]
    ndim = data.draw(st.integers(0, 4), label="ndim")
    shape = data.draw(st.lists(st.sampled_from([0, 1, 2, 3, 5]), min_size=ndim, max_size=ndim), label="shape")
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    act = data.draw(st.sampled_from(list(ACTIVATIONS)), label="act")
    specials = data.draw(st.booleans(), label="specials")
    subnormals = not (impl == "triton" and INTERPRETED and dtype == torch.bfloat16)
    x = data.draw(tensors(tuple(shape), dtype, specials, subnormals), label="x").to(dev)
    dim = data.draw(st.integers(-max(ndim, 1), max(ndim, 1) - 1), label="dim") if ndim else 0
    has_b = ndim > 0 and data.draw(st.booleans(), label="bias")
    b = torch.randn(shape[dim], dtype=dtype, device=dev) if has_b else None
    gain = data.draw(st.sampled_from([None, 1.0, 0.5, -2.0]), label="gain")
    clamp = data.draw(st.sampled_from([None, 0.7, 256.0]), label="clamp")
    grads = data.draw(st.sampled_from(["none", "x", "b", "both"]), label="requires_grad")
    xr = x.detach().clone().requires_grad_(grads in ("x", "both"))
    x0 = x.detach().requires_grad_(grads in ("x", "both"))  # detach keeps the layout under test
    br = None if b is None else b.detach().clone().requires_grad_(grads in ("b", "both"))
    b0 = None if b is None else b.detach().requires_grad_(grads in ("b", "both"))
    spec = ACTIVATIONS[act]
    y = fastgan.bias_act(x0, b0, dim, act, gain=gain, clamp=clamp, impl=impl)
    ref = reference.bias_act(xr, br, dim % max(ndim, 1), act, spec.default_alpha,
                             spec.default_gain if gain is None else gain, -1.0 if clamp is None else clamp)
    assert y.shape == x.shape and y.dtype == x.dtype
    _assert_like(y, ref, dtype, f"{act} forward")
    inputs = [(t, r) for t, r in ((x0, xr), (b0, br)) if t is not None and t.requires_grad]
    if inputs and y.numel() and torch.isfinite(x).all() and dtype != torch.float16:
        gy = torch.randn_like(ref)
        got = torch.autograd.grad(y, [t for t, _ in inputs], gy, retain_graph=True)
        want = torch.autograd.grad(ref, [r for _, r in inputs], gy, retain_graph=True)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            _assert_like(g, w, dtype, f"{act} backward")
        if dtype in (torch.float64, torch.float32):  # double backward: a penalty-like function of the gradients
            got = torch.autograd.grad(y, [t for t, _ in inputs], gy, create_graph=True)
            want = torch.autograd.grad(ref, [r for _, r in inputs], gy, create_graph=True)
            pg = sum((g * g).sum() for g in got)
            pw = sum((w * w).sum() for w in want)
            if pg.requires_grad and pw.requires_grad:
                got2 = torch.autograd.grad(pg, [t for t, _ in inputs], allow_unused=True)
                want2 = torch.autograd.grad(pw, [r for _, r in inputs], allow_unused=True)
                for g, w in zip(got2, want2):
                    if w is None or g is None:
                        assert (g is None or not g.any()) and (w is None or not w.any()), f"{act} double backward"
                        continue
                    _assert_like(g, w, dtype, f"{act} double backward")


@pytest.mark.parametrize("impl", impl_params(("cpp", "triton", "cuda")))
@SETTINGS
@given(data=st.data())
def test_bias_act_refuses_what_it_cannot_take(impl, data):
    dev = IMPL_DEVICE[impl]
    case = data.draw(st.sampled_from(["int x", "complex x", "bool x", "bias length", "bias 2-d", "bias dtype",
                                      "bias device", "dim", "act", "negative clamp", "nan gain"]), label="case")
    x = torch.randn(3, 4, device=dev)
    b = torch.zeros(4, device=dev)
    kw = dict(dim=1, act="lrelu")
    if case == "int x":
        x = torch.ones(3, 4, dtype=torch.int32, device=dev)
    elif case == "complex x":
        x = torch.ones(3, 4, dtype=torch.complex64, device=dev)
    elif case == "bool x":
        x = torch.ones(3, 4, dtype=torch.bool, device=dev)
    elif case == "bias length":
        b = torch.zeros(5, device=dev)
    elif case == "bias 2-d":
        b = torch.zeros(1, 4, device=dev)
    elif case == "bias dtype":
        b = torch.zeros(4, dtype=torch.int64, device=dev)
    elif case == "bias device":
        b = torch.zeros(4, device="meta")
    elif case == "dim":
        kw["dim"] = data.draw(st.sampled_from([2, -3, 7]))
    elif case == "act":
        kw["act"] = "gelu"
    elif case == "negative clamp":
        kw["clamp"] = -0.5
    else:
        kw["gain"] = math.nan
    with pytest.raises((TypeError, ValueError, RuntimeError)) as e:
        fastgan.bias_act(x, b, impl=impl, **kw)
    assert _clear_error(e.value, "x", "b", "dim", "act", "clamp", "gain"), str(e.value)


@pytest.mark.parametrize("impl", impl_params(("cpp", "triton", "cuda")))
@SETTINGS
@given(data=st.data())
def test_joint_linear_on_generated_inputs(impl, data):
    dev = IMPL_DEVICE[impl]
    n, d, k, o = (data.draw(st.sampled_from([0, 1, 2, 3, 7]), label=s) for s in "ndko")
    o = max(o, 1)
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    act = data.draw(st.sampled_from(["linear", "relu", "lrelu", "tanh"]), label="act")
    x = data.draw(tensors((n, d), dtype, False), label="x").to(dev)
    z = data.draw(tensors((n, k), dtype, False), label="z").to(dev)
    w = data.draw(tensors((o, d), dtype, False), label="w").to(dev)
    u = data.draw(tensors((o, k), dtype, False), label="u").to(dev)
    b = torch.randn(o, dtype=dtype, device=dev) if data.draw(st.booleans(), label="bias") else None
    alpha = 0.2 if act == "lrelu" else 0.0
    gain = data.draw(st.sampled_from([1.0, 2 ** 0.5]), label="gain")
    want_grad = data.draw(st.lists(st.sampled_from("xzwub"), unique=True, max_size=5), label="requires_grad")
    ins = {"x": x, "z": z, "w": w, "u": u, "b": b}
    got_in = {key: None if t is None else t.detach().requires_grad_(key in want_grad) for key, t in ins.items()}
    ref_in = {key: None if t is None else t.detach().clone().requires_grad_(key in want_grad) for key, t in ins.items()}
    if act == "tanh":  # joint_linear's activations are linear / relu / lrelu: anything else is refused, named
        with pytest.raises(ValueError, match="^act: joint_linear supports"):
            fastgan.joint_linear(got_in["x"], got_in["z"], got_in["w"], got_in["u"], got_in["b"], act, alpha, gain,
                                 impl=impl)
        return
    y = fastgan.joint_linear(got_in["x"], got_in["z"], got_in["w"], got_in["u"], got_in["b"], act, alpha, gain,
                             impl=impl)
    ref = reference.joint_linear(ref_in["x"], ref_in["z"], ref_in["w"], ref_in["u"], ref_in["b"], act, alpha, gain)
    assert y.shape == (n, o) and y.dtype == dtype
    # the magnitudes: the same products on absolute values (fp64), for the forward and every gradient
    mag_in = {key: None if t is None else t.detach().double().abs().requires_grad_(True) for key, t in ins.items()}
    mag = reference.joint_linear(mag_in["x"], mag_in["z"], mag_in["w"], mag_in["u"], mag_in["b"], "linear", 0.0,
                                 abs(gain))
    _assert_within(y, ref, mag.detach(), dtype, f"joint_linear {act} forward")
    keys = [key for key in "xzwub" if got_in[key] is not None and got_in[key].requires_grad]
    if keys and y.numel() and dtype != torch.float16:
        gy = torch.randn_like(ref)
        got = torch.autograd.grad(y, [got_in[key] for key in keys], gy, allow_unused=True)
        want = torch.autograd.grad(ref, [ref_in[key] for key in keys], gy, allow_unused=True)
        mags = torch.autograd.grad(mag, [mag_in[key] for key in keys], gy.double().abs(), allow_unused=True)
        for key, g, wnt, m in zip(keys, got, want, mags):
            if wnt is None:
                assert g is None or not g.any(), key
                continue
            assert g.shape == wnt.shape and g.dtype == wnt.dtype
            _assert_within(g, wnt, m, dtype, f"joint_linear {act} d{key}")


@pytest.mark.parametrize("impl", impl_params(("cpp", "triton", "cuda")))
@SETTINGS
@given(data=st.data())
def test_kernel_sum_on_generated_inputs(impl, data):
    """The fused kernel sum (MMD's hot path) against the dense reference: every kernel, self-sums with and without
    the diagonal, cross sums, layouts, dtypes; gradients where they exist (the laplacians' at zero distance: the
    reference's)."""
    dev = IMPL_DEVICE[impl]
    n, m, d = (data.draw(st.sampled_from([0, 1, 2, 3, 9]), label=s) for s in "nmd")
    d = max(d, 1)
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    kernel = data.draw(st.sampled_from(["gaussian", "rq", "imq", "laplacian", "laplacian_l1", "poly"]), label="kernel")
    cross = data.draw(st.booleans(), label="cross")
    diagonal = data.draw(st.booleans(), label="diagonal")
    bandwidths = data.draw(st.sampled_from([(1.0,), (0.5, 4.0), (2.0, 8.0, 32.0)]), label="bandwidths")
    x = data.draw(tensors((n, d), dtype, False), label="x").to(dev)
    y = data.draw(tensors((m, d), dtype, False), label="y").to(dev) if cross else None
    grads = data.draw(st.booleans(), label="requires_grad")
    y_grad = y is not None and data.draw(st.booleans(), label="y requires_grad")
    xg, xr = x.detach().requires_grad_(grads), x.detach().clone().requires_grad_(grads)
    yg = None if y is None else y.detach().requires_grad_(y_grad)
    yr = None if y is None else y.detach().clone().requires_grad_(y_grad)
    weights = [1.0] * len(bandwidths)
    if kernel == "poly":
        bandwidths, weights = (1.0 / d,), [1.0]
    got = fastgan.kernel_sum(xg, yg, kernel, bandwidths, weights, diagonal=diagonal, impl=impl)
    ref = reference.kernel_sum(xr, yr, kernel, bandwidths, weights, diagonal)
    assert got.dim() == 0
    # a sum of n m terms: its error scales with n m (the terms are at most sum(weights) for the distance kernels)
    terms = max(1, n * (m if cross else n))
    tol = TOL[dtype] * terms * (10.0 if dtype in (torch.float16, torch.bfloat16) else 1.0)
    scale = max(1.0, ref.detach().abs().item())
    if kernel == "poly":
        scale = max(scale, float(reference.kernel_sum(xr.detach().abs(), None if y is None else y.abs(), kernel,
                                                      bandwidths, weights, diagonal)))
    assert abs(got.item() - ref.item()) <= tol * scale, (got.item(), ref.item())
    wrt = [(a, b) for a, b, on in ((xg, xr, grads and n), (yg, yr, y_grad and m)) if on]
    if wrt and dtype in (torch.float64, torch.float32):
        gs = torch.autograd.grad(got, [a for a, _ in wrt])
        ws = torch.autograd.grad(ref, [b for _, b in wrt])
        for g, w in zip(gs, ws):
            torch.testing.assert_close(g, w, rtol=TOL[dtype] * 10,
                                       atol=TOL[dtype] * 10 * max(1.0, terms * scale / g.shape[0]),
                                       msg=lambda msg: f"{kernel} gradient: {msg}")


@pytest.mark.parametrize("impl", impl_params(("cpp", "triton", "cuda")))
@SETTINGS
@given(data=st.data())
def test_minibatch_discrimination_on_generated_inputs(impl, data):
    dev = IMPL_DEVICE[impl]
    b, r, k, c = (data.draw(st.sampled_from([0, 1, 2, 5]), label=s) for s in "brkc")
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    with_ref = data.draw(st.booleans(), label="reference")
    exclude_self = not with_ref and data.draw(st.booleans(), label="exclude_self")
    m = data.draw(tensors((b, k, c), dtype, False), label="m").to(dev)
    ref_batch = data.draw(tensors((r, k, c), dtype, False), label="ref").to(dev) if with_ref else None
    mg, mr = m.detach().requires_grad_(True), m.detach().clone().requires_grad_(True)
    r_grad = with_ref and data.draw(st.booleans(), label="reference requires_grad")
    rg = None if ref_batch is None else ref_batch.detach().requires_grad_(r_grad)
    rr = None if ref_batch is None else ref_batch.detach().clone().requires_grad_(r_grad)
    got = fastgan.minibatch_discrimination(mg, rg, exclude_self, impl=impl)
    want = reference.minibatch_discrimination(mr, rr, exclude_self)
    assert got.shape == want.shape == (b, k) and got.dtype == dtype
    terms = max(1, r if with_ref else b)
    _assert_within(got, want, torch.full_like(want.double(), float(terms)), dtype, "minibatch forward")
    if got.numel() and dtype in (torch.float64, torch.float32):
        gy = torch.randn_like(want)
        wrt = [(mg, mr)] + ([(rg, rr)] if r_grad and r else [])
        gs = torch.autograd.grad(got, [a for a, _ in wrt], gy)
        ws = torch.autograd.grad(want, [b for _, b in wrt], gy)
        for g, w in zip(gs, ws):
            bound = 2.0 * max(terms, b) * float(gy.abs().max())
            _assert_within(g, w, torch.full_like(w.double(), bound), dtype, "minibatch backward")


@pytest.mark.parametrize("impl", impl_params(("cpp", "triton", "cuda")))
@SETTINGS
@given(data=st.data())
def test_the_other_ops_refuse_what_they_cannot_take(impl, data):
    """joint_linear, kernel_sum, minibatch_discrimination: integer / complex / bool tensors, mismatched sizes and
    dtypes, tensors on another device, wrong ranks -- a clear error naming the argument, never a crash."""
    dev = IMPL_DEVICE[impl]
    op = data.draw(st.sampled_from(["joint_linear", "kernel_sum", "minibatch"]), label="op")
    bad = data.draw(st.sampled_from(["int", "complex", "bool", "size", "dtype", "device", "rank"]), label="bad")
    f = torch.randn
    if op == "joint_linear":
        args = {"x": f(3, 4, device=dev), "z": f(3, 2, device=dev), "weight": f(5, 4, device=dev),
                "z_weight": f(5, 2, device=dev), "bias": f(5, device=dev)}
        run = lambda a: fastgan.joint_linear(a["x"], a["z"], a["weight"], a["z_weight"], a["bias"], impl=impl)  # noqa: E731
    elif op == "kernel_sum":
        args = {"x": f(3, 4, device=dev), "y": f(5, 4, device=dev)}
        run = lambda a: fastgan.kernel_sum(a["x"], a["y"], impl=impl)  # noqa: E731
    else:
        args = {"m": f(3, 2, 4, device=dev), "reference": f(5, 2, 4, device=dev)}
        run = lambda a: fastgan.minibatch_discrimination(a["m"], a["reference"], impl=impl)  # noqa: E731
    name = data.draw(st.sampled_from(sorted(args)), label="argument")
    t = args[name]
    if bad == "int":
        t = t.to(torch.int32)
    elif bad == "complex":
        t = t.to(torch.complex64)
    elif bad == "bool":
        t = t > 0
    elif bad == "size":
        t = torch.randn(*t.shape[:-1], t.shape[-1] + 1, device=dev)
    elif bad == "dtype":
        t = t.double() if t.dtype != torch.float64 else t.float()
    elif bad == "device":
        t = t.to("meta")
    else:
        t = t.reshape(-1) if t.dim() > 1 else t[None, None]
    args[name] = t
    with pytest.raises((TypeError, ValueError, RuntimeError, NotImplementedError)) as e:
        run(args)
    text = str(e.value)
    assert isinstance(e.value, (TypeError, ValueError)) or name in text or "device" in text or "meta" in text, \
        f"{op}: {bad} {name}: {type(e.value).__name__}: {e.value}"
