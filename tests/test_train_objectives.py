"""The objective family's recipes (issue 8): defaults, the pieces each recipe adds (clipping, the fused penalty, MMD
on features, feature matching with minibatch discrimination), and short training runs."""
import pytest
import torch

import fastgan
from fastgan import losses
from fastgan.nn import MinibatchDiscrimination
from fastgan.penalties import wgan_critic_loss
from fastgan.train import RECIPES, TrainConfig, Trainer

TINY = dict(hidden=16, z_dim=4, batch_size=32, progress=False, eval_at_end=False, data="gmm8")
FAMILY = ["wgan", "wgan-gp", "lsgan", "hinge", *[f"fgan-{d}" for d in losses.DIVERGENCES], "gmmn", "mmdgan",
          "improved"]


def test_every_objective_has_a_recipe():
    assert set(FAMILY) <= set(RECIPES)


def test_recipe_defaults_and_overrides():
    cfg = TrainConfig.for_model("wgan", steps=1)
    assert (cfg.optimizer, cfg.lr, cfg.n_critic, cfg.batch_size, cfg.update) == ("rmsprop", 5e-5, 5, 64, "alternating")
    cfg = TrainConfig.for_model("wgan-gp", steps=1, lr=3e-4)
    assert (cfg.lr, cfg.beta1, cfg.beta2, cfg.n_critic) == (3e-4, 0.0, 0.9, 5)
    t = Trainer(TrainConfig.for_model("wgan", steps=1, **{k: v for k, v in TINY.items() if k != "batch_size"}))
    assert isinstance(t.opts["D"], torch.optim.RMSprop) and t.cfg.batch_size == 64


def test_wgan_clips_the_critic():
    t = Trainer(TrainConfig.for_model("wgan", steps=2, **TINY, extra={"clip": 0.003}))
    t.run()
    assert max(p.abs().max().item() for p in t.recipe.params("D")) <= torch.tensor(0.003).item()  # fp32 c


def test_wgan_gp_critic_loss_is_the_fused_penalty_loss():
    t = Trainer(TrainConfig.for_model("wgan-gp", steps=1, **TINY))
    x, gz = t.train_x[:32], torch.randn(32, 2)
    got = t.recipe.critic_loss(x, gz, torch.Generator().manual_seed(3))
    exp = wgan_critic_loss(t.recipe.nets["D"], x, gz, generator=torch.Generator().manual_seed(3), fused=False).loss
    torch.testing.assert_close(got, exp, rtol=1e-5, atol=1e-6)


def test_mmdgan_and_gmmn_losses():
    t = Trainer(TrainConfig.for_model("mmdgan", steps=1, **TINY))
    x = t.train_x[:32]
    f = t.recipe.nets["D"]
    assert f(x).shape == (32, 16)
    exp = fastgan.mmd2(f(x), f(x + 1), bandwidths=(1.0, 2.0, 4.0, 8.0, 16.0), impl="reference")
    torch.testing.assert_close(t.recipe.critic_loss(x, x + 1, None), -exp, rtol=1e-5, atol=1e-7)
    g = Trainer(TrainConfig.for_model("gmmn", steps=1, **TINY))
    assert len(g.recipe.bandwidths) == 5 and "D" not in g.recipe.nets


def test_improved_feature_matching_and_minibatch_layer():
    t = Trainer(TrainConfig.for_model("improved", steps=1, **TINY))
    D = t.recipe.nets["D"]
    assert isinstance(D.mbd, MinibatchDiscrimination)
    x, gz = t.train_x[:32], torch.randn(32, 2)
    exp = (D.features(gz).mean(0) - D.features(x).mean(0)).square().sum()
    torch.testing.assert_close(t.recipe.generator_loss(x, gz), exp)


@pytest.mark.parametrize("model", FAMILY)
def test_short_runs_reduce_nothing_to_nan(model):
    t = Trainer(TrainConfig.for_model(model, steps=3, **TINY, log_every=1))
    before = [p.detach().clone() for p in t.recipe.nets["G"].parameters()]
    t.run()
    assert any(not torch.equal(p, q) for p, q in zip(t.recipe.nets["G"].parameters(), before))
    assert all(torch.isfinite(p).all() for net in t.recipe.nets.values() for p in net.parameters())
