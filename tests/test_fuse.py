"""fastgan.fuse on a zoo of plain-torch GAN models (written here): outputs, parameter gradients and gradient-penalty
gradients (second order) equal to the unfused model on every backend; state_dict keys and parameter order unchanged;
the report; idempotence; what is left alone and why; the errors; DDP; torch.compile without graph breaks.

Tolerances by dtype (never loosened to pass): fp64 1e-12 relative (the fused and unfused models differ only in where
the bias is added, a few roundings of 1.1e-16 amplified by depth and reductions), fp32 1e-5."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import IMPL_DEVICE, impl_params, join, rendezvous
from torch import nn

import fastgan
from fastgan import backend
from fastgan.nn.fusion import FusedAway, FusedLayer

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def close(a, b, what, dtype=torch.float64):
    tol = TOL[dtype]
    scale = max(1.0, b.detach().abs().max().item()) if b.numel() else 1.0
    torch.testing.assert_close(a, b, rtol=tol, atol=tol * scale, msg=lambda m: f"{what}: {m}")


class Scale(nn.Module):  # a StyleGAN-style constant gain, as users write it
    def __init__(self, gain):
        super().__init__()
        self.gain = gain

    def forward(self, x):
        return x * self.gain


class Mixed(nn.Module):  # Sequential + functional calls in forward: the fx path
    def __init__(self):
        super().__init__()
        self.body, self.fc = nn.Sequential(nn.Linear(6, 12), nn.SELU()), nn.Linear(12, 12)
        self.conv, self.out, self.head = nn.Conv1d(1, 2, 3, padding=1), nn.Linear(24, 12), nn.Linear(12, 1)

    def forward(self, x):
        h = F.leaky_relu(self.fc(self.body(x)), negative_slope=0.2) * math.sqrt(2)
        h = torch.tanh(self.conv(h.unsqueeze(1))).flatten(1)
        h = F.hardtanh(F.softplus(self.out(h)), -2.0, 2.0)
        return self.head(h)


class Loop(nn.Module):  # a ModuleList loop; the head's output is used twice (not fusable)
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(6 if i == 0 else 10, 10) for i in range(3)])
        self.acts = nn.ModuleList([nn.SiLU(), nn.ELU(0.7), nn.Sigmoid()])
        self.head = nn.Linear(10, 1)

    def forward(self, x):
        for block, act in zip(self.blocks, self.acts):
            x = act(block(x))
        o = self.head(x)
        return torch.relu(o) + o


def mlp_g():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.LeakyReLU(0.2), nn.Linear(16, 6), nn.Tanh())


def mlp_d():
    return nn.Sequential(nn.Linear(6, 16), nn.LeakyReLU(0.2), nn.Linear(16, 16), nn.ELU(0.5), nn.Linear(16, 16),
                         nn.SiLU(), nn.Linear(16, 1))


def dcgan_g():
    return nn.Sequential(nn.ConvTranspose2d(4, 8, 4, 1, 0, bias=False), nn.BatchNorm2d(8), nn.ReLU(True),
                         nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(4, 3, 4, 2, 1), nn.Tanh())


def dcgan_d():
    return nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(8, 8, 3, 1, 1, padding_mode="reflect"), nn.LeakyReLU(0.2),
                         nn.Conv2d(8, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16), nn.LeakyReLU(0.2),
                         nn.Conv2d(16, 1, 4, 1, 0), nn.Flatten())


def mapping():  # 8 x (Linear, LeakyReLU, constant gain); the last block ends in a clamp instead of the gain
    blocks = [m for _ in range(8) for m in (nn.Linear(8, 8), nn.LeakyReLU(0.2), Scale(math.sqrt(2)))]
    return nn.Sequential(nn.Identity(), *blocks[:-1], nn.Hardtanh(-4.0, 4.0))


# name -> (builder, input shape, the fused layers' paths)
ZOO = {
    "mlp_g": (mlp_g, (5, 4), ["0", "2", "4"]),
    "mlp_d": (mlp_d, (5, 6), ["0", "2", "4"]),
    "dcgan_g": (dcgan_g, (3, 4, 1, 1), ["3", "5"]),
    "dcgan_d": (dcgan_d, (3, 3, 16, 16), ["0", "2"]),
    "mapping": (mapping, (4, 8), [str(1 + 3 * i) for i in range(8)]),
    "mixed": (Mixed, (5, 6), ["body.0", "fc", "conv", "out"]),
    "loop": (Loop, (5, 6), ["blocks.0", "blocks.1", "blocks.2"]),
}


def grads(model, x):
    """Output, parameter gradients, and the gradients of the penalty |d out / d x|^2 (a double backward)."""
    x, params = x.clone().requires_grad_(True), list(model.parameters())
    out = model(x)
    gs = torch.autograd.grad(out.square().sum(), params + [x], create_graph=True)
    return [out] + list(gs) + list(torch.autograd.grad(gs[-1].square().sum(), params, materialize_grads=True))


def check_same(model, fused, x, dtype=torch.float64):
    ref, got = grads(model, x), grads(fused, x)
    names = ["output"] + [f"grad {n}" for n, _ in model.named_parameters()] + ["grad x"] + \
        [f"penalty grad {n}" for n, _ in model.named_parameters()]
    for name, a, b in zip(names, got, ref):
        close(a, b, name, dtype)


@pytest.mark.parametrize("impl", impl_params())
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_equals_unfused(name, impl):
    (build, shape, paths), device = ZOO[name], IMPL_DEVICE[impl]
    model = build().double().to(device)
    fused, report = fastgan.fuse(model, impl=impl, report=True)
    assert sorted(p.layer for p in report.fused) == sorted(paths), str(report)
    for p in paths:
        assert isinstance(fused.get_submodule(p), FusedLayer) and fused.get_submodule(p).fastgan_epilogue.impl == impl
    check_same(model, fused, torch.randn(shape, dtype=torch.float64, device=device))


@pytest.mark.parametrize("name", list(ZOO))
def test_state_dict_and_parameters_unchanged(name):
    build, shape, _ = ZOO[name]
    fused = fastgan.fuse(model := build())
    assert list(fused.state_dict()) == list(model.state_dict())
    assert [n for n, _ in fused.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert all(p is not q for p, q in zip(fused.parameters(), model.parameters()))  # inplace=False: a deep copy
    other = build()
    other.load_state_dict(fused.state_dict())  # fused -> plain
    fused.load_state_dict(build().state_dict())  # plain -> fused
    model.load_state_dict(fused.state_dict())
    x = torch.randn(shape)
    close(fused(x), model(x), "after loading both ways", torch.float32)


def test_inplace_keeps_parameter_objects_and_optimiser():
    model = mlp_d()
    params, twin = list(model.parameters()), copy.deepcopy(model)
    opt, opt_twin = torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(twin.parameters(), lr=0.1)
    fused = fastgan.fuse(model, inplace=True)
    assert fused is model and all(p is q for p, q in zip(model.parameters(), params))
    for m, o in ((fused, opt), (twin, opt_twin)):
        o.zero_grad()
        m(torch.ones(7, 6)).sum().backward()
        o.step()
    for (n, p), q in zip(fused.named_parameters(), twin.parameters()):
        close(p, q, f"{n} after an SGD step", torch.float32)


def test_report_idempotence_and_repr():
    model = nn.Sequential(mapping(), Mixed(), Loop())
    fused, rep = fastgan.fuse(model, report=True)
    assert [(p.layer, p.how) for p in rep.fused if p.layer.startswith("1.")] == \
        [("1.fc", "fx"), ("1.conv", "fx"), ("1.out", "fx"), ("1.body.0", "sequential")]
    mix = {p.layer: p for p in rep.fused}
    assert mix["1.fc"].epilogue == fastgan.nn.fusion.Epilogue("lrelu", 0.2, math.sqrt(2), None, None)
    assert mix["1.out"].epilogue.act == "softplus" and mix["1.out"].epilogue.clamp == 2.0 and mix["1.out"].note
    assert mix["0.22"].epilogue.clamp == 4.0 and mix["0.22"].absorbed == ("0.23 (LeakyReLU(negative_slope=0.2))",
                                                                          "0.24 (Hardtanh(-4.0, 4.0))")
    assert mix["0.1"].epilogue.gain == math.sqrt(2) and isinstance(fused[0][3], FusedAway)
    assert [n.path for n in rep.not_fused] == ["2.head"] and "used 2 times" in rep.not_fused[0].reason
    assert all(p.layer in str(rep) for p in rep.fused) and "2.head" in str(rep)
    again, rep2 = fastgan.fuse(fused, report=True)  # idempotent
    assert not rep2.fused and sorted(p.layer for p in rep2.already_fused) == sorted(p.layer for p in rep.fused)
    assert repr(again) == repr(fused) and list(again.state_dict()) == list(model.state_dict())
    close(again[0](torch.ones(4, 8)), fused[0](torch.ones(4, 8)), "fused twice", torch.float32)


def test_impl_none_is_the_backend_in_force_when_the_fused_ops_run(monkeypatch):
    fused = fastgan.fuse(mlp_g())
    assert fused[0].fastgan_epilogue.impl is None
    assert fastgan.fuse(mlp_g(), impl="cpp")[0].fastgan_epilogue.impl == "cpp"
    op, seen = fastgan.ops.OPS["bias_act"], []
    real_resolve = op.resolve
    monkeypatch.setattr(op, "resolve", lambda impl, device: seen.append(real_resolve(impl, device)) or seen[-1])
    with fastgan.use_backend("reference"):
        fused(torch.randn(3, 4))
    assert seen == ["reference"] * 3  # the scope's backend, at call time (three fused layers)


ACTS = [nn.ReLU(), nn.LeakyReLU(0.2), nn.LeakyReLU(-0.3), nn.Tanh(), nn.Sigmoid(), nn.ELU(0.5), nn.SELU(), nn.SiLU(),
        nn.Softplus(), nn.Identity(), nn.Hardtanh(-0.5, 0.5), Scale(3.0)]
FUNCS = {  # functional forms the fx path recognises, each after a Linear
    "F.relu": F.relu, "torch.relu": torch.relu, "Tensor.relu": lambda h: h.relu(),
    "F.leaky_relu": lambda h: F.leaky_relu(h, negative_slope=0.1), "F.elu": lambda h: F.elu(h, 2.0),
    "F.selu": F.selu, "F.silu": F.silu, "F.softplus": F.softplus, "torch.tanh": torch.tanh,
    "torch.sigmoid": torch.sigmoid, "F.hardtanh": lambda h: F.hardtanh(h, -0.3, 0.3), "mul": lambda h: 0.5 * h,
    "relu_ * 2": lambda h: torch.relu_(h).mul(2.0),
}


class After(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fc, self.fn = nn.Linear(5, 7), fn

    def forward(self, x):
        return self.fn(self.fc(x))


@pytest.mark.parametrize("act", ACTS + list(FUNCS), ids=lambda a: a if isinstance(a, str) else repr(a))
def test_each_activation_equals_torch(act):
    """fp64, pre-activations spread over [-6, 6] (a clamp and the negative branches active)."""
    model = (After(FUNCS[act]) if isinstance(act, str) else nn.Sequential(nn.Linear(5, 7), act)).double()
    fused, rep = fastgan.fuse(model, impl="cpp", report=True)
    assert [p.layer for p in rep.fused] == (["fc"] if isinstance(act, str) else ["0"]), str(rep)
    check_same(model, fused, 3 * torch.randn(9, 5, dtype=torch.float64))


def test_softplus_threshold_deviation_is_measured():
    """torch's Softplus is linear above threshold 20, fastgan's is the exact log(1+e^x): fp64 sees up to 2.1e-9
    (documented in docs/fuse.md), fp32 sees nothing; a threshold below 20 is not fused."""
    model = nn.Sequential(nn.Linear(1, 1), nn.Softplus()).double()
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
    fused = fastgan.fuse(model, impl="cpp")
    x = torch.linspace(15, 40, 501, dtype=torch.float64).unsqueeze(1)
    dev = (fused(x) - model(x)).abs().max().item()
    assert 1e-12 < dev <= math.log1p(math.exp(-20.0)) * (1 + 1e-6)
    close(fused.float()(x.float()), model.float()(x.float()), "softplus fp32", torch.float32)
    _, rep = fastgan.fuse(nn.Sequential(nn.Linear(1, 1), nn.Softplus(threshold=10)), report=True)
    assert not rep.fused and "threshold=10" in rep.not_fused[0].reason


class MyReLU(nn.ReLU):
    def forward(self, x):
        return super().forward(x) + 1.0


@pytest.mark.parametrize("case, reason", [
    (lambda: nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU()), "no bias"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.Softplus(beta=2.0)), "beta=2.0"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.Hardtanh(-1.0, 2.0)), "symmetric"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.GELU()), "no such activation"),
    (lambda: After(lambda h: torch.tanh(h) * h), "used 2 times"),
    (lambda: nn.Sequential(nn.Linear(4, 4), MyReLU()), None),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU()), "a normalisation, not an activation"),
])
def test_not_fusable_left_exactly_as_it_was(case, reason):
    model = case()
    before = [(n, type(m), m) for n, m in model.named_modules()]
    fused, rep = fastgan.fuse(model, inplace=True, report=True)
    assert not rep.fused and [(n, type(m), m) for n, m in fused.named_modules()] == before
    assert (reason is None and not rep.not_fused) or reason in rep.not_fused[0].reason, str(rep)


def test_partial_chains():
    """torch.clamp stays (the tanh fuses); a shared layer is not fused."""
    model = After(lambda h: torch.clamp(torch.tanh(h), -0.5, 0.5)).double()
    fused, rep = fastgan.fuse(model, impl="cpp", report=True)
    assert [p.epilogue.act for p in rep.fused] == ["tanh"] and "clamp" in str(fused.forward.__code__.co_names)
    check_same(model, fused, torch.randn(6, 5, dtype=torch.float64) * 3)
    lin = nn.Linear(4, 4)
    _, rep = fastgan.fuse(nn.Sequential(lin, nn.ReLU(), nn.Sequential(lin, nn.Tanh())), report=True)
    assert not rep.fused and "2 paths" in rep.not_fused[0].reason


class TrainingDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.seq = nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.ReLU())

    def forward(self, x):
        return self.seq(torch.relu(self.fc(x)) * (2 if self.training else 1))


class Counting(TrainingDependent):
    def forward(self, x):
        self.calls = getattr(self, "calls", 0) + 1
        return self.seq(torch.relu(self.fc(x)))


class DataDependent(TrainingDependent):
    def forward(self, x):
        return self.seq(torch.relu(self.fc(x)) if x.sum() > 0 else x)


class Optional(TrainingDependent):
    def forward(self, x, y=None):
        return self.seq(torch.relu(self.fc(x)) if y is None else y)


@pytest.mark.parametrize("cls, reason", [(TrainingDependent, "self.training"), (Counting, "writes module attributes"),
                                         (DataDependent, "cannot trace"), (Optional, "optional")])
def test_fx_refuses_what_a_graph_cannot_stand_for(cls, reason):
    model = cls()
    fused, rep = fastgan.fuse(model, report=True)
    assert [p.layer for p in rep.fused] == ["seq.0"] and reason in rep.untraced[0].reason, str(rep)
    assert type(fused) is cls and "calls" not in vars(fused) and type(fused.fc) is nn.Linear
    _, rep = fastgan.fuse(model, trace=False, report=True)
    assert [p.layer for p in rep.fused] == ["seq.0"] and not rep.untraced


@pytest.mark.parametrize("layer, shape", [
    (lambda: nn.Linear(3, 4), (2, 5, 3)), (lambda: nn.Conv2d(2, 3, 3), (2, 4, 4)),  # 3-d input; unbatched conv
    (lambda: nn.Conv1d(2, 3, 3, padding=1, padding_mode="circular"), (2, 2, 5)),
    (lambda: nn.Conv3d(2, 3, 2), (2, 2, 3, 3, 3)),
    (lambda: nn.ConvTranspose1d(2, 4, 3, stride=2, output_padding=1, groups=2), (2, 2, 5)),
    (lambda: nn.ConvTranspose3d(2, 3, 2, dilation=2), (2, 2, 3, 3, 3)),
    (lambda: nn.utils.spectral_norm(nn.Linear(6, 8)), (5, 6)),  # a forward pre-hook: it keeps running
    (lambda: nn.utils.parametrizations.spectral_norm(nn.Linear(6, 8)), (5, 6)),  # a parametrized class of its own
], ids=["linear-3d", "conv2d-unbatched", "conv1d-circular", "conv3d", "convT1d", "convT3d", "sn-hook", "sn-param"])
def test_each_layer_kind(layer, shape):
    model = nn.Sequential(layer(), nn.ELU(0.5)).double().eval()
    fused, rep = fastgan.fuse(model, impl="cpp", report=True)
    assert [p.layer for p in rep.fused] == ["0"] and list(fused.state_dict()) == list(model.state_dict())
    check_same(model, fused, torch.randn(shape, dtype=torch.float64))


def test_errors():
    with pytest.raises(ValueError, match="impl: expected None or one of"):
        fastgan.fuse(mlp_g(), impl="fast")
    with pytest.raises(TypeError, match="module: expected a torch.nn.Module"):
        fastgan.fuse(lambda x: x)
    with pytest.raises(TypeError, match="inplace: expected a bool"):
        fastgan.fuse(mlp_g(), inplace=1)
    with torch.device("meta"), pytest.raises(ValueError, match="'0.weight' is on the meta device"):
        fastgan.fuse(mlp_g())
    hooked = [(2, "register_forward_hook", lambda *a: None, "'2' \\(Linear\\) has forward_hooks"),
              (3, "register_forward_pre_hook", lambda *a: None, "'3' \\(LeakyReLU\\) has forward_pre_hooks"),
              (2, "register_full_backward_hook", lambda *a: None, "'2' \\(Linear\\) has backward_hooks")]
    for idx, kind, hook, match in hooked:
        getattr((model := mlp_g())[idx], kind)(hook)
        with pytest.raises(ValueError, match=match):
            fastgan.fuse(model, inplace=True)
        assert type(model[0]) is nn.Linear  # refused before anything changed
    (model := mlp_g())[0].register_forward_pre_hook(lambda m, args: (args[0] * 2,))  # a layer's pre-hook keeps running
    close(fastgan.fuse(model)(torch.ones(3, 4)), model(torch.ones(3, 4)), "pre-hook", torch.float32)


def test_ddp():
    """fuse(ddp, inplace=True) fuses ddp.module in place (same Parameters); DDP(fuse(model)); fuse(ddp) refused."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    with rendezvous() as addr:
        join(addr, 0, 1)
        try:
            model = mlp_d().double()
            ddp = DDP(copy.deepcopy(model))
            with pytest.raises(TypeError, match="cannot be deep-copied"):
                fastgan.fuse(ddp)
            params, (fused, rep) = list(ddp.parameters()), fastgan.fuse(ddp, inplace=True, impl="cpp", report=True)
            assert fused is ddp and all(p is q for p, q in zip(ddp.parameters(), params))
            assert [p.layer for p in rep.fused] == ["module.0", "module.2", "module.4"]
            wrapped = DDP(fastgan.fuse(model, impl="cpp"))
            x = torch.randn(5, 6, dtype=torch.float64)
            for m in (ddp, wrapped):
                m.zero_grad()
                m(x).square().sum().backward()
            model(x).square().sum().backward()
            for (n, p), q, r in zip(model.named_parameters(), ddp.parameters(), wrapped.parameters()):
                close(q.grad, p.grad, f"DDP(fused inplace) grad {n}")
                close(r.grad, p.grad, f"DDP(fuse(model)) grad {n}")
            dist.barrier()
        finally:
            dist.destroy_process_group()


