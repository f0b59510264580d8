"""The adversarial objectives against their textbook formulas (float64), and their stability at large logits."""
import math

import pytest
import torch

from fastgan import losses


def test_formulas():
    torch.manual_seed(0)
    r, f = torch.randn(64, dtype=torch.float64), torch.randn(64, dtype=torch.float64)
    d = -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean())
    torch.testing.assert_close(losses.gan_d_loss(r, f), d, rtol=1e-12, atol=0)
    torch.testing.assert_close(losses.gan_g_loss(f, "ns"), -torch.log(torch.sigmoid(f)).mean(), rtol=1e-12, atol=0)
    torch.testing.assert_close(losses.gan_g_loss(f, "minimax"), torch.log(1 - torch.sigmoid(f)).mean(),
                               rtol=1e-12, atol=0)
    inv = -(torch.log(1 - torch.sigmoid(r)).mean() + torch.log(torch.sigmoid(f)).mean())
    torch.testing.assert_close(losses.bigan_ge_loss(r, f, "inverse"), inv, rtol=1e-12, atol=0)
    torch.testing.assert_close(losses.bigan_ge_loss(r, f, "minimax"), -d, rtol=1e-12, atol=0)


def test_stable_at_large_logits():
    big = torch.tensor([-200.0, 200.0], requires_grad=True)
    for loss in (losses.gan_d_loss(big, big), losses.gan_g_loss(big), losses.gan_g_loss(big, "minimax"),
                 losses.bigan_ge_loss(big, big)):
        (g,) = torch.autograd.grad(loss, big)
        assert torch.isfinite(loss) and torch.isfinite(g).all()


def test_bad_kind():
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="kind: expected one of 'ns', 'minimax'"):
        losses.gan_g_loss(x, "wasserstein")
    with pytest.raises(ValueError, match="kind: expected one of 'inverse', 'minimax'"):
        losses.bigan_ge_loss(x, x, "ns")


# the textbook conjugates f*(t) of Nowozin et al.'s table 2, on their domains
_CONJ = {
    "KL": lambda t: torch.exp(t - 1),
    "RKL": lambda t: -1 - torch.log(-t),
    "Pearson": lambda t: t * t / 4 + t,
    "Hellinger": lambda t: t / (1 - t),
    "JS": lambda t: -torch.log(2 - torch.exp(t)),
    "GAN": lambda t: -torch.log(1 - torch.exp(t)),
}


@pytest.mark.parametrize("div", losses.DIVERGENCES)
def test_f_gan_closed_forms_match_the_conjugates(div):
    v = torch.linspace(-4, 4, 101, dtype=torch.float64)
    t = losses.f_gan_activation(v, div)
    torch.testing.assert_close(losses.f_gan_conjugate(v, div), _CONJ[div](t), rtol=1e-10, atol=1e-12)
    big = torch.tensor([-50.0, 50.0], requires_grad=True)
    d, g = losses.f_divergence_losses(big, big, div)
    if div != "KL":  # KL's f*(g(v)) = exp(v - 1): the divergence itself grows that fast
        assert torch.isfinite(d) and torch.isfinite(g)


def test_f_gan_bound_is_tight_at_the_optimal_critic():
    # P = N(1, 1), Q = N(0, 1): log p/q = x - 1/2; the optimal critic output is v = f'(p/q) mapped through g_f^-1
    gen = torch.Generator().manual_seed(0)
    xp = torch.randn(2_000_000, generator=gen, dtype=torch.float64) + 1
    xq = torch.randn(2_000_000, generator=gen, dtype=torch.float64)
    kl = -losses.f_divergence_losses(xp + 0.5, xq + 0.5, "KL")[0]  # f'(u) = 1 + log u
    assert abs(kl.item() - 0.5) < 5e-3
    ratio = lambda x: torch.exp(x - 0.5)  # noqa: E731
    chi2 = -losses.f_divergence_losses(2 * (ratio(xp) - 1), 2 * (ratio(xq) - 1), "Pearson")[0]  # f'(u) = 2 (u - 1)
    assert abs(chi2.item() - (math.e - 1)) < 0.05


def test_other_objectives():
    r = torch.tensor([2.0, 0.5], dtype=torch.float64)
    f = torch.tensor([-2.0, 0.5], dtype=torch.float64)
    d, g = losses.wasserstein_losses(r, f)
    assert d.item() == pytest.approx(-0.75 - 1.25) and g.item() == pytest.approx(0.75)
    d, g = losses.hinge_losses(r, f)
    assert d.item() == pytest.approx((0 + 0.5) / 2 + (0 + 1.5) / 2) and g.item() == pytest.approx(0.75)
    d, g = losses.least_squares_losses(r, f)
    assert d.item() == pytest.approx(0.5 * ((1 + 0.25) / 2 + (4 + 0.25) / 2))
    assert g.item() == pytest.approx(0.5 * (9 + 0.25) / 2)
    with pytest.raises(ValueError, match="divergence: expected one of"):
        losses.f_divergence_losses(r, f, "TV")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_scores_give_fp32_losses(dtype):
    """Under autocast D's scores come out in half precision; every loss is computed and returned in fp32 (a
    GradScaler's 2^16 x an fp16 loss of ~1.4 would be inf)."""
    v_real, v_fake = torch.randn(64).to(dtype), torch.randn(64).to(dtype)
    outs = [losses.gan_d_loss(v_real, v_fake), losses.gan_g_loss(v_fake), losses.bigan_ge_loss(v_real, v_fake),
            *losses.wasserstein_losses(v_real, v_fake), *losses.hinge_losses(v_real, v_fake),
            *losses.least_squares_losses(v_real, v_fake),
            *(t for d in losses.DIVERGENCES for t in losses.f_divergence_losses(v_real, v_fake, d))]
    wide = [losses.gan_d_loss(v_real.float(), v_fake.float()), losses.gan_g_loss(v_fake.float())]
    assert all(o.dtype == torch.float32 for o in outs)
    assert torch.equal(outs[0], wide[0]) and torch.equal(outs[1], wide[1])
