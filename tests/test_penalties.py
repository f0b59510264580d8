"""fastgan.gradient_penalty: WGAN-GP, R1 and R2 on critics built of fastgan ops (MLP, the BiGAN joint D(x, z), a
DCGAN-style conv critic with bias_act) against an eager penalty on the eager twin critic — the penalty and every
parameter gradient to 1e-10 (fp64); skipping the inner weight gradients changes nothing; the GradScaler recipe; bf16
autocast; through minibatch discrimination (its second-order op) equal to the broadcast reference; errors."""
import pytest
import torch
from conftest import IMPL_DEVICE, close, impl_params

import fastgan
from fastgan.nn import BiGANDiscriminator, DCGANDiscriminator, MinibatchDiscrimination, MLPCritic

IMPLS = impl_params()


def eager_penalty(critic, real, fake, kind, center, weight, eps):
    """The textbook penalty, written out independently of fastgan.gradient_penalty."""
    if kind == "wgan-gp":
        pts = [f.detach() + eps.view(-1, *[1] * (r.dim() - 1)) * (r.detach() - f.detach()) for r, f in zip(real, fake)]
    else:
        pts = [t.detach() for t in (real if kind == "r1" else fake)]
    pts = [p.requires_grad_(True) for p in pts]
    out = critic(*pts)
    grads = torch.autograd.grad(out.sum(), pts, create_graph=True)
    flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads], 1)
    if kind == "wgan-gp":
        return weight * ((flat.norm(dim=1) - center) ** 2).mean()
    return weight / 2 * (flat ** 2).sum(1).mean()


def _critics(device):
    """{name: (fused critic, its eager twin, inputs(batch))} in fp64 on `device`; the fused critics' ops run on the
    backend in force (the tests enter fastgan.use_backend(impl))."""
    torch.manual_seed(0)
    nets = {
        "mlp": (MLPCritic(12, hidden=(16, 16)), MLPCritic(12, hidden=(16, 16), eager=True),
                lambda b: (torch.randn(b, 12),)),
        "bigan-joint": (BiGANDiscriminator(10, 4, hidden=16),
                        BiGANDiscriminator(10, 4, hidden=16, eager=True),
                        lambda b: (torch.randn(b, 10), torch.randn(b, 4))),
        "dcgan": (DCGANDiscriminator(nc=1, size=32, base=2), DCGANDiscriminator(nc=1, size=32, base=2, eager=True),
                  lambda b: (torch.randn(b, 1, 32, 32),)),
    }
    out = {}
    for name, (fused, eager, make) in nets.items():
        eager.load_state_dict(fused.state_dict())
        out[name] = (fused.to(device).double(), eager.to(device).double(), make)
    return out


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["wgan-gp", "r1", "r2"])
def test_matches_eager(impl, kind):
    with fastgan.use_backend(impl):
        _matches_eager(IMPL_DEVICE[impl], kind)


