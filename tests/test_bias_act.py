"""fastgan.bias_act: every implementation against the pure-PyTorch reference (the spec).

Forward, backward and double backward on fresh random inputs over layouts (zero and odd sizes, every bias-layout
path of the kernels, non-contiguous and channels-last inputs, expanded gradients), every activation and dtype;
gradcheck + gradgradcheck in float64; opcheck; error paths; a gradient penalty through the op.
"""
import functools
import math

import pytest
import torch
from conftest import IMPL_DEVICE, close, impl_params

import fastgan
from fastgan import backend
from fastgan.activations import ACTIVATIONS
from fastgan.ops import reference

ACTS = list(ACTIVATIONS)
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]



def layouts(device, dtype):
    """(name, x, dim, has_bias) covering each path of the kernels."""
    def r(*shape):
        return torch.randn(shape, device=device, dtype=dtype) * 2

    yield "zero-size", r(0, 5, 3), 1, True
    yield "1-d", r(7), 0, True
    yield "rows S=1", r(9, 13), 1, True
    yield "dim=-1", r(3, 4, 11), -1, True
    yield "S>=16", r(3, 5, 4, 6), 1, True
    yield "small S", r(2, 3, 5), 1, True
    yield "C=1", r(4, 1, 6), 1, True
    yield "channels-last", r(4, 6, 3, 3).contiguous(memory_format=torch.channels_last), 1, True
    yield "non-contiguous", r(6, 10, 5)[:, ::2].transpose(0, 2), 1, True
    yield "long rows", r(2, 3, 33000), 1, True
    yield "no bias", r(5, 7, 3), 1, False
    yield "0-d no bias", r(), 0, False


def _params(act):
    spec = ACTIVATIONS[act]
    return spec.default_alpha, spec.default_gain


def _run(impl, x, b, dim, act, clamp, alpha=None, gain=None):
    if impl == "reference":
        a0, g0 = _params(act)
        return reference.bias_act(x, b, dim % max(x.dim(), 1), act, a0 if alpha is None else alpha,
                                  g0 if gain is None else gain, -1.0 if clamp is None else clamp)
    return fastgan.bias_act(x, b, dim, act, alpha=alpha, gain=gain, clamp=clamp, impl=impl)


def _three_orders(impl, x0, b0, dim, act, clamp, gy0, w0):
    """y; (dx, db, d(gy)...) first order; second-order grads of a penalty-like function of (dx, db)."""
    # detach, not clone: a clone of a non-dense view is contiguous, and the strides are part of what is tested
    x = x0.detach().requires_grad_(True)
    b = None if b0 is None else b0.detach().requires_grad_(True)
    gy = gy0.detach().requires_grad_(True)
    y = _run(impl, x, b, dim, act, clamp)
    inputs = [x] + ([b] if b is not None else [])
    grads = torch.autograd.grad(y, inputs, gy, create_graph=True)
    # second order: d/d(x, b, gy) of sum(w * dx) + sum(db^2)
    loss = (grads[0].float() * w0).sum()
    if b is not None:
        loss = loss + (grads[1].float() ** 2).sum()
    if loss.requires_grad:
        second = torch.autograd.grad(loss, inputs + [gy], allow_unused=True)
    else:  # linear without clamp: dx does not depend on x
        second = [None] * (len(inputs) + 1)
    second = [torch.zeros_like(t) if s is None else s for s, t in zip(second, inputs + [gy])]
    return y.detach(), [g.detach() for g in grads], [s.detach() for s in second]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("impl", impl_params())