@pytest.mark.parametrize("impl", impl_params())
@pytest.mark.parametrize("name", ["mixed", "dcgan_d", "mapping", "loop"])
def test_compile_without_graph_breaks(name, impl):
    if impl == "triton" and backend.triton_interpreter():
        pytest.skip("torch.compile cannot trace Triton ops under the interpreter (kernels/bias_act.py)")
    (build, shape, _), device = ZOO[name], IMPL_DEVICE[impl]
    fused, x = fastgan.fuse(build().to(device), impl=impl), torch.randn(shape, device=device)
    torch._dynamo.reset()
    assert torch._dynamo.explain(fused)(x).graph_break_count == 0
    torch._dynamo.reset()
    results = []
    for m in (torch.compile(fused, backend="aot_eager", fullgraph=True), fused):
        fused.zero_grad()
        out = m(x)
        out.square().sum().backward()
        results.append([out] + [p.grad for p in fused.parameters()])
    for n, a, b in zip(["output"] + [n for n, _ in fused.named_parameters()], *results):
        close(a, b, f"compiled {n}", torch.float32)


def test_compile_inductor_and_the_gan_pattern():
    """torch.compile(fuse(model)) with the defaults (inductor; impl: the backend in force), and docs/fuse.md's
    pattern: G compiled, D fused and eager (the gradient penalty's double backward runs outside torch.compile)."""
    G, D = fastgan.fuse(mlp_g()), fastgan.fuse(mlp_d())
    z, real = torch.randn(8, 4), torch.randn(8, 6)
    torch._dynamo.reset()
    assert torch._dynamo.explain(G)(z).graph_break_count == 0
    torch._dynamo.reset()
    fake = torch.compile(G)(z)
    close(fake, G(z), "inductor-compiled fused G", torch.float32)
    loss = D(fake).mean() - D(real).mean() + fastgan.gradient_penalty(D, real, fake.detach())
    loss.backward()
    assert all(p.grad is not None for p in D.parameters()) and all(p.grad is not None for p in G.parameters())


