"""fastgan.nn networks: BiGAN MLPs (D, G, E), the MLP critic and DCGAN-style G, D, E.

Output shapes (the full 1024-unit BiGAN nets once, everything else tiny); the fused nets against their eager twins
(eager=True, torch ops) after load_state_dict: same parameter names and shapes, same outputs, parameter gradients and
batch-norm running statistics, in train and eval mode, float64 (1e-10) and float32 (1e-5, plus the eager float32
net's own rounding error where long reductions round differently); a gradient penalty through D(x, z) (grad
w.r.t. x and z with create_graph, then a second backward) equal to the twin's; bad sizes raise ValueError naming the
argument.
"""
import copy

import pytest
import torch

import fastgan
from fastgan.nn import (
    BiGANDiscriminator,
    BiGANEncoder,
    BiGANGenerator,
    DCGANDiscriminator,
    DCGANEncoder,
    DCGANGenerator,
    GANDiscriminator,
    MLPCritic,
)

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
N = 5


def close(actual, expected, dtype, what, slack=0.0):
    """Relative tolerance of the dtype; the absolute part scales with the tensor's magnitude (plus `slack`)."""
    tol = TOL[dtype]
    scale = max(1.0, expected.detach().abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale + slack, msg=lambda m: f"{what}: {m}")


# name -> (constructor, kwargs, input shapes (the first one batch N), output shape)
NETS = {
    "bigan-D": (BiGANDiscriminator, dict(x_dim=12, z_dim=5, hidden=16), [(N, 12), (N, 5)], (N,)),
    "bigan-G": (BiGANGenerator, dict(z_dim=5, x_dim=12, hidden=16), [(N, 5)], (N, 12)),
    "bigan-E": (BiGANEncoder, dict(x_dim=12, z_dim=5, hidden=16), [(N, 12)], (N, 5)),
    "bigan-G-tanh": (BiGANGenerator, dict(z_dim=5, x_dim=12, hidden=16, out_act="tanh"), [(N, 5)], (N, 12)),
    "gan-D": (GANDiscriminator, dict(x_dim=12, hidden=16), [(N, 12)], (N,)),
    "gan-D-nobn": (GANDiscriminator, dict(x_dim=12, hidden=16, batch_norm=False), [(N, 12)], (N,)),
    "bigan-D-nobn": (BiGANDiscriminator, dict(x_dim=12, z_dim=5, hidden=16, batch_norm=False), [(N, 12), (N, 5)], (N,)),
    "bigan-E-nobn": (BiGANEncoder, dict(x_dim=12, z_dim=5, hidden=16, batch_norm=False), [(N, 12)], (N, 5)),
    "critic-lrelu": (MLPCritic, dict(in_dim=12, hidden=(16, 8)), [(N, 12)], (N,)),
    "critic-relu": (MLPCritic, dict(in_dim=12, hidden=(16,), act="relu"), [(N, 12)], (N,)),
    "dcgan-D": (DCGANDiscriminator, dict(nc=3, size=32, base=4), [(N, 3, 32, 32)], (N,)),
    "dcgan-D-bn": (DCGANDiscriminator, dict(nc=3, size=32, base=4, batch_norm=True), [(N, 3, 32, 32)], (N,)),
    "dcgan-D-joint": (DCGANDiscriminator, dict(nc=1, size=32, base=4, z_dim=6, joint_hidden=16),
                      [(N, 1, 32, 32), (N, 6)], (N,)),
    "dcgan-D-joint-bn-64": (DCGANDiscriminator, dict(nc=3, size=64, base=2, batch_norm=True, z_dim=6),
                            [(N, 3, 64, 64), (N, 6)], (N,)),
    "dcgan-E": (DCGANEncoder, dict(nc=1, size=32, z_dim=6, base=4), [(N, 1, 32, 32)], (N, 6)),
    "dcgan-E-bn-64": (DCGANEncoder, dict(nc=3, size=64, z_dim=6, base=2, batch_norm=True), [(N, 3, 64, 64)], (N, 6)),
    "dcgan-G": (DCGANGenerator, dict(z_dim=6, nc=3, size=32, base=4), [(N, 6)], (N, 3, 32, 32)),
    "dcgan-G-bn": (DCGANGenerator, dict(z_dim=6, nc=1, size=32, base=4, batch_norm=True), [(N, 6)], (N, 1, 32, 32)),
    "dcgan-G-64": (DCGANGenerator, dict(z_dim=6, nc=3, size=64, base=2), [(N, 6)], (N, 3, 64, 64)),
}
JOINT = ["bigan-D", "dcgan-D-joint", "dcgan-D-joint-bn-64"]


