"""Adversarial objectives on the discriminator's logits (numerically stable: softplus, never log(sigmoid)).

With D's logits l_real on data and l_fake on generated samples, sigma(l) = D's probability of "real":
  gan_d_loss      -E log sigma(l_real) - E log(1 - sigma(l_fake)) = E softplus(-l_real) + E softplus(l_fake)
  gan_g_loss      'ns'       (non-saturating, Goodfellow et al. 2014 sec. 3)
                             -E log sigma(l_fake) = E softplus(-l_fake)
                  'minimax'  the game's own value for G
                             E log(1 - sigma(l_fake)) = -E softplus(l_fake)
BiGAN (Donahue et al. 2017): D scores joint pairs, l_real = D(x, E(x)) and l_fake = D(G(z), z); D minimises
gan_d_loss(l_real, l_fake); G and E minimise
  bigan_ge_loss   'inverse'  the "inverse" objective Lambda (appendix B: the labels swapped, which keeps the gradients
                             strong early): E softplus(l_real) + E softplus(-l_fake)
                  'minimax'  -gan_d_loss(l_real, l_fake) = V(D, E, G)

Other objectives on the critic's raw outputs v (one number per sample), each as (critic loss, generator loss):
  wasserstein     E v_fake - E v_real,  -E v_fake                     (Arjovsky et al. 2017; the critic must be
                                                                      Lipschitz: weight clipping or a gradient penalty)
  hinge           E relu(1 - v_real) + E relu(1 + v_fake),  -E v_fake  (Lim & Ye 2017; Miyato et al. 2018)
  least squares   (E (v_real - 1)^2 + E v_fake^2) / 2,  E (v_fake - 1)^2 / 2   (Mao et al. 2017, a=0, b=c=1)
  f-GAN           -(E g_f(v_real) - E f*(g_f(v_fake))),  -E g_f(v_fake)   (Nowozin et al. 2016, their table 2: output
                  activation g_f and Fenchel conjugate f* per divergence; the generator's loss is the paper's
                  alternative, non-saturating one). f*(g_f(v)) is written in closed form per divergence, so nothing
                  overflows or takes the log of a non-positive number:
                    KL         g_f = v                      f*(g_f(v)) = exp(v - 1)
                    RKL        g_f = -exp(-v)               f*(g_f(v)) = v - 1
                    Pearson    g_f = v                      f*(g_f(v)) = v^2 / 4 + v
                    Hellinger  g_f = 1 - exp(-v)            f*(g_f(v)) = exp(v) - 1        (squared Hellinger)
                    JS         g_f = log 2 - softplus(-v)   f*(g_f(v)) = softplus(v) - log 2
                    GAN        g_f = -softplus(-v)          f*(g_f(v)) = softplus(v)

Every loss is computed in fp32 for fp16 / bf16 scores (under autocast D's outputs come out in half precision; the
loss's reduction, and a GradScaler multiplying it by 2^16, need fp32 — an fp16 loss of 1.4 x 2^16 is inf).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["DIVERGENCES", "G_LOSSES", "GE_LOSSES", "bigan_ge_loss", "d_accuracy", "f_divergence_losses",
           "f_gan_activation", "f_gan_conjugate", "gan_d_loss", "gan_g_loss", "hinge_losses", "least_squares_losses",
           "wasserstein_losses", "wide"]

G_LOSSES = ("ns", "minimax")
GE_LOSSES = ("inverse", "minimax")


def wide(*ts):
    """fp16 / bf16 tensors as fp32, the rest unchanged (fp64 stays fp64): losses in fp32 under autocast, without
    narrowing an fp64 run. One tensor in, one out; several in, a tuple out."""
    out = tuple(t.float() if isinstance(t, torch.Tensor) and t.dtype in (torch.float16, torch.bfloat16) else t
                for t in ts)
    return out if len(out) > 1 else out[0]


def _check(kind: str, allowed: tuple, arg: str) -> None:
    if kind not in allowed:
        raise ValueError(f"{arg}: expected one of {', '.join(map(repr, allowed))}, got {kind!r}")


def gan_d_loss(l_real: torch.Tensor, l_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's cross-entropy: E softplus(-l_real) + E softplus(l_fake)."""
    l_real, l_fake = wide(l_real, l_fake)
    return F.softplus(-l_real).mean() + F.softplus(l_fake).mean()


