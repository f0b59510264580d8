"""fastgan.joint_linear (the BiGAN joint layer) against the reference: forward, all gradients, double backward,
gradcheck/gradgradcheck fp64, opcheck, a WGAN-GP penalty through a 3-layer joint critic, module twins, errors."""
import functools

import pytest
import torch
from conftest import IMPL_DEVICE, close, impl_params

import fastgan
from fastgan import backend
from fastgan.nn import EagerJointLinear, JointLinear
from fastgan.ops import reference

IMPLS = impl_params(("cpp", "triton", "cuda"))


def _inputs(n, i, zd, o, device, dtype, bias=True, noncontig=False):
    def r(*s):
        t = torch.randn(*s, device=device, dtype=dtype)
        return t
    x, z = r(n, i), r(n, zd)
    w, u = r(o, i) / max(i, 1) ** 0.5, r(o, zd) / max(zd, 1) ** 0.5
    if noncontig:  # transposed storage for the weights, strided x, z and bias
        w = r(i, o).t() / max(i, 1) ** 0.5
        x, z = r(n, 2 * i)[:, ::2], r(n, 2 * zd)[:, ::2]
    b = (r(2 * o)[::2] if noncontig else r(o)) if bias else None
    return [x, z, w, u, b]


def _orders(impl, ins, act, alpha, gain):
    # detach, not clone: a clone of a strided view is contiguous, and the strides are what is tested
    ins = [None if t is None else t.detach().requires_grad_(True) for t in ins]
    if impl == "reference":
        y = reference.joint_linear(*ins, act, alpha, gain)
    else:
        y = fastgan.joint_linear(*ins, act=act, alpha=alpha, gain=gain, impl=impl)
    leaves = [t for t in ins if t is not None]
    gy = torch.randn_like(y)
    g1 = torch.autograd.grad(y, leaves, gy, create_graph=True)
    loss = sum((g.float() ** 2).sum() for g in g1[:2])  # a penalty on the input gradients
    g2 = torch.autograd.grad(loss, leaves, allow_unused=True)
    g2 = [torch.zeros_like(t) if g is None else g for g, t in zip(g2, leaves)]
    return y.detach(), [g.detach() for g in g1], [g.detach() for g in g2], gy


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16],
                         ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("impl", IMPLS)
def test_matches_reference(impl, dtype):
    device = IMPL_DEVICE[impl]
    for (n, i, zd, o), bias, noncontig in (((7, 5, 3, 6), True, False), ((0, 4, 2, 3), True, False),
                                           ((1, 1, 1, 1), False, False), ((9, 13, 5, 11), True, True),
                                           ((4, 6, 0, 5), True, False)):
        for act, alpha, gain in (("lrelu", 0.2, 1.0), ("relu", 0.0, 2 ** 0.5), ("linear", 0.0, 0.5)):
            ins = _inputs(n, i, zd, o, device, dtype, bias, noncontig)
            torch.manual_seed(5)
            y, g1, g2, _ = _orders(impl, ins, act, alpha, gain)
            torch.manual_seed(5)
            ry, rg1, rg2, _ = _orders("reference", ins, act, alpha, gain)
            what = f"{(n, i, zd, o)} {act} bias={bias} noncontig={noncontig}"
            close(y, ry, dtype, f"forward {what}")
            for k, (a, e) in enumerate(zip(g1, rg1)):
                close(a, e, dtype, f"gradient #{k} {what}")
            for k, (a, e) in enumerate(zip(g2, rg2)):
                close(a.to(e.dtype), e, dtype, f"second-order gradient #{k} {what}")


