"""Adversarial objectives on the discriminator's logits (numerically stable: softplus, never log(sigmoid)).

With D's logits l_real on data and l_fake on generated samples, sigma(l) = D's probability of "real":
  gan_d_loss      -E log sigma(l_real) - E log(1 - sigma(l_fake)) = E softplus(-l_real) + E softplus(l_fake)
  gan_g_loss      'ns'       (non-saturating, Goodfellow et al. 2014 sec. 3)  -E log sigma(l_fake) = E softplus(-l_fake)
                  'minimax'  the game's own value for G                     E log(1 - sigma(l_fake)) = -E softplus(l_fake)
BiGAN (Donahue et al. 2017): D scores joint pairs, l_real = D(x, E(x)) and l_fake = D(G(z), z); D minimises
gan_d_loss(l_real, l_fake); G and E minimise
  bigan_ge_loss   'inverse'  the "inverse" objective Lambda (appendix B: the labels swapped, which keeps the gradients
                             strong early): E softplus(l_real) + E softplus(-l_fake)
                  'minimax'  -gan_d_loss(l_real, l_fake) = V(D, E, G)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["G_LOSSES", "GE_LOSSES", "bigan_ge_loss", "gan_d_loss", "gan_g_loss"]

G_LOSSES = ("ns", "minimax")
GE_LOSSES = ("inverse", "minimax")


def _check(kind: str, allowed: tuple, arg: str) -> None:
    if kind not in allowed:
        raise ValueError(f"{arg}: expected one of {', '.join(map(repr, allowed))}, got {kind!r}")


def gan_d_loss(l_real: torch.Tensor, l_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's cross-entropy: E softplus(-l_real) + E softplus(l_fake)."""
    return F.softplus(-l_real).mean() + F.softplus(l_fake).mean()


def gan_g_loss(l_fake: torch.Tensor, kind: str = "ns") -> torch.Tensor:
    """The generator's loss: 'ns' E softplus(-l_fake), 'minimax' -E softplus(l_fake)."""
    _check(kind, G_LOSSES, "kind")
    return F.softplus(-l_fake).mean() if kind == "ns" else -F.softplus(l_fake).mean()


def bigan_ge_loss(l_real: torch.Tensor, l_fake: torch.Tensor, kind: str = "inverse") -> torch.Tensor:
    """The BiGAN generator's and encoder's loss: 'inverse' E softplus(l_real) + E softplus(-l_fake), 'minimax'
    -gan_d_loss."""
    _check(kind, GE_LOSSES, "kind")
    if kind == "minimax":
        return -gan_d_loss(l_real, l_fake)
    return F.softplus(l_real).mean() + F.softplus(-l_fake).mean()