def d_accuracy(l_real: torch.Tensor, l_fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """The discriminator's accuracy, detached: {'acc_real': fraction of real logits > 0, 'acc_fake': fraction of fake
    logits < 0}. Tensors (no host sync): a training step's diagnostics, averaged by the trainer's metrics lines."""
    l_real, l_fake = wide(l_real.detach(), l_fake.detach())  # the logits' dtype (fp32 for half): like the losses
    return {"acc_real": (l_real > 0).to(l_real.dtype).mean(), "acc_fake": (l_fake < 0).to(l_fake.dtype).mean()}


def gan_g_loss(l_fake: torch.Tensor, kind: str = "ns") -> torch.Tensor:
    """The generator's loss: 'ns' E softplus(-l_fake), 'minimax' -E softplus(l_fake)."""
    l_fake = wide(l_fake)
    _check(kind, G_LOSSES, "kind")
    return F.softplus(-l_fake).mean() if kind == "ns" else -F.softplus(l_fake).mean()


def bigan_ge_loss(l_real: torch.Tensor, l_fake: torch.Tensor, kind: str = "inverse") -> torch.Tensor:
    """The BiGAN generator's and encoder's loss: 'inverse' E softplus(l_real) + E softplus(-l_fake), 'minimax'
    -gan_d_loss."""
    l_real, l_fake = wide(l_real, l_fake)
    _check(kind, GE_LOSSES, "kind")
    if kind == "minimax":
        return -gan_d_loss(l_real, l_fake)
    return F.softplus(l_real).mean() + F.softplus(-l_fake).mean()


def wasserstein_losses(v_real: torch.Tensor, v_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(critic loss E v_fake - E v_real, generator loss -E v_fake)."""
    v_real, v_fake = wide(v_real, v_fake)
    return v_fake.mean() - v_real.mean(), -v_fake.mean()


def hinge_losses(v_real: torch.Tensor, v_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(critic loss E relu(1 - v_real) + E relu(1 + v_fake), generator loss -E v_fake)."""
    v_real, v_fake = wide(v_real, v_fake)
    return F.relu(1 - v_real).mean() + F.relu(1 + v_fake).mean(), -v_fake.mean()


def least_squares_losses(v_real: torch.Tensor, v_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(critic loss ((v_real - 1)^2 + v_fake^2) / 2 averaged, generator loss (v_fake - 1)^2 / 2 averaged)."""
    v_real, v_fake = wide(v_real, v_fake)
    return 0.5 * ((v_real - 1).square().mean() + v_fake.square().mean()), 0.5 * (v_fake - 1).square().mean()


DIVERGENCES = ("KL", "RKL", "Pearson", "Hellinger", "JS", "GAN")
_LOG2 = math.log(2.0)


def f_gan_activation(v: torch.Tensor, divergence: str) -> torch.Tensor:
    """g_f(v): the output activation that maps v into the domain of f* for `divergence`."""
    v = wide(v)
    _check(divergence, DIVERGENCES, "divergence")
    if divergence in ("KL", "Pearson"):
        return v
    if divergence == "RKL":
        return -torch.exp(-v)
    if divergence == "Hellinger":
        return -torch.expm1(-v)
    if divergence == "JS":
        return _LOG2 - F.softplus(-v)
    return -F.softplus(-v)


def f_gan_conjugate(v: torch.Tensor, divergence: str) -> torch.Tensor:
    """f*(g_f(v)) in closed form (see the module docstring)."""
    v = wide(v)
    _check(divergence, DIVERGENCES, "divergence")
    if divergence == "KL":
        return torch.exp(v - 1)
    if divergence == "RKL":
        return v - 1
    if divergence == "Pearson":
        return 0.25 * v.square() + v
    if divergence == "Hellinger":
        return torch.expm1(v)
    if divergence == "JS":
        return F.softplus(v) - _LOG2
    return F.softplus(v)


def f_divergence_losses(v_real: torch.Tensor, v_fake: torch.Tensor,
                        divergence: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(critic loss -(E g_f(v_real) - E f*(g_f(v_fake))), generator loss -E g_f(v_fake)). At the optimal critic,
    -critic loss estimates the divergence D_f(P || Q) from below."""
    bound = f_gan_activation(v_real, divergence).mean() - f_gan_conjugate(v_fake, divergence).mean()
    return -bound, -f_gan_activation(v_fake, divergence).mean()