@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_gradgradcheck_fp64(impl):
    device = IMPL_DEVICE[impl]
    ins = [t.requires_grad_(True) for t in _inputs(5, 4, 3, 6, device, torch.float64)]
    with torch.no_grad():  # keep pre-activations away from the lrelu kink
        s = ins[0] @ ins[2].t() + ins[1] @ ins[3].t() + ins[4]
        ins[4] += torch.where(s.abs().min(0).values < 0.05, 0.2, 0.0)
    # the interpreter runs each of the many small launches slowly: there, compare random projections of the
    # Jacobians (fast_mode) instead of whole Jacobians
    fast = impl == "triton" and backend.triton_interpreter()
    for act in ("lrelu", "relu", "linear"):
        f = lambda *a: fastgan.joint_linear(*a, act=act, alpha=0.2, impl=impl)  # noqa: E731
        assert torch.autograd.gradcheck(f, ins, fast_mode=fast)
        assert torch.autograd.gradgradcheck(f, ins, fast_mode=fast)


@pytest.mark.parametrize("impl", impl_params(("cpp", "triton")))
def test_opcheck(impl):
    device = IMPL_DEVICE[impl]
    utils = None  # opcheck's default: every check
    if impl == "triton":
        ns = fastgan.ops.OPS["joint_linear"].namespace("triton")  # defines the ops on first use
        if backend.triton_interpreter():
            # the interpreter runs kernels eagerly, also on fake tensors: no fake/compile tracing there
            utils = ("test_schema", "test_autograd_registration")
    else:
        ns = torch.ops.fastgan
    check = functools.partial(torch.library.opcheck, test_utils=utils) if utils else torch.library.opcheck
    ins = [t.requires_grad_(True) for t in _inputs(6, 5, 3, 4, device, torch.float32)]
    check(ns.joint_linear.default, (*ins, "lrelu", 0.2, 1.0))
    check(ns.joint_linear.default, (*ins[:4], None, "relu", 0.0, 2.0))
    check(ns.joint_linear.default, (ins[0], ins[1][:, :0], ins[2], ins[3][:, :0], ins[4], "linear", 0.0, 0.5))


@pytest.mark.parametrize("impl", IMPLS)
def test_wgan_gp_through_three_joint_layers(impl):
    """A WGAN-GP penalty through a 3-layer joint critic D(x, z) equals the eager twin's to 1e-10 (fp64)."""
    device = IMPL_DEVICE[impl]
    torch.manual_seed(0)
    dims = [(10, 8, 16), (16, 8, 16), (16, 8, 1)]
    fused = torch.nn.ModuleList([JointLinear(i, zd, o, act=a, impl=impl)
                                 for (i, zd, o), a in zip(dims, ("lrelu", "lrelu", "linear"))]).to(device).double()
    eager = torch.nn.ModuleList([EagerJointLinear(i, zd, o, act=a)
                                 for (i, zd, o), a in zip(dims, ("lrelu", "lrelu", "linear"))]).to(device).double()
    eager.load_state_dict(fused.state_dict())
    real_x, fake_x = torch.randn(12, 10, device=device, dtype=torch.float64), torch.randn(12, 10, device=device,
                                                                                          dtype=torch.float64)
    real_z, fake_z = torch.randn(12, 8, device=device, dtype=torch.float64), torch.randn(12, 8, device=device,
                                                                                        dtype=torch.float64)
    eps = torch.rand(12, 1, device=device, dtype=torch.float64)

    def penalty(net):
        xh = (eps * real_x + (1 - eps) * fake_x).requires_grad_(True)
        zh = (eps * real_z + (1 - eps) * fake_z).requires_grad_(True)
        h = xh
        for layer in net:
            h = layer(h, zh)
        gx, gz = torch.autograd.grad(h.sum(), (xh, zh), create_graph=True)
        gp = ((torch.cat([gx, gz], 1).norm(dim=1) - 1) ** 2).mean()
        grads = torch.autograd.grad(gp, list(net.parameters()), allow_unused=True)
        return gp.detach(), [torch.zeros_like(p) if g is None else g for g, p in zip(grads, net.parameters())]

    gp, grads = penalty(fused)
    rgp, rgrads = penalty(eager)
    close(gp, rgp, torch.float64, "penalty")
    for (name, _), a, e in zip(fused.named_parameters(), grads, rgrads):
        close(a, e, torch.float64, f"penalty gradient {name}")