def _matches_eager(device, kind):
    for name, (fused, eager, make) in _critics(device).items():
        torch.manual_seed(1)
        real = tuple(t.to(device).double() for t in make(6))
        fake = tuple(t.to(device).double() for t in make(6))
        gen = torch.Generator().manual_seed(3)
        got = fastgan.gradient_penalty(fused, real, fake, kind=kind, center=1.0, weight=10.0, generator=gen)
        eps = torch.rand(6, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(device)
        exp = eager_penalty(eager, real, fake, kind, 1.0, 10.0, eps)
        close(got, exp, torch.float64, f"{name} {kind} penalty")
        g_got = torch.autograd.grad(got, list(fused.parameters()), allow_unused=True)
        g_exp = torch.autograd.grad(exp, list(eager.parameters()), allow_unused=True)
        for (pname, p), a, e in zip(fused.named_parameters(), g_got, g_exp):
            a = torch.zeros_like(p) if a is None else a
            e = torch.zeros_like(p) if e is None else e
            close(a, e, torch.float64, f"{name} {kind} gradient of {pname}")


@pytest.mark.parametrize("impl", IMPLS)
def test_skipping_inner_weight_grads_changes_nothing(impl):
    device = IMPL_DEVICE[impl]
    fused, _, make = _critics(device)["bigan-joint"]
    real, fake = [tuple(t.to(device).double() for t in make(5)) for _ in range(2)]
    res = []
    for skip in (True, False):
        with fastgan.use_backend(impl):
            p = fastgan.gradient_penalty(fused, real, fake, generator=torch.Generator().manual_seed(0),
                                         skip_weights=skip)
            res.append((p.detach(), torch.autograd.grad(p, list(fused.parameters()), allow_unused=True)))
    close(res[0][0], res[1][0], torch.float64, "penalty")
    for a, b in zip(res[0][1], res[1][1]):
        if a is None or b is None:
            assert a is None and b is None or (a if b is None else b).abs().max() == 0
        else:
            close(a, b, torch.float64, "parameter gradient")
    assert not fastgan.ops.weight_grads_skipped()


def test_grad_scaler_recipe():
    critic = MLPCritic(8, hidden=(16,)).double()
    real, fake = torch.randn(4, 8, dtype=torch.float64), torch.randn(4, 8, dtype=torch.float64)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    p_scaled = fastgan.gradient_penalty(critic, real, fake, scaler=scaler, generator=torch.Generator().manual_seed(0))
    p = fastgan.gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0))
    close(p_scaled, p, torch.float64, "penalty with a GradScaler")


def test_bf16_autocast():
    torch.manual_seed(0)
    critic = MLPCritic(8, hidden=(16, 16))
    real, fake = torch.randn(8, 8), torch.randn(8, 8)
    ref = fastgan.gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fastgan.gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=5e-2, atol=5e-2)  # bf16 GEMMs: a few 1e-3 per layer, 3 layers, squared
    got.backward()
    weights = [p for name, p in critic.named_parameters() if name.endswith("weight")]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in weights)


@pytest.mark.parametrize("kind", ["wgan-gp", "r1"])
def test_penalty_through_minibatch_discrimination(kind):
    """The penalty's parameter gradients through the fused layer (fastgan::minibatch_discrimination_backward2) equal
    those through the broadcast reference (fp64, 1e-10)."""
    torch.manual_seed(0)
    real, fake = torch.randn(7, 6, dtype=torch.float64), torch.randn(7, 6, dtype=torch.float64)
    grads = []
    for impl in (None, "reference"):
        torch.manual_seed(1)
        layer = MinibatchDiscrimination(6, kernels=3, kernel_dim=2, impl=impl).double()
        head = torch.nn.Linear(9, 1).double()

        def critic(x):
            return head(layer(x)).squeeze(1)

        p = fastgan.gradient_penalty(critic, real, fake, kind=kind, generator=torch.Generator().manual_seed(0))
        grads.append([p.detach(), *torch.autograd.grad(p, [layer.T, head.weight])])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert grads[0][1].abs().max() > 0


def test_errors():
    critic = MLPCritic(4, hidden=(8,))
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    cases = [
        (dict(kind="dragan"), ValueError, "kind: expected one of"),
        (dict(fake=None), ValueError, "fake: kind='wgan-gp' needs the generated samples"),
        (dict(fake=torch.randn(3, 5)), ValueError, "fake: expected shapes"),
        (dict(real=[x, torch.randn(2, 4)]), ValueError, "real: expected the same batch size"),
        (dict(real=x.long()), TypeError, "real: expected floating tensors"),
        (dict(real="x"), TypeError, "real: expected a tensor or a tuple of tensors"),
        (dict(critic=3), TypeError, "critic: expected a callable"),
        (dict(weight=float("nan")), ValueError, "weight: expected a finite number"),
    ]
    for kw, exc, msg in cases:
        args = dict(critic=critic, real=x, fake=y)
        args.update(kw)
        with pytest.raises(exc, match=msg):
            fastgan.gradient_penalty(**args)
    assert fastgan.gradient_penalty(critic, x, kind="r1").item() >= 0  # r1 needs no fake


