"""Gradient penalties: WGAN-GP (Gulrajani et al. 2017), R1 and R2 (Mescheder et al. 2018).

    penalty = fastgan.gradient_penalty(critic, real, fake, kind="wgan-gp")   # weight * E[(|grad D(x_hat)| - 1)^2]
    (critic_loss + penalty).backward()

The penalty is a tensor whose backward reaches the critic's parameters: a double backward through the critic, exact
through every fastgan op that has second derivatives (bias_act, joint_linear, kernel_sum / mmd2 with the smooth
kernels); an op without them (minibatch discrimination, laplacian MMD kernels) raises NotImplementedError naming
itself. torch.compile cannot run this double backward (aot_autograd refuses it, torch 2.13); compile the generator
and leave the critic step in eager.

The inner gradient is taken with respect to the inputs only. Built-in torch ops then skip their weight gradients by
themselves; fastgan's ops (custom autograd nodes, which the engine asks for every input's gradient) skip theirs while
`weight_grads_skipped()` is true, which gradient_penalty arranges around its inner torch.autograd.grad — StyleGAN's
conv2d_gradfix idea: for a joint_linear critic that saves half the GEMMs of the inner backward.

Mixed precision: with a GradScaler, pass it as `scaler`: the inner gradient is taken of the scaled output and divided
by the scale before the norm (the recipe of PyTorch's AMP documentation), so the penalty is that of unscaled
gradients and can be added to the loss that scaler.scale(...) then scales once.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable

import torch

__all__ = ["gradient_penalty", "skip_weight_grads", "weight_grads_skipped", "KINDS"]

KINDS = ("wgan-gp", "r1", "r2")

_state = threading.local()


def weight_grads_skipped() -> bool:
    """True inside gradient_penalty's inner gradient (on this thread): fastgan ops then return no gradients for
    their weights. (The autograd engine runs CPU backward on the calling thread; CUDA backward runs on the engine's
    device threads, where this flag is not visible, so on CUDA the weight gradients are computed and discarded.)"""
    return getattr(_state, "skip", 0) > 0


@contextlib.contextmanager
def skip_weight_grads(enabled: bool = True):
    """Within: fastgan ops compute no weight gradients in backward (for gradients taken w.r.t. inputs only)."""
    _state.skip = getattr(_state, "skip", 0) + (1 if enabled else 0)
    try:
        yield
    finally:
        _state.skip -= 1 if enabled else 0


def _as_tuple(t, arg: str) -> tuple:
    ts = (t,) if isinstance(t, torch.Tensor) else tuple(t) if isinstance(t, (tuple, list)) else None
    if not ts or not all(isinstance(x, torch.Tensor) for x in ts):
        raise TypeError(f"{arg}: expected a tensor or a tuple of tensors (the critic's inputs), got "
                        f"{type(t).__name__}")
    for x in ts:
        if not x.is_floating_point():
            raise TypeError(f"{arg}: expected floating tensors, got {x.dtype}")
        if x.dim() == 0:
            raise ValueError(f"{arg}: expected tensors with a batch dimension, got a 0-d tensor")
    if any(x.shape[0] != ts[0].shape[0] for x in ts):
        raise ValueError(f"{arg}: expected the same batch size for every input, got {[x.shape[0] for x in ts]}")
    return ts


def gradient_penalty(critic: Callable[..., torch.Tensor], real, fake=None, kind: str = "wgan-gp",
                     center: float = 1.0, weight: float = 10.0, scaler=None, skip_weights: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """The gradient penalty of `critic` (called as critic(*inputs) -> scores of shape (B,) or (B, 1)).

    real / fake: a tensor, or a tuple of tensors for a critic of several inputs (a BiGAN critic D(x, z): the penalty
    is on the joint input, the interpolation applied to every input with the same per-sample epsilon).
    kind: 'wgan-gp'  weight * mean_i (|grad D(x_hat_i)| - center)^2 at x_hat = eps real + (1 - eps) fake,
                     eps ~ U(0, 1) per sample (from `generator` if given); needs fake;
          'r1'       weight / 2 * mean_i |grad D(real_i)|^2;
          'r2'       weight / 2 * mean_i |grad D(fake_i)|^2; needs fake.
    The norm is over all inputs of a sample together. scaler: a torch GradScaler (see the module's docstring).
    skip_weights: skip fastgan ops' weight gradients in the inner gradient (it needs only the input gradient).
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if not callable(critic):
        raise TypeError(f"critic: expected a callable (a module), got {type(critic).__name__}")
    real_t = _as_tuple(real, "real")
    if kind in ("wgan-gp", "r2"):
        if fake is None:
            raise ValueError(f"fake: kind={kind!r} needs the generated samples")
        fake_t = _as_tuple(fake, "fake")
        if len(fake_t) != len(real_t) or any(a.shape != b.shape for a, b in zip(real_t, fake_t)):
            raise ValueError(f"fake: expected shapes {[tuple(a.shape) for a in real_t]} like real, got "
                             f"{[tuple(b.shape) for b in fake_t]}")
    for name, v in (("center", center), ("weight", weight)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not torch.isfinite(torch.tensor(float(v))):
            raise ValueError(f"{name}: expected a finite number, got {v!r}")

    if kind == "wgan-gp":
        b = real_t[0].shape[0]
        eps = torch.rand(b, generator=generator, device=generator.device if generator is not None else "cpu",
                         dtype=torch.float64 if real_t[0].dtype == torch.float64 else torch.float32)
        eps = eps.to(real_t[0].device)
        points = tuple(torch.lerp(f.detach(), r.detach(), eps.view(-1, *[1] * (r.dim() - 1)).to(r.dtype))
                       for r, f in zip(real_t, fake_t))
    else:
        points = tuple(t.detach() for t in (real_t if kind == "r1" else fake_t))
    points = tuple(p.requires_grad_(True) for p in points)

    out = critic(*points)
    if out.dim() > 1:
        out = out.reshape(out.shape[0], -1).sum(1)
    scaled = scaler.scale(out) if scaler is not None else out
    with skip_weight_grads(skip_weights):
        grads = torch.autograd.grad(scaled.sum(), points, create_graph=True)
    if scaler is not None:
        inv = 1.0 / scaler.get_scale()
        grads = tuple(g * inv for g in grads)
    flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads], 1)
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()  # the norm in fp32
    if kind == "wgan-gp":  # vector_norm's gradient at a zero gradient is 0, not NaN
        return weight * (torch.linalg.vector_norm(flat, dim=1) - center).square().mean()
    return (weight / 2) * flat.square().sum(1).mean()