def twins(name, dtype):
    """(fused, eager twin with the fused net's state) in dtype, train mode."""
    cls, kw, _, _ = NETS[name]
    fused = cls(**kw).to(dtype)
    eager = cls(**kw, eager=True).to(dtype)
    eager.load_state_dict(fused.state_dict())
    return fused, eager


def inputs(name, dtype, requires_grad=False):
    return [torch.randn(s, dtype=dtype, requires_grad=requires_grad) for s in NETS[name][2]]


@pytest.mark.parametrize("name", list(NETS))
def test_shapes(name):
    cls, kw, shapes, out_shape = NETS[name]
    for eager in (False, True):
        y = cls(**kw, eager=eager)(*inputs(name, torch.float32))
        assert y.shape == out_shape and y.dtype == torch.float32
        assert torch.isfinite(y).all()


def test_shapes_full_bigan():
    """The paper's sizes: 784-dim x, 50-dim z, 1024 hidden units."""
    x, z = torch.rand(4, 784), torch.randn(4, 50)
    d, g, e = BiGANDiscriminator(), BiGANGenerator(), BiGANEncoder()
    assert d(x, z).shape == (4,) and g(z).shape == (4, 784) and e(x).shape == (4, 50)
    assert d.fc1.weight.shape == (1024, 784) and d.fc1.z_weight.shape == (1024, 50)
    assert d.fc2.z_weight.shape == (1024, 50) and d.out.z_weight.shape == (1, 50)
    assert g.fc2.weight.shape == (1024, 1024) and e.out.weight.shape == (50, 1024)


@pytest.mark.parametrize("size, depth", [(32, 3), (64, 4)])
def test_dcgan_geometry(size, depth):
    """DCGAN's geometry at every size: log2(S / 4) stride-2 layers, the dense layers meeting the convs at 4 x 4
    (widths base .. 2^(L-1) base); at S = 32 the G that starts at 2 x 2 collapses (docs/models/dcgan.md)."""
    from fastgan.nn.dcgan import n_layers
    assert n_layers(size) == depth
    g = DCGANGenerator(z_dim=3, nc=2, size=size, base=2, batch_norm=True)
    assert [m.in_channels for m in g.layers] == [2 * 2 ** i for i in reversed(range(depth))]
    assert g.fc.out_features == 2 * 2 ** (depth - 1) * 16 and g.layers[-1].out_channels == 2
    assert [name for name, _ in g.named_children() if name.startswith("deconv")] == [
        f"deconv{i + 1}" for i in range(depth)]
    h = g.fc(torch.randn(N, 3)).unflatten(1, (g.layers[0].in_channels, -1))
    assert h.shape[-1] == 16  # 4 x 4
    for make in (DCGANDiscriminator, DCGANEncoder):
        d = make(nc=2, size=size, base=2)
        assert len(d.layers) == depth and d.features == 2 * 2 ** (depth - 1) * 16
        assert d.trunk(torch.randn(N, 2, size, size)).shape == (N, d.features)