@pytest.mark.parametrize("kw, match", [
    (dict(weight=-1.0), r"weight: expected a finite number >= 0, got -1\.0"),
    (dict(weight=float("inf")), "weight: expected a finite number >= 0, got inf"),
    (dict(weight=float("nan")), "weight: expected a finite number >= 0, got nan"),
    (dict(weight=True), "weight: expected a finite number >= 0, got True"),
    (dict(weight="10"), "weight: expected a finite number >= 0, got '10'"),
    (dict(center=float("nan")), "center: expected a finite number, got nan"),
    (dict(center=-float("inf")), "center: expected a finite number, got -inf"),
])
@pytest.mark.parametrize("fn", ["gradient_penalty", "wgan_critic_loss", "wgan_critic_loss(fused=True)"])
def test_weight_and_center_are_checked_on_every_path(fn, kw, match):
    """A negative weight (a reward for steep critics) or a non-finite one is an error naming it, on the generic path
    and on wgan_critic_loss's fused MLP pass (which takes them as they are)."""
    critic = MLPCritic(4, hidden=(8,))
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    call = fastgan.gradient_penalty if fn == "gradient_penalty" else fastgan.wgan_critic_loss
    extra = dict(fused=True) if "fused=True" in fn else {}
    with pytest.raises(ValueError, match=match):
        call(critic, x, y, **kw, **extra)
    call(critic, x, y, weight=0.0, **extra)  # 0 is allowed: no penalty


def test_r1_from_outputs_equals_the_penalty_and_checks_its_arguments():
    """r1_from_outputs (one critic forward shared with a loss) = gradient_penalty(kind='r1', fused=False): value and
    parameter gradients (fp64, 1e-12), on a joint critic D(x, z)."""
    from fastgan.penalties import r1_from_outputs

    torch.manual_seed(0)
    critic = BiGANDiscriminator(6, 3, hidden=8).double()
    x, z = torch.randn(5, 6, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    exp = fastgan.gradient_penalty(critic, (x, z), kind="r1", weight=0.3, fused=False)
    pts = (x.clone().requires_grad_(True), z.clone().requires_grad_(True))
    got = r1_from_outputs(critic(*pts), pts, 0.3)
    close(got, exp, torch.float64, "r1")
    params = list(critic.parameters())
    kw = dict(allow_unused=True, materialize_grads=True)  # the output bias does not reach the input gradient
    for a, b in zip(torch.autograd.grad(got, params, **kw), torch.autograd.grad(exp, params, **kw)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="weight: expected a finite number >= 0"):
        r1_from_outputs(critic(*pts), pts, -0.3)
    with pytest.raises(ValueError, match="inputs: every input must require grad"):
        r1_from_outputs(critic(x, z), (x, z), 0.3)
    with pytest.raises(ValueError, match=r"out: expected the critic's outputs with the inputs' batch size 5"):
        r1_from_outputs(critic(*pts).sum(), pts, 0.3)


def test_penalty_from_outputs_takes_per_sample_outputs_or_their_sum():
    """penalty_from_outputs on a critic's outputs (B,) and on their sum (0-d: each sample's term depends on its own
    input) = weight * mean (|grad|_i - center)^2 by torch's double backward, value and parameter gradients (fp64); a
    wrong batch size is refused."""
    from fastgan.penalties import penalty_from_outputs

    torch.manual_seed(0)
    critic = MLPCritic(6, hidden=(8, 8)).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    p0 = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(p0).sum(), p0, create_graph=True)
    exp = 0.7 * (g.norm(dim=1) - 0.5).square().mean()
    params = list(critic.parameters())
    kw = dict(allow_unused=True, materialize_grads=True)
    exp_grads = torch.autograd.grad(exp, params, **kw)
    for out_of in (lambda v: v, lambda v: v.sum()):
        pts = x.clone().requires_grad_(True)
        got = penalty_from_outputs(out_of(critic(pts)), pts, "wgan-gp", 0.5, 0.7)
        close(got, exp, torch.float64, "wgan-gp from outputs")
        for a, b in zip(torch.autograd.grad(got, params, **kw), exp_grads):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    pts = x.clone().requires_grad_(True)
    with pytest.raises(ValueError, match="out: expected the outputs with the inputs' batch size 5"):
        penalty_from_outputs(critic(pts)[:4], pts)
    with pytest.raises(ValueError, match="kind: expected one of"):
        penalty_from_outputs(critic(pts), pts, kind="r3")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("act", ["lrelu", "relu"])