def test_matches_reference(impl, act, dtype):
    device = IMPL_DEVICE[impl]
    for name, x, dim, has_b in layouts(device, dtype):
        if impl == "triton" and name == "long rows":
            x = x[..., :40]  # the interpreter is slow; the long-row path is the C++ driver's
        for clamp in (None, 0.8):
            b = torch.randn(x.shape[dim], device=device, dtype=dtype) if has_b else None
            gy = torch.randn_like(x)
            w = torch.randn(x.shape, device=device)
            what = f"{name}, clamp={clamp}"
            y, g1, g2 = _three_orders(impl, x, b, dim, act, clamp, gy, w)
            ry, rg1, rg2 = _three_orders("reference", x, b, dim, act, clamp, gy, w)
            assert y.shape == x.shape and y.dtype == dtype
            close(y, ry, dtype, f"forward, {what}")
            for k, (a, e) in enumerate(zip(g1, rg1)):
                close(a, e, dtype, f"first derivative #{k}, {what}")
            for k, (a, e) in enumerate(zip(g2, rg2)):
                close(a.to(e.dtype), e, dtype, f"second derivative #{k}, {what}")


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("impl", impl_params())
def test_gradcheck_gradgradcheck_fp64(impl, act):
    device = IMPL_DEVICE[impl]
    for clamp in (None, 0.9):
        x = torch.randn(3, 4, 5, device=device, dtype=torch.float64, requires_grad=True)
        b = torch.randn(4, device=device, dtype=torch.float64, requires_grad=True)
        # keep inputs away from the kinks (relu/lrelu at 0, clamp boundary) where finite differences are invalid
        with torch.no_grad():
            x.add_(torch.where(x >= 0, 0.05, -0.05))

        def f(x, b):
            return fastgan.bias_act(x, b, 1, act, clamp=clamp, impl=impl)

        xs = (x, b.detach().zero_().requires_grad_(True))
        assert torch.autograd.gradcheck(f, xs)
        assert torch.autograd.gradgradcheck(f, xs)


@pytest.mark.parametrize("impl", impl_params(("cpp", "triton")))
def test_opcheck(impl):
    device = IMPL_DEVICE[impl]
    utils = None  # opcheck's default: every check
    if impl == "triton":
        ns = fastgan.ops.OPS["bias_act"].namespace("triton")  # defines the ops on first use
        if backend.triton_interpreter():
            # the interpreter runs kernels eagerly, also on fake tensors: no fake/compile tracing there
            utils = ("test_schema", "test_autograd_registration")
    else:
        ns = torch.ops.fastgan
    check = functools.partial(torch.library.opcheck, test_utils=utils) if utils else torch.library.opcheck
    x = torch.randn(4, 3, 5, device=device, requires_grad=True)
    b = torch.randn(3, device=device, requires_grad=True)
    xl = torch.randn(2, 3, 4, 4, device=device).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    cases = [
        (x, b, 1, "lrelu", 0.2, math.sqrt(2), 256.0),
        (x, None, 1, "tanh", 0.0, 1.0, -1.0),
        (xl, b, 1, "swish", 0.0, 1.0, 0.5),
        (x, b, 1, "elu", 1.0, 1.0, -1.0),
    ]
    for args in cases:
        check(ns.bias_act.default, args)
        y = ns.bias_act(*[a.detach() if isinstance(a, torch.Tensor) else a for a in args])
        gy = torch.randn_like(y)
        xd = args[0].detach()
        bd = None if args[1] is None else args[1].detach()
        bwd_args = (gy, xd, bd, 1, *args[3:], False, bd is not None)
        check(ns.bias_act_backward.default, bwd_args)
        check(ns.bias_act_backward2.default, (torch.randn_like(gy),) + bwd_args)


@pytest.mark.parametrize("impl", impl_params())
def test_gradient_penalty_matches_reference(impl):
    """WGAN-GP through a small critic made of linear layers and bias_act equals the same critic on the reference."""
    device = IMPL_DEVICE[impl]
    torch.manual_seed(1234)
    w1 = torch.randn(16, 8, device=device, dtype=torch.float64) / 3
    w2 = torch.randn(1, 16, device=device, dtype=torch.float64) / 4
    b1 = torch.randn(16, device=device, dtype=torch.float64)
    real = torch.randn(10, 8, device=device, dtype=torch.float64)
    fake = torch.randn(10, 8, device=device, dtype=torch.float64)
    eps = torch.rand(10, 1, device=device, dtype=torch.float64)

    def penalty(impl_name, act):
        params = [p.clone().requires_grad_(True) for p in (w1, b1, w2)]
        xh = (eps * real + (1 - eps) * fake).requires_grad_(True)
        h = _run(impl_name, xh @ params[0].t(), params[1], 1, act, None)
        d = h @ params[2].t()
        (g,) = torch.autograd.grad(d.sum(), xh, create_graph=True)
        gp = ((g.norm(dim=1) - 1) ** 2).mean()
        grads = torch.autograd.grad(gp, params, allow_unused=True)  # lrelu: the bias gets no second-order term
        return gp.detach(), [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]

    for act in ("lrelu", "tanh", "swish", "softplus"):
        gp, grads = penalty(impl, act)
        rgp, rgrads = penalty("reference", act)
        close(gp, rgp, torch.float64, f"penalty {act}")
        for a, e in zip(grads, rgrads):
            close(a, e, torch.float64, f"penalty gradient {act}")