def test_generator_range_and_no_redundant_bias():
    g = DCGANGenerator(z_dim=6, nc=3, size=32, base=4, batch_norm=True)
    assert g(torch.randn(N, 6) * 10).abs().max() <= 1
    # layers followed by a batch norm carry no bias: the batch mean would cancel it
    assert g.fc.bias is None and g.deconv1.bias is None and g.deconv3.bias is not None and not hasattr(g, "deconv4")
    assert DCGANDiscriminator(nc=3, size=32, base=4, batch_norm=True).conv1.bias is not None
    for net in (BiGANDiscriminator(8, 3, 16), BiGANGenerator(3, 8, 16), BiGANEncoder(8, 3, 16)):
        assert net.fc2.bias is None and net.fc1.bias is not None
        assert not any(p is not None for p in net.bn2.parameters())


@pytest.mark.parametrize("name", list(NETS))
def test_state_dicts_interchangeable(name):
    fused, eager = twins(name, torch.float64)
    fs, es = fused.state_dict(), eager.state_dict()
    assert list(fs) == list(es)
    assert all(fs[k].shape == es[k].shape for k in fs)
    # the fused net runs fastgan layers only, the twin torch ones only
    assert all(getattr(m, "eager", False) is False for m in fused.modules())
    assert all(getattr(m, "eager", True) is True for m in eager.modules() if hasattr(m, "eager"))
    assert not any(type(m).__name__ in ("JointLinear", "BiasAct") for m in eager.modules())
    assert any(type(m).__name__ in ("JointLinear", "BiasAct", "LinearAct", "ConvAct") for m in fused.modules())


def _step(net, xs, w, xs_eval):
    """Train-mode forward, backward of a weighted sum, then an eval-mode forward: {what: tensor}."""
    ins = [x.detach().clone().requires_grad_() for x in xs]
    y = net(*ins)
    (y * w.to(y.dtype)).sum().backward()
    out = {"output": y.detach()}
    out.update({f"grad of input {i}": x.grad for i, x in enumerate(ins)})
    out.update({f"grad of {n}": p.grad for n, p in net.named_parameters()})
    # the same batch gives the same batch-norm running statistics; eval mode uses them
    out.update({f"buffer {n}": b.to(y.dtype) for n, b in net.named_buffers()})
    net.eval()
    with torch.no_grad():
        out["eval output"] = net(*[x.to(y.dtype) for x in xs_eval])
    return out


def _penalty(net, xs):
    """grad of D w.r.t. x (and z) with create_graph, a penalty on it, a second backward into the parameters."""
    ins = [x.detach().clone().requires_grad_() for x in xs]
    y = net(*ins)
    grads = torch.autograd.grad(y.sum(), ins, create_graph=True)
    for g, inp in zip(grads, ins):
        assert g is not None and g.shape == inp.shape and g.abs().sum() > 0
    penalty = sum(g.flatten(1).pow(2).sum(1) for g in grads)
    ((penalty - 1) ** 2).mean().backward()
    out = {"output": y.detach()}
    out.update({f"d output / d input {i}": g.detach() for i, g in enumerate(grads)})
    # None: the penalty does not depend on the parameter (the output bias): the same as zeros
    out.update({f"penalty grad of {n}": torch.zeros_like(p) if p.grad is None else p.grad
                for n, p in net.named_parameters()})
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    return out


def compare_twins(name, dtype, fn, impl="auto"):
    """fn(fused net, inputs) against fn(eager twin, inputs), key by key; the fused net's ops on backend `impl` (the nets
    take the backend in force: fastgan.use_backend).

    float32: beyond the relative tolerance, the fused result may differ from the eager one by 3x the rounding
    error the eager float32 net itself makes (measured against a float64 copy of it): long float32 reductions
    (a bias gradient sums N H W terms) round differently in a different order.
    """
    fused, eager = twins(name, dtype)
    truth_net = copy.deepcopy(eager).double() if dtype == torch.float32 else None
    xs = inputs(name, dtype)
    with fastgan.use_backend(impl):
        a = fn(fused, xs)
    b = fn(eager, xs)
    assert list(a) == list(b)
    slack = {}
    if truth_net is not None:
        truth = fn(truth_net, [x.double() for x in xs])
        slack = {k: 3 * (b[k].double() - truth[k]).abs().max().item() if b[k].numel() else 0.0 for k in b}
    for k in a:
        assert a[k] is not None and b[k] is not None, k
        close(a[k], b[k], dtype, k, slack.get(k, 0.0))