@pytest.mark.parametrize("kind", ["wgan-gp", "r1", "r2"])
def test_fused_mlp_path_equals_generic(kind, act, dtype, monkeypatch):
    """MLPCritic penalties through the fused GEMM path equal the generic double backward (fp64 1e-10, fp32 1e-5), and
    auto picks the fused path for them."""
    torch.manual_seed(0)
    fused_net = MLPCritic(12, hidden=(16, 24), act=act).to(dtype)
    eager_net = MLPCritic(12, hidden=(16, 24), act=act, eager=True).to(dtype)
    eager_net.load_state_dict(fused_net.state_dict())
    x, y = torch.randn(7, 12, dtype=dtype), torch.randn(7, 12, dtype=dtype)
    calls = []
    apply = fastgan.penalties._MLPPenalty.apply
    monkeypatch.setattr(fastgan.penalties._MLPPenalty, "apply", lambda *a: calls.append(1) or apply(*a))
    got = fastgan.gradient_penalty(fused_net, x, y, kind=kind, generator=torch.Generator().manual_seed(0))
    assert calls, "auto did not take the fused path"
    exp = fastgan.gradient_penalty(eager_net, x, y, kind=kind, generator=torch.Generator().manual_seed(0),
                                   fused=False)
    close(got, exp, dtype, "penalty")
    with fastgan.use_backend("reference"):  # the fused path's torch.where masks (no fused kernels)
        close(fastgan.gradient_penalty(fused_net, x, y, kind=kind, generator=torch.Generator().manual_seed(0)), exp,
              dtype, "penalty, reference masks")
    for (name, p), a, e in zip(fused_net.named_parameters(),
                               torch.autograd.grad(got, list(fused_net.parameters()), allow_unused=True),
                               torch.autograd.grad(exp, list(eager_net.parameters()), allow_unused=True)):
        close(torch.zeros_like(p) if a is None else a, torch.zeros_like(p) if e is None else e, dtype, name)


def test_fused_path_refusals():
    with pytest.raises(ValueError, match="fused: the critic cannot take the fused penalty path"):
        fastgan.gradient_penalty(BiGANDiscriminator(6, 2, hidden=8), (torch.randn(3, 6), torch.randn(3, 2)),
                                 (torch.randn(3, 6), torch.randn(3, 2)), fused=True)
    critic = MLPCritic(4, hidden=(8,))
    p = fastgan.gradient_penalty(critic, torch.randn(3, 4), torch.randn(3, 4))
    (g,) = torch.autograd.grad(p, [critic.layers[0].weight], create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):  # refused, not wrong
        torch.autograd.grad(g.sum(), [critic.layers[0].weight])


def test_compiled_generator_with_eager_penalty():
    """The documented torch.compile recipe: the generator compiled, the critic step (with its double backward) eager.
    (Compiling the critic itself fails inside aot_autograd: bench/bench_penalty.py records that.)"""
    torch.manual_seed(0)
    gen = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
    gen_c = torch.compile(gen, dynamic=False)
    critic = MLPCritic(8, hidden=(16,))
    z, real = torch.randn(6, 4), torch.randn(6, 8)
    fake = gen_c(z)
    d_loss = critic(fake.detach()).mean() - critic(real).mean() + fastgan.gradient_penalty(critic, real, fake.detach())
    d_loss.backward()
    g_loss = -critic(gen_c(z)).mean()
    g_loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gen.parameters())
    with torch.no_grad():
        close(gen_c(z), gen(z), torch.float32, "compiled generator")