@pytest.mark.parametrize("impl", impl_params())
def test_expanded_gradient_and_requires_grad_subsets(impl):
    device = IMPL_DEVICE[impl]
    x = torch.randn(4, 5, 6, device=device, requires_grad=True)
    b = torch.randn(5, device=device, requires_grad=True)
    fastgan.bias_act(x, b, act="lrelu", clamp=1.0, impl=impl).sum().backward()  # gradient is an expanded scalar
    rx = x.detach().clone().requires_grad_(True)
    rb = b.detach().clone().requires_grad_(True)
    _run("reference", rx, rb, 1, "lrelu", 1.0).sum().backward()
    close(x.grad, rx.grad, torch.float32, "dx")
    close(b.grad, rb.grad, torch.float32, "db")
    # only the bias requires grad / only x requires grad
    xb = x.detach()
    (gb,) = torch.autograd.grad(fastgan.bias_act(xb, b, act="tanh", impl=impl).sum(), b)
    close(gb, torch.autograd.grad(_run("reference", xb, b, 1, "tanh", None).sum(), b)[0], torch.float32, "db only")
    (gx,) = torch.autograd.grad(fastgan.bias_act(x, b.detach(), act="elu", impl=impl).sum(), x)
    close(gx, torch.autograd.grad(_run("reference", x, b.detach(), 1, "elu", None).sum(), x)[0], torch.float32,
          "dx only")


@pytest.mark.parametrize("impl", impl_params())
def test_alpha_gain_overrides(impl):
    device = IMPL_DEVICE[impl]
    x = torch.randn(6, 4, device=device, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, device=device, dtype=torch.float64)
    # negative alpha and negative gain force the input-reference backward; gain 0 gives zero output
    for act, alpha, gain in (("lrelu", -0.3, 1.5), ("elu", 0.5, -2.0), ("relu", 0.0, 0.0), ("selu", 0.0, 3.0)):
        y = fastgan.bias_act(x, b, 1, act, alpha=alpha, gain=gain, impl=impl)
        close(y, _run("reference", x, b, 1, act, None, alpha, gain), torch.float64, f"{act} forward")
        assert torch.autograd.gradcheck(lambda x: fastgan.bias_act(x, b, 1, act, alpha=alpha, gain=gain, impl=impl),
                                        (x,))