@pytest.mark.parametrize("impl", ["auto", "cpp", "reference"])  # cpp: the fused op where auto leaves a pair to torch
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(NETS))
def test_twin_forward_backward(name, dtype, impl):
    w = torch.randn(NETS[name][3], dtype=torch.float64)
    xs_eval = inputs(name, torch.float64)
    compare_twins(name, dtype, lambda net, xs: _step(net, xs, w, xs_eval), impl)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", JOINT + ["critic-lrelu", "dcgan-D-bn"])
def test_gradient_penalty_matches_twin(name, dtype):
    compare_twins(name, dtype, _penalty)


@pytest.mark.parametrize("make, arg", [
    (lambda: BiGANDiscriminator(x_dim=0), "x_dim"),
    (lambda: BiGANDiscriminator(z_dim=-3), "z_dim"),
    (lambda: BiGANDiscriminator(hidden=0), "hidden"),
    (lambda: BiGANGenerator(z_dim=0), "z_dim"),
    (lambda: BiGANGenerator(x_dim=2.5), "x_dim"),
    (lambda: BiGANEncoder(x_dim=True), "x_dim"),
    (lambda: BiGANEncoder(hidden=-1), "hidden"),
    (lambda: MLPCritic(0), "in_dim"),
    (lambda: MLPCritic(8, hidden=(16, 0)), "hidden"),
    (lambda: MLPCritic(8, hidden=16), "hidden"),
    (lambda: MLPCritic(8, act="nope"), "act"),
    (lambda: DCGANGenerator(size=48), "size"),
    (lambda: DCGANGenerator(size=128), "size"),
    (lambda: DCGANGenerator(z_dim=0), "z_dim"),
    (lambda: DCGANGenerator(nc=0), "nc"),
    (lambda: DCGANDiscriminator(size=16), "size"),
    (lambda: DCGANDiscriminator(size=64.0), "size"),
    (lambda: DCGANDiscriminator(base=0), "base"),
    (lambda: DCGANDiscriminator(z_dim=0), "z_dim"),
    (lambda: DCGANDiscriminator(joint_hidden=8), "joint_hidden"),
    (lambda: DCGANDiscriminator(z_dim=4, joint_hidden=0), "joint_hidden"),
    (lambda: DCGANEncoder(size=31), "size"),
    (lambda: DCGANEncoder(z_dim=-1), "z_dim"),
    (lambda: DCGANEncoder(nc=0), "nc"),
])
def test_bad_arguments(make, arg):
    with pytest.raises(ValueError, match=f"^{arg}:"):
        make()


def test_bad_inputs():
    d = DCGANDiscriminator(nc=3, size=32, base=2)
    with pytest.raises(ValueError, match="^x:"):
        d(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="^x:"):
        DCGANEncoder(nc=1, size=32, z_dim=4, base=2)(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="^z:"):
        d(torch.randn(2, 3, 32, 32), torch.randn(2, 4))
    with pytest.raises(ValueError, match="^z:"):
        DCGANDiscriminator(nc=3, size=32, base=2, z_dim=4)(torch.randn(2, 3, 32, 32))