def test_fused_path_negative_alpha():
    """lrelu with a negative alpha: the slope cannot be read from the output's sign; the fused path must still equal
    the generic double backward (it takes its torch.where masks then)."""
    torch.manual_seed(0)
    net = MLPCritic(6, hidden=(10,), act="lrelu", alpha=-0.1).double()
    twin = MLPCritic(6, hidden=(10,), act="lrelu", alpha=-0.1, eager=True).double()
    twin.load_state_dict(net.state_dict())
    x, y = torch.randn(5, 6, dtype=torch.float64), torch.randn(5, 6, dtype=torch.float64)
    got = fastgan.gradient_penalty(net, x, y, generator=torch.Generator().manual_seed(0), fused=True)
    exp = fastgan.gradient_penalty(twin, x, y, generator=torch.Generator().manual_seed(0), fused=False)
    close(got, exp, torch.float64, "penalty")
    for a, e in zip(torch.autograd.grad(got, [net.layers[0].weight, net.layers[1].weight]),
                    torch.autograd.grad(exp, [twin.layers[0].weight, twin.layers[1].weight])):
        close(a, e, torch.float64, "weight gradient")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("impl", ["cuda", "triton"])
def test_amp_grad_scaler_on_gpu(impl):
    """The AMP recipe on a GPU: fp16 autocast with a GradScaler gives the fp32 penalty (to fp16 accuracy) and finite,
    unscaled parameter gradients after scaler.unscale_."""
    torch.manual_seed(0)
    with fastgan.use_backend(impl):
        _amp_grad_scaler_on_gpu()


def _amp_grad_scaler_on_gpu():
    critic = MLPCritic(64, hidden=(128, 128)).cuda()
    real, fake = torch.randn(32, 64, device="cuda"), torch.randn(32, 64, device="cuda")
    ref = fastgan.gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0))
    (ref_grad,) = torch.autograd.grad(ref, [critic.layers[0].weight])
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0 ** 12)
    opt = torch.optim.SGD(critic.parameters(), lr=0.0)
    with torch.autocast("cuda", dtype=torch.float16):
        pen = fastgan.gradient_penalty(critic, real, fake, scaler=scaler, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(pen.float(), ref, rtol=2e-2, atol=2e-2)
    scaler.scale(pen).backward()
    scaler.unscale_(opt)
    g = critic.layers[0].weight.grad
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, ref_grad, rtol=5e-2, atol=5e-2 * ref_grad.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("act", ["lrelu", "relu"])
def test_wgan_critic_loss_fused_equals_generic(act, dtype):
    """The one-pass critic loss (layers once over [real; fake; x_hat], x_hat's first GEMM interpolated) equals
    critic(real), critic(fake) and the generic penalty: loss, logged parts and every parameter gradient (biases too)."""
    torch.manual_seed(0)
    net = MLPCritic(12, hidden=(16, 24), act=act).to(dtype)
    twin = MLPCritic(12, hidden=(16, 24), act=act, eager=True).to(dtype)
    twin.load_state_dict(net.state_dict())
    x, y = torch.randn(7, 12, dtype=dtype), torch.randn(7, 12, dtype=dtype)
    got = fastgan.wgan_critic_loss(net, x, y, generator=torch.Generator().manual_seed(0), fused=True)
    exp = fastgan.wgan_critic_loss(twin, x, y, generator=torch.Generator().manual_seed(0), fused=False)
    for a, e, what in zip(got, exp, ("loss", "d_real", "d_fake", "penalty")):
        close(a.detach(), e.detach(), dtype, what)
    for (name, p), a, e in zip(net.named_parameters(),
                               torch.autograd.grad(got.loss, list(net.parameters()), allow_unused=True),
                               torch.autograd.grad(exp.loss, list(twin.parameters()), allow_unused=True)):
        close(torch.zeros_like(p) if a is None else a, torch.zeros_like(p) if e is None else e, dtype, name)


def test_wgan_critic_loss_generic_paths():
    torch.manual_seed(0)
    critic = BiGANDiscriminator(6, 2, hidden=8).double()
    real = (torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64))
    fake = (torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64))
    res = fastgan.wgan_critic_loss(critic, real, fake, generator=torch.Generator().manual_seed(0))
    exp = (critic(*fake).mean() - critic(*real).mean()
           + fastgan.gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0)))
    close(res.loss, exp, torch.float64, "joint critic loss")
    r1 = fastgan.wgan_critic_loss(MLPCritic(6, hidden=(8,)), torch.randn(3, 6), torch.randn(3, 6), kind="r1")
    assert torch.isfinite(r1.loss)
    with pytest.raises(ValueError, match="fused: the critic cannot take the fused loss path"):
        fastgan.wgan_critic_loss(critic, real, fake, fused=True)
    with pytest.raises(ValueError, match="kind: expected one of"):
        fastgan.wgan_critic_loss(critic, real, fake, kind="hinge")