@pytest.mark.parametrize("impl", IMPLS)
def test_module_twins(impl):
    device = IMPL_DEVICE[impl]
    fused = JointLinear(7, 3, 5, impl=impl).to(device)
    eager = EagerJointLinear(7, 3, 5).to(device)
    assert set(fused.state_dict()) == {"weight", "z_weight", "bias"}
    eager.load_state_dict(fused.state_dict())
    x, z = torch.randn(4, 7, device=device), torch.randn(4, 3, device=device)
    y1, y2 = fused(x, z), eager(x, z)
    close(y1, y2, torch.float32, "twin outputs")
    y1.square().sum().backward()
    y2.square().sum().backward()
    for (name, p1), p2 in zip(fused.named_parameters(), eager.parameters()):
        close(p1.grad, p2.grad, torch.float32, f"twin gradient {name}")
    assert "z_features=3" in repr(fused)
    nobias = JointLinear(7, 3, 5, bias=False, act="relu", gain=2.0)
    assert nobias.bias is None and set(nobias.state_dict()) == {"weight", "z_weight"}


def test_errors():
    x, z, w, u, b = _inputs(4, 5, 3, 6, "cpu", torch.float32)
    cases = [
        (dict(act="tanh"), ValueError, "act: joint_linear supports"),
        (dict(act="nope"), ValueError, "act: unknown activation"),
        (dict(alpha=-0.1), ValueError, "alpha: expected a finite number >= 0"),
        (dict(gain=0.0), ValueError, "gain: expected a finite non-zero number"),
        (dict(z=torch.randn(3, 3)), ValueError, "z: expected 4 rows like x"),
        (dict(weight=torch.randn(6, 4)), ValueError, r"weight: expected shape \(out_features, 5\)"),
        (dict(z_weight=torch.randn(6, 2)), ValueError, r"z_weight: expected shape \(6, 3\)"),
        (dict(bias=torch.randn(5)), ValueError, r"bias: expected shape \(6,\)"),
        (dict(x=torch.randn(4, 5, 1)), ValueError, "x: expected a 2-d tensor"),
        (dict(z=z.double()), TypeError, "z: expected dtype torch.float32"),
        (dict(x=x.long()), TypeError, "x: expected a floating tensor"),
        (dict(impl="cuda"), RuntimeError, "impl='cuda' cannot run on cpu tensors"),
    ]
    for kw, exc, msg in cases:
        args = dict(x=x, z=z, weight=w, z_weight=u, bias=b)
        args.update(kw)
        with pytest.raises(exc, match=msg):
            fastgan.joint_linear(**args)
    with pytest.raises(ValueError, match="act: joint_linear supports"):  # the C++ check, direct call
        torch.ops.fastgan.joint_linear(x, z, w, u, b, "swish", 0.0, 1.0)
    with pytest.raises(ValueError, match="in_features: expected a positive int"):
        JointLinear(0, 3, 4)
    with pytest.raises(ValueError, match="act: joint_linear supports"):
        JointLinear(3, 3, 4, act="elu")


def test_autocast_bf16():
    """Under CPU bf16 autocast the fp32 parameters meet bf16 activations: the op runs in bf16 (fp32 math inside),
    like torch.mm, instead of refusing the mixed dtypes."""
    torch.manual_seed(0)
    layer = JointLinear(16, 4, 8)
    x, z = torch.randn(5, 16), torch.randn(5, 4)
    ref = layer(x, z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x, z)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, rtol=2e-2, atol=2e-2)
    y.float().sum().backward()
    assert layer.weight.grad.dtype == torch.float32 and torch.isfinite(layer.weight.grad).all()