def test_linear_act_native_policy(monkeypatch):
    """fastgan.backend.linear_act_native (issue 29): auto on CPU tensors leaves a Linear + relu / lrelu / tanh /
    identity at gain 1 without a clamp to torch's ops; anything else, or an explicit backend, runs fastgan's op."""
    import fastgan
    from fastgan.backend import linear_act_native as native

    monkeypatch.delenv("FASTGAN_BACKEND", raising=False)
    x, x64 = torch.ones(2, 3), torch.ones(2, 3, dtype=torch.float64)
    assert native(None, x, "lrelu", 1.0, None) and native("auto", x64, "relu", 1.0, "none")
    assert not native("cpp", x, "lrelu", 1.0, None)  # asked for by name: it runs
    assert not native(None, x, "lrelu", 2 ** 0.5, None) and not native(None, x, "lrelu", 1.0, 256.0)
    assert native(None, x, "tanh", 1.0, None) and not native(None, x, "sigmoid", 1.0, None)
    assert not native(None, x.to("meta"), "relu", 1.0, None)
    assert not native(None, x.bfloat16(), "relu", 1.0, None)  # half precision: the fused pass rounds once
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not native(None, x, "relu", 1.0, None)
    with fastgan.use_backend("cpp"):
        assert not native(None, x, "relu", 1.0, None)
    monkeypatch.setenv("FASTGAN_BACKEND", "reference")
    assert not native(None, x, "relu", 1.0, None)


@pytest.mark.parametrize("act,impl,fused", [("lrelu", None, False), ("lrelu", "cpp", True), ("tanh", None, False),
                                            ("sigmoid", None, True), ("tanh", "cpp", True)])
def test_linear_act_runs_the_measured_faster_form(monkeypatch, act, impl, fused):
    from fastgan.nn import layers
    from fastgan.nn.layers import LinearAct

    monkeypatch.delenv("FASTGAN_BACKEND", raising=False)
    calls = []
    real = layers.bias_act
    monkeypatch.setattr(layers, "bias_act", lambda *a, **k: calls.append(a) or real(*a, **k))
    torch.manual_seed(0)
    m = LinearAct(6, 4, act=act, impl=impl)
    twin = copy.deepcopy(m)
    twin.eager = True
    x = torch.randn(3, 6)
    torch.testing.assert_close(m(x), twin(x))
    assert len(calls) == (1 if fused else 0)  # the eager twin never calls it


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_bias_free_relu_runs_as_torch_on_cpu_under_auto(monkeypatch, dtype):
    """fastgan.backend.act_native (issue 29): BiasAct(None, relu / lrelu) at gain 1 without a clamp is torch's
    activation on CPU tensors under auto, in every dtype (the same arithmetic: equal outputs and gradients, first and
    second order, to the fused op's); a bias, a gain (relu's default is sqrt 2), a clamp, another activation or a named
    backend runs bias_act."""
    import fastgan
    from fastgan.backend import act_native as native
    from fastgan.nn import bias_act as mod
    from fastgan.nn.bias_act import BiasAct

    monkeypatch.delenv("FASTGAN_BACKEND", raising=False)
    x = torch.ones(2, 3, dtype=dtype)
    assert native(None, x, None, "relu", None, 1.0, None) and native("auto", x, None, "lrelu", 0.1, 1.0, "none")
    assert not native(None, x, torch.zeros(3), "relu", None, 1.0, None)  # a bias: fused
    assert not native(None, x, None, "relu", None, None, None)  # relu's default gain is sqrt(2)
    assert not native(None, x, None, "lrelu", -0.5, 1.0, None) and not native(None, x, None, "tanh", None, 1.0, None)
    assert not native(None, x, None, "relu", None, 1.0, 4.0) and not native("cpp", x, None, "relu", None, 1.0, None)
    assert not native(None, x.to("meta"), None, "relu", None, 1.0, None)
    assert not native(None, torch.ones(2, 3, dtype=torch.int32), None, "relu", None, 1.0, None)
    with fastgan.use_backend("cpp"):
        assert not native(None, x, None, "relu", None, 1.0, None)
    calls = []
    real = mod.bias_act
    monkeypatch.setattr(mod, "bias_act", lambda *a, **k: calls.append(a) or real(*a, **k))
    for act, alpha in (("relu", None), ("lrelu", 0.2)):
        m, named = BiasAct(None, act, alpha, gain=1.0), BiasAct(None, act, alpha, gain=1.0, impl="cpp")
        x0 = torch.randn(5, 7, dtype=dtype)
        xs = [x0.clone().requires_grad_() for _ in range(2)]
        ys = [m(xs[0]), named(xs[1])]
        assert len(calls) == 1  # the named backend only
        torch.testing.assert_close(ys[0], ys[1], rtol=0, atol=0)
        gs = [torch.autograd.grad((y * y).sum(), xi, create_graph=True)[0] for y, xi in zip(ys, xs)]
        torch.testing.assert_close(gs[0], gs[1], rtol=0, atol=0)
        calls.clear()