@pytest.mark.parametrize("impl", impl_params(("cpp", "triton")))
def test_third_order_raises(impl):
    device = IMPL_DEVICE[impl]
    x = torch.randn(3, 4, device=device, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(fastgan.bias_act(x, None, act="tanh", impl=impl).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="third-order"):
        gg.sum().backward()


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("impl", ["reference"] + impl_params(("cpp", "triton")))
def test_errors(impl):
    device = IMPL_DEVICE.get(impl, "cpu")
    x = torch.randn(4, 3, device=device)
    b = torch.randn(3, device=device)
    cases = [
        (dict(act="gelu"), ValueError, "act: unknown activation 'gelu'"),
        (dict(act=3), TypeError, "act"),
        (dict(b=torch.randn(4, device=device)), ValueError, r"b: expected a vector of length x.shape\[1\] = 3"),
        (dict(b=b, dim=2), ValueError, r"dim: expected a dimension of x in \[-2, 1\], got 2"),
        (dict(x=x.to(torch.int32)), TypeError, "x: expected a floating tensor"),
        (dict(b=b.double()), TypeError, "b: expected dtype torch.float32"),
        (dict(b=b.to("meta")), ValueError, "b: expected a tensor on cpu"),
        (dict(clamp=-1.0), ValueError, "clamp: expected a number >= 0"),
        (dict(clamp="big"), ValueError, "clamp"),
        (dict(alpha=float("nan")), ValueError, "alpha: expected a finite number"),
        (dict(gain="2"), TypeError, "gain"),
        (dict(x=[1.0, 2.0]), TypeError, "x: expected a torch.Tensor"),
        (dict(impl="gpu"), ValueError, "impl: expected one of"),
    ]
    for kw, exc, msg in cases:
        args = dict(x=x, b=b, dim=1, act="lrelu", impl=impl)
        args.update(kw)
        with pytest.raises(exc, match=msg):
            fastgan.bias_act(**args)
    # clamp='none' and None mean the same
    torch.testing.assert_close(fastgan.bias_act(x, b, clamp="none", impl=impl), fastgan.bias_act(x, b, impl=impl))


def test_cpp_op_checks_directly():
    """The C++ checks catch what a direct torch.ops call gets wrong."""
    x = torch.randn(4, 3)
    b = torch.randn(3)
    op = torch.ops.fastgan
    with pytest.raises(ValueError, match="act: unknown activation 'nope'"):
        op.bias_act(x, b, 1, "nope", 0.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="clamp: expected a number >= 0 or -1"):
        op.bias_act(x, b, 1, "relu", 0.0, 1.0, -2.0)
    with pytest.raises(ValueError, match=r"b: expected a vector of length x.shape\[1\] = 3"):
        op.bias_act(x, torch.randn(2), 1, "relu", 0.0, 1.0, -1.0)
    with pytest.raises(TypeError, match="x: expected a floating tensor"):
        op.bias_act(x.long(), None, 1, "relu", 0.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="grad: expected shape"):
        op.bias_act_backward(torch.randn(4, 4), x, b, 1, "relu", 0.0, 1.0, -1.0, True, True)
    with pytest.raises(ValueError, match="ref_is_y: activation 'swish'"):
        op.bias_act_backward(x, x, b, 1, "swish", 0.0, 1.0, -1.0, True, True)
    with pytest.raises(ValueError, match="dim: expected a dimension of ref"):
        op.bias_act_backward(x, x, None, 5, "relu", 0.0, 1.0, -1.0, True, True)


def test_activation_table_matches_cpp():
    cpp = fastgan._ext.load().activation_table()
    assert [a["name"] for a in cpp] == list(ACTIVATIONS)
    for row in cpp:
        spec = ACTIVATIONS[row["name"]]
        assert (row["id"], row["y_ok"], row["has_2nd"]) == (spec.id, spec.y_ok, spec.has_2nd)
        assert row["default_alpha"] == spec.default_alpha and row["default_gain"] == spec.default_gain


@pytest.mark.parametrize("impl", impl_params())
def test_module(impl):
    device = IMPL_DEVICE[impl]
    m = fastgan.nn.BiasAct(6, act="lrelu", clamp=256, impl=impl).to(device)
    with torch.no_grad():
        m.bias.copy_(torch.randn(6))
    x = torch.randn(2, 6, 3, 3, device=device)
    close(m(x), _run("reference", x, m.bias, 1, "lrelu", 256.0), torch.float32, "module")
    m(x).sum().backward()
    assert m.bias.grad is not None and m.bias.grad.shape == (6,)
    assert "lrelu" in repr(m)
    assert fastgan.nn.BiasAct(None, act="tanh").bias is None
    with pytest.raises(ValueError, match="channels"):
        fastgan.nn.BiasAct(0)
    with pytest.raises(ValueError, match="act: unknown"):
        fastgan.nn.BiasAct(3, act="gelu")


def test_compile_traces_the_op():
    """The fake kernels let torch.compile trace through the op (forward and backward) without graph breaks."""
    x = torch.randn(8, 4, 5, requires_grad=True)
    b = torch.randn(4, requires_grad=True)

    def f(x, b):
        return fastgan.bias_act(x * 2, b, act="lrelu", clamp=2.0, impl="cpp").sum()

    cf = torch.compile(f, fullgraph=True, backend="aot_eager")
    out = cf(x, b)
    out.backward()
    gx, gb = x.grad.clone(), b.grad.clone()
    x.grad = b.grad = None
    f(x, b).backward()
    close(gx, x.grad, torch.float32, "compiled dx")
    close(gb, b.grad, torch.float32, "compiled db")


@pytest.mark.parametrize("impl", ["reference"] + impl_params())
def test_clamp_boundary_counts_as_clamped(impl):
    """At |act * gain| == clamp the gradient is 0 on every implementation (from x or from y alike)."""
    device = IMPL_DEVICE.get(impl, "cpu")
    x = torch.tensor([-0.5, -0.25, 0.0, 0.25, 0.5, 0.75], device=device, dtype=torch.float64, requires_grad=True)
    for act, gain in (("linear", 1.0), ("relu", 1.0), ("swish", 1.0)):
        c = 0.5 if act != "swish" else float(0.5 * torch.sigmoid(torch.tensor(0.5, dtype=torch.float64)))
        (g,) = torch.autograd.grad(fastgan.bias_act(x, None, 0, act, gain=gain, clamp=c, impl=impl).sum(), x)
        if act == "linear":
            assert g.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
        elif act == "relu":
            assert g.tolist() == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
        else:  # swish(0.5) == c exactly: clamped
            assert g[4].item() == 0.0 and g[3].item() > 0


@pytest.mark.parametrize("impl", impl_params(("triton",)))
def test_triton_bounded_bias_partials(impl, monkeypatch):
    """With the grid capped (a small fake SM count), each program walks several o-tiles and writes one row of
    partial bias sums: the partials stay <= programs x C, and the results equal the reference."""
    from fastgan._triton import bias_act as tk

    monkeypatch.setattr(tk, "SM_COUNT", 1)  # one "wave" = 16 programs
    cfg = tk.config(3000, 24, 1, True)
    assert cfg.NT > 1 and cfg.partial_rows * 24 <= cfg.grid[0] * 24 and cfg.partial_rows < cfg.NO
    device = IMPL_DEVICE[impl]
    for dtype in (torch.float64, torch.float32):
        for shape, dim in (((3000, 24), 1), ((400, 6, 5), 1)):
            x = torch.randn(shape, device=device, dtype=dtype)
            b = torch.randn(shape[dim], device=device, dtype=dtype)
            gy = torch.randn_like(x)
            w = torch.randn(shape, device=device)
            for act in ("lrelu", "tanh"):
                y, g1, g2 = _three_orders(impl, x, b, dim, act, None, gy, w)
                ry, rg1, rg2 = _three_orders("reference", x, b, dim, act, None, gy, w)
                close(y, ry, dtype, f"forward {shape} {act}")
                for k, (a, e) in enumerate(zip(g1 + g2, rg1 + rg2)):
                    close(a.to(e.dtype), e, dtype, f"derivative #{k} {shape} {act}")


@pytest.mark.parametrize("impl", impl_params())
@pytest.mark.parametrize("act", ACTS)
def test_non_finite_values_pass_as_the_reference_passes_them(impl, act):
    """Issue 31: NaN and +-inf inputs (and +-1e30) give what the reference gives, forward and backward -- a NaN that
    an activation swallowed (relu's `s > 0 ? s : 0` made it 0) hides a diverged run from the trainer's NaN guard."""
    dev = IMPL_DEVICE[impl]
    special = [float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 0.0, -0.0, 1.5, -1.5]
    x = torch.tensor(special, device=dev).repeat(3, 1)
    b = torch.tensor([0.0, 0.5, float("nan")], device=dev)
    for bias in (None, b):
        xs = [x.clone().requires_grad_(True) for _ in range(2)]
        ys = [_run(impl, xs[0], bias, 0, act, None), _run("reference", xs[1], bias, 0, act, None)]
        torch.testing.assert_close(ys[0], ys[1], equal_nan=True, msg=lambda m: f"{act} forward: {m}")
        gy = torch.ones_like(ys[0])
        gs = [torch.autograd.grad(y, xi, gy)[0] for y, xi in zip(ys, xs)]
        torch.testing.assert_close(gs[0], gs[1], equal_nan=True, msg=lambda m: f"{act} backward: {m}")