class _CastCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the dtype casts (aten._to_copy) of tensors with `numel` elements dispatched under it."""

    def __init__(self, numel):
        super().__init__()
        self.numel, self.casts = numel, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._to_copy.default and args[0].numel() == self.numel:
            self.casts += 1
        return func(*args, **(kwargs or {}))


def test_autocast_casts_a_weight_once_per_region_and_checks_the_cast_dtypes():
    """The C++ op's Autocast kernel (csrc/autocast.cpp) casts through autocast's cache: the BiGAN D runs three times
    per iteration, and its weights are cast once per autocast region as for F.linear (issue 29: the Python-side
    cast on every call cost ~6 ms of a 53 ms bf16 iteration). Results and gradients as one bf16 cast would give."""
    torch.manual_seed(0)
    layer = JointLinear(16, 4, 8)  # auto on the CPU: the C++ op
    x, z = torch.randn(5, 16), torch.randn(5, 4)
    counter = _CastCounter(layer.weight.numel())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with counter:
            ys = [layer(x, z) for _ in range(3)]
        (sum(y.float().sum() for y in ys)).backward()
    assert counter.casts == 1, f"the weight was cast {counter.casts} times in one autocast region"
    want = fastgan.joint_linear(x.bfloat16(), z.bfloat16(), layer.weight.bfloat16(), layer.z_weight.bfloat16(),
                                layer.bias.bfloat16(), act=layer.act, alpha=layer.alpha, gain=layer.gain)
    for y in ys:
        assert y.dtype == torch.bfloat16 and torch.equal(y, want)
    torch.testing.assert_close(layer.weight.grad, 3 * torch.autograd.grad(
        fastgan.joint_linear(x, z, layer.weight, layer.z_weight, layer.bias, act=layer.act, alpha=layer.alpha,
                             gain=layer.gain).sum(), layer.weight)[0], rtol=2e-2, atol=5e-2)
    h = torch.randn(5, 16, dtype=torch.bfloat16)  # a bf16 activation meets fp32 parameters: fine under autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(h, z).dtype == torch.bfloat16
    with pytest.raises(TypeError, match="weight: expected dtype torch.bfloat16 like x"):  # not outside it
        layer(h, z.bfloat16())


@pytest.mark.parametrize("impl", impl_params(("triton",)))
def test_triton_split_k(impl, monkeypatch):
    """Split-K (the K axis cut into chunks, partials added in a fixed order by the epilogue kernel), reached by the
    config rule at a long K, also with a chunk boundary inside the z range; forced splits agree with the unsplit."""
    from fastgan._triton import joint_linear as tk

    device = IMPL_DEVICE[impl]
    interpret = device == "cpu"
    cfg = tk.config(20, 18, 150 + 7, torch.float32, "ieee", interpret)
    assert cfg.SPLIT > 1 and cfg.tiles(20, 18) * cfg.SPLIT >= min(132, 2 * cfg.SPLIT)
    for dtype in (torch.float64, torch.float32, torch.bfloat16):
        ins = _inputs(20, 150, 7, 18, device, dtype, bias=True, noncontig=True)
        torch.manual_seed(5)
        y, g1, _, _ = _orders(impl, ins, "lrelu", 0.2, 1.5)
        torch.manual_seed(5)
        ry, rg1, _, _ = _orders("reference", ins, "lrelu", 0.2, 1.5)
        close(y, ry, dtype, "split-K forward")
        for k, (a, e) in enumerate(zip(g1, rg1)):
            close(a, e, dtype, f"split-K gradient #{k}")
        x, z, w, u, b = ins
        base = tk.matmul_act(x, w.t(), z, u.t(), b, 2, 0.2, 1.5, cfg=tk.Config(16, 16, 16, 1, 1, 1, 157))
        for split, ks in ((3, 64), (10, 16), (2, 144)):  # 144: the second chunk starts inside the z range
            forced = tk.matmul_act(x, w.t(), z, u.t(), b, 2, 0.2, 1.5, cfg=tk.Config(16, 16, 16, 1, 1, split, ks))
            close(forced, base, dtype, f"split {split} x {ks}")