def test_linear_relu_pairs_run_as_torch_ops_on_cpu_under_auto(monkeypatch):
    """Issue 29: on CPU tensors with the auto backend a fused Linear + relu / lrelu / tanh at gain 1 runs as F.linear
    (the bias inside the GEMM) + torch's activation, measured faster there; the report says so. An explicit backend, a
    gain or another activation runs bias_act."""
    monkeypatch.delenv("FASTGAN_BACKEND", raising=False)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.LeakyReLU(0.2), nn.Linear(8, 3), nn.Sigmoid())
    fused, rep = fastgan.fuse(copy.deepcopy(model), report=True)
    assert [backend.NATIVE_LINEAR_WHY in (p.note or "") for p in rep.fused] == [True, True, False]
    op, seen = fastgan.ops.OPS["bias_act"], []
    real_resolve = op.resolve
    monkeypatch.setattr(op, "resolve", lambda impl, device: seen.append(real_resolve(impl, device)) or seen[-1])
    x = torch.randn(5, 4)
    close(fused(x), model(x), "auto on the CPU", torch.float32)
    assert seen == ["cpp"]  # the sigmoid layer only
    seen.clear()
    with fastgan.use_backend("cpp"):
        close(fused(x), model(x), "cpp", torch.float32)
    assert seen == ["cpp"] * 3
    seen.clear()
    scaled = fastgan.fuse(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), Scale(3.0)))
    close(scaled(x), 3 * torch.relu(scaled[0].weight @ x.T + scaled[0].bias[:, None]).T, "scaled", torch.float32)
    assert seen == ["cpp"]  # a gain: the fused pass