def test_wgan_critic_loss_fused_backward_runs_once():
    # the fused path writes the penalty's tangents over its saved activations: a second backward must refuse,
    # not return gradients computed from overwritten activations
    critic = MLPCritic(5, hidden=(7,))
    loss = fastgan.wgan_critic_loss(critic, torch.randn(4, 5), torch.randn(4, 5), fused=True).loss
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward can run once per loss"):
        loss.backward()


def test_given_interpolation_weights():
    # eps= replaces the draw (data parallelism hands each rank its slice of a global draw); checked
    critic = MLPCritic(5, hidden=(7,))
    real, fake = torch.randn(4, 5), torch.randn(4, 5)
    eps = torch.rand(4, generator=torch.Generator().manual_seed(2))
    for fused in (None, False):
        a = fastgan.wgan_critic_loss(critic, real, fake, eps=eps, fused=fused).loss
        b = fastgan.wgan_critic_loss(critic, real, fake, generator=torch.Generator().manual_seed(2), fused=fused).loss
        assert torch.equal(a, b)
    torch.testing.assert_close(fastgan.gradient_penalty(critic, real, fake, eps=eps),
                               fastgan.gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(2)))
    with pytest.raises(ValueError, match=r"eps: expected a floating tensor of shape \(4,\)"):
        fastgan.gradient_penalty(critic, real, fake, eps=torch.rand(3))


class _Probe(torch.autograd.Function):
    """Identity that records fastgan.ops.weight_grads_skipped() in its backward."""

    seen: list = []

    @staticmethod
    def forward(ctx, t):
        return t.view_as(t)

    @staticmethod
    def backward(ctx, g):
        _Probe.seen.append(fastgan.ops.weight_grads_skipped())
        return g


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_input_grads_marks_its_own_graph_task_only(device):
    """The weight-gradient skip follows input_grads' graph task to the thread that runs it (CUDA backward runs on the
    engine's device threads: a thread-local flag missed it) and no other backward sees it, on any thread."""
    import threading

    x = torch.randn(3, device=device, requires_grad=True)
    w = torch.randn(3, device=device, requires_grad=True)
    _Probe.seen = []
    inner = []

    class _Nested(torch.autograd.Function):  # runs an unrelated backward on another thread while the task is marked
        @staticmethod
        def forward(ctx, t):
            return t.view_as(t)

        @staticmethod
        def backward(ctx, g):
            def other():
                y = torch.randn(2, requires_grad=True)
                torch.autograd.grad(_Probe.apply(y).sum(), y)
            th = threading.Thread(target=other)
            th.start()
            th.join()
            inner.append(_Probe.seen.pop())
            return g

    (gx,) = fastgan.ops.input_grads(_Probe.apply(_Nested.apply(x * w)).sum(), x, create_graph=True)
    assert _Probe.seen == [True] and inner == [False]
    torch.autograd.grad(gx.sum(), w)  # the penalty's outer backward: weight gradients wanted
    torch.autograd.grad(_Probe.apply(x * w).sum(), (x, w))
    assert _Probe.seen == [True, False] and not fastgan.ops.weight_grads_skipped()
    (g,) = fastgan.ops.input_grads(_Probe.apply(x * w).sum(), x, skip_weights=False)
    assert _Probe.seen == [True, False, False]
    torch.testing.assert_close(g, w.detach())