def test_linear_route_under_no_grad_takes_torchs_form(monkeypatch):
    """Issue 29: under autocast / in half precision with grad mode off (G's forward for a critic step) a Linear +
    NATIVE_LINEAR_CPU activation at gain 1 runs as torch's form: no backward to serve. A gain, a clamp or a named
    backend keep fastgan's forms; grad mode on keeps joint_linear."""
    from fastgan.backend import linear_route

    monkeypatch.delenv("FASTGAN_BACKEND", raising=False)
    x = torch.randn(6, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert linear_route(None, x, "relu", 1.0, None) == "joint"
        assert linear_route(None, x, "tanh", 1.0, None) == "fused"
        with torch.no_grad():
            for act in ("linear", "relu", "lrelu", "tanh"):
                assert linear_route(None, x, act, 1.0, None) == "torch", act
            assert linear_route(None, x, "relu", 2.0, None) == "joint"
            assert linear_route(None, x, "relu", 1.0, 4.0) == "fused"
            assert linear_route("cpp", x, "relu", 1.0, None) == "fused"
            assert linear_route(None, x, "sigmoid", 1.0, None) == "fused"
    with torch.inference_mode():
        assert linear_route(None, x.bfloat16(), "lrelu", 1.0, None) == "torch"
    assert linear_route(None, x.bfloat16(), "lrelu", 1.0, None) == "joint"


def test_linear_act_under_cpu_autocast_runs_joint_linear_with_the_fused_numerics(monkeypatch):
    """Issue 29: under CPU autocast LinearAct(relu / lrelu) runs joint_linear with an empty z range
    (fastgan.backend.linear_act_joint), whose output and gradients equal the fused form's (GEMM, then bias_act):
    the same bf16 GEMM output, then bias and activation in fp32, one rounding."""
    import fastgan
    from fastgan.backend import linear_act_joint as joint
    from fastgan.nn import layers
    from fastgan.nn.layers import LinearAct

    monkeypatch.delenv("FASTGAN_BACKEND", raising=False)
    x = torch.randn(6, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert joint(None, x, "lrelu", 1.0, None) and not joint("cpp", x, "lrelu", 1.0, None)
        assert not joint(None, x, "tanh", 1.0, None) and not joint(None, x[None], "relu", 1.0, None)
        assert not joint(None, x, "relu", 1.0, 4.0)
    assert not joint(None, x, "relu", 1.0, None) and joint(None, x.bfloat16(), "relu", 1.0, None)
    calls = []
    real = layers.joint_linear
    monkeypatch.setattr(layers, "joint_linear", lambda *a, **k: calls.append(1) or real(*a, **k))
    for act in ("relu", "lrelu"):
        torch.manual_seed(0)
        m = LinearAct(5, 7, act=act)
        outs = []
        for impl_scope in ("auto", "cpp"):  # auto: joint_linear; cpp named: the fused form (GEMM, then bias_act)
            xg = x.clone().requires_grad_(True)
            with fastgan.use_backend(impl_scope), torch.autocast("cpu", dtype=torch.bfloat16):
                y = m(xg)
            g = torch.autograd.grad(y.float().square().sum(), [xg, m.weight, m.bias])
            outs.append((y, *g))
        assert len(calls) == 1
        calls.clear()
        for a, b in zip(*outs):
            assert a.dtype == b.dtype
            torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-2)  # bf16
        assert torch.equal(outs[0][0], outs[1][0])  # the forward: bit for bit
