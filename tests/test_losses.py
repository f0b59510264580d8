"""The adversarial objectives against their textbook formulas (float64), and their stability at large logits."""
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
