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
gradient_penalty takes its inner gradient through fastgan.ops.input_grads (ops/weight_grads.py) — StyleGAN's
conv2d_gradfix idea: for a joint_linear critic that saves half the GEMMs of the inner backward.

Mixed precision: with a GradScaler, pass it as `scaler`: the inner gradient is taken of the scaled output and divided
by the scale before the norm (the recipe of PyTorch's AMP documentation), so the penalty is that of unscaled
gradients and can be added to the loss that scaler.scale(...) then scales once.

The fused path for MLP critics of piecewise-linear layers (GEMMs with the forward's slope masks instead of a double
backward) lives in penalties/fused.py; this module checks the arguments and chooses the path.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from .._checks import autocast_dtype
from ..ops.weight_grads import input_grads
from .fused import _MLPCriticLoss, _MLPPenalty, fused_args, fused_reason

__all__ = ["gradient_penalty", "penalty_from_outputs", "r1_from_outputs", "wgan_critic_loss", "CriticLoss", "KINDS"]

KINDS = ("wgan-gp", "r1", "r2")


def _check_center_weight(center, weight) -> None:
    """The penalty's `center` (a finite real number) and `weight` (a finite real number >= 0: a negative weight would
    reward steep critics), or a ValueError naming the argument."""
    for name, v in (("center", center), ("weight", weight)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name}: expected a finite number{' >= 0' if name == 'weight' else ''}, got {v!r}")
    if weight < 0:
        raise ValueError(f"weight: expected a finite number >= 0, got {weight!r}")


def _checks_autocast(t: torch.Tensor) -> bool:
    return autocast_dtype(t) is not None


def _interpolation_weights(like: torch.Tensor, generator, eps) -> torch.Tensor:
    """WGAN-GP's per-sample eps ~ U(0, 1) (B,), drawn from `generator`, or the given eps checked."""
    b = like.shape[0]
    dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
    if eps is None:  # drawn on the generator's device (default: the data's), never copied through pageable memory
        eps = torch.rand(b, generator=generator, device=like.device if generator is None else generator.device,
                         dtype=dtype)
        if eps.device != like.device and eps.device.type == "cpu" and like.device.type == "cuda":
            return eps.pin_memory().to(like.device, non_blocking=True)  # a CPU generator: no stream sync
    elif not isinstance(eps, torch.Tensor) or eps.shape != (b,) or not eps.is_floating_point():
        raise ValueError(f"eps: expected a floating tensor of shape ({b},), got "
                         f"{tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__}")
    return eps.to(device=like.device, dtype=dtype)


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


def _takes_fused(critic, fused: bool | None, path: str, handles, limits: str) -> bool:
    """Whether the call runs the fused `path` ('penalty' or 'loss'): never with fused=False; with None (auto) when the
    critic can (fused_reason) and `handles(critic)` says the path handles the call's arguments; with True the same, or
    ValueError saying why not (`limits`: what the path handles)."""
    reason = fused_reason(critic) if fused is not False else "fused=False"
    if reason is None and not handles(critic):
        reason = limits
    if fused and reason is not None:
        raise ValueError(f"fused: the critic cannot take the fused {path} path: {reason}")
    return reason is None


def gradient_penalty(critic: Callable[..., torch.Tensor], real, fake=None, kind: str = "wgan-gp",
                     center: float = 1.0, weight: float = 10.0, scaler=None, skip_weights: bool = True,
                     generator: torch.Generator | None = None, fused: bool | None = None,
                     eps: torch.Tensor | None = None) -> torch.Tensor:
    """The gradient penalty of `critic` (called as critic(*inputs) -> scores of shape (B,) or (B, 1)).

    real / fake: a tensor, or a tuple of tensors for a critic of several inputs (a BiGAN critic D(x, z): the penalty
    is on the joint input, the interpolation applied to every input with the same per-sample epsilon).
    kind: 'wgan-gp'  weight * mean_i (|grad D(x_hat_i)| - center)^2 at x_hat = eps real + (1 - eps) fake,
                     eps ~ U(0, 1) per sample (from `generator` if given); needs fake;
          'r1'       weight / 2 * mean_i |grad D(real_i)|^2;
          'r2'       weight / 2 * mean_i |grad D(fake_i)|^2; needs fake.
    The norm is over all inputs of a sample together. scaler: a torch GradScaler (see the module's docstring).
    skip_weights: skip fastgan ops' weight gradients in the inner gradient (it needs only the input gradient).
    eps: the interpolation weights (B,) in [0, 1] for 'wgan-gp' instead of a draw (e.g. a slice of a global batch's
    draw under data parallelism).
    fused: None (auto) takes the fused path (_MLPPenalty: GEMMs with the forward's masks) when the critic is an
    MLPCritic of linear / relu / lrelu layers and no scaler or autocast is in play, the generic double backward
    otherwise; True requires it (ValueError saying why not); False never takes it.
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
    _check_center_weight(center, weight)

    if kind == "wgan-gp":
        eps = _interpolation_weights(real_t[0], generator, eps)
        # in the wider dtype of the two (under autocast a half-precision G output meets an fp32 data batch)
        points = tuple(torch.lerp(f.detach().to(dt), r.detach().to(dt), eps.view(-1, *[1] * (r.dim() - 1)).to(dt))
                       for r, f in zip(real_t, fake_t) for dt in [torch.promote_types(r.dtype, f.dtype)])
    else:
        points = tuple(t.detach() for t in (real_t if kind == "r1" else fake_t))
    if _takes_fused(critic, fused, "penalty",
                    lambda c: scaler is None and len(points) == 1 and not _checks_autocast(points[0]),
                    "a scaler, autocast or several inputs (the generic path handles those)"):
        return _MLPPenalty.apply(points[0], *fused_args(critic, kind, center, weight))
    points = tuple(p.requires_grad_(True) for p in points)
    return _penalty_of(critic(*points), points, kind, center, weight, scaler, skip_weights)


def _penalty_of(out, points, kind, center, weight, scaler, skip_weights) -> torch.Tensor:
    """The generic path's penalty from the critic's outputs `out` at `points` (which require grad)."""
    if out.dim() > 1:
        out = out.reshape(out.shape[0], -1).sum(1)
    scaled = scaler.scale(out) if scaler is not None else out
    grads = input_grads(scaled.sum(), points, create_graph=True, skip_weights=skip_weights)
    if scaler is not None:
        inv = 1.0 / scaler.get_scale()
        grads = tuple(g * inv for g in grads)
    flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads], 1)
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()  # the norm in fp32
    if kind == "wgan-gp":  # vector_norm's gradient at a zero gradient is 0, not NaN
        return weight * (torch.linalg.vector_norm(flat, dim=1) - center).square().mean()
    return (weight / 2) * flat.square().sum(1).mean()


def penalty_from_outputs(out: torch.Tensor, inputs, kind: str = "wgan-gp", center: float = 1.0,
                         weight: float = 10.0, scaler=None, skip_weights: bool = True) -> torch.Tensor:
    """gradient_penalty's penalty (kind, center, weight, scaler, skip_weights as there) from a function's outputs
    `out` on `inputs` (a tensor or tuple of tensors that require grad, from which `out` was computed in this
    forward): per-sample outputs (B,) or (B, ...), or a 0-d tensor that is their sum over the batch -- each sample's
    term depending on its own input alone (e.g. a witness function summed over points: the per-sample gradients are
    then the gradient of the sum). For a loss that already ran the critic on the batch, so one forward serves both.
    Inputs that are not leaves count as independent inputs (the gradient w.r.t. them, not through them)."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    _check_center_weight(center, weight)
    points = _as_tuple(inputs, "inputs")
    if not all(p.requires_grad for p in points):
        raise ValueError("inputs: every input must require grad (set requires_grad before the critic's forward)")
    if not isinstance(out, torch.Tensor) or (out.dim() > 0 and out.shape[0] != points[0].shape[0]):
        raise ValueError(f"out: expected the outputs with the inputs' batch size {points[0].shape[0]} (or their sum, "
                         f"0-d), got {tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    return _penalty_of(out, points, kind, center, weight, scaler, skip_weights)


def r1_from_outputs(out: torch.Tensor, inputs, weight: float, scaler=None, skip_weights: bool = True) -> torch.Tensor:
    """The R1 penalty weight / 2 * mean_i |grad D(real_i)|^2 from the critic's outputs `out` (B,) or (B, ...) on
    `inputs` (penalty_from_outputs with kind 'r1'): for a loss that already ran the critic on the real batch, so one
    forward serves both (its outputs can feed the loss too; with batch norm the penalty then sees the loss's batch
    statistics, as gradient_penalty's second forward over the same batch would). The same value and gradients as
    gradient_penalty(critic, inputs, kind='r1', fused=False)."""
    if isinstance(out, torch.Tensor) and out.dim() == 0:
        rows = _as_tuple(inputs, "inputs")[0].shape[0]
        raise ValueError(f"out: expected the critic's outputs with the inputs' batch size {rows}, got a 0-d tensor")
    return penalty_from_outputs(out, inputs, "r1", 0.0, weight, scaler, skip_weights)


class CriticLoss(NamedTuple):
    loss: torch.Tensor  # E[D(fake)] - E[D(real)] + penalty: backpropagates into the critic's parameters
    d_real: torch.Tensor  # E[D(real)], detached (for logging)
    d_fake: torch.Tensor  # E[D(fake)], detached
    penalty: torch.Tensor  # the penalty, detached


def wgan_critic_loss(critic: Callable[..., torch.Tensor], real, fake, kind: str = "wgan-gp", center: float = 1.0,
                     weight: float = 10.0, generator: torch.Generator | None = None,
                     fused: bool | None = None, eps: torch.Tensor | None = None, scaler=None) -> CriticLoss:
    """The WGAN critic's loss E[D(fake)] - E[D(real)] + penalty (gradient_penalty's kinds and arguments).

    For an MLPCritic of linear / relu / lrelu layers and kind='wgan-gp' (fused None or True, no autocast) it runs as
    one fused pass (_MLPCriticLoss): the layers once over [real; fake; x_hat], the first layer's GEMM at x_hat replaced
    by interpolating real's and fake's pre-activations, the penalty's gradients by GEMMs with the masks. Otherwise:
    critic(*real), critic(*fake) (separately: a critic with batch statistics sees the batches as it would alone) and
    gradient_penalty (with `scaler`, as there: the loss is unscaled, for the caller to scale once).
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    _check_center_weight(center, weight)  # the fused path below takes them as they are
    real_t, fake_t = _as_tuple(real, "real"), _as_tuple(fake, "fake")
    if _takes_fused(critic, fused, "loss",
                    lambda c: (kind == "wgan-gp" and len(real_t) == 1 and not _checks_autocast(real_t[0]) and
                               len(c.layers) >= 2 and scaler is None),
                    "only kind='wgan-gp' on a single input, without autocast or a scaler, with a hidden layer"):
        xr, xf = real_t[0].detach(), fake_t[0].detach()
        if xr.shape != xf.shape:
            raise ValueError(f"fake: expected shape {tuple(xr.shape)} like real, got {tuple(xf.shape)}")
        eps = _interpolation_weights(xr, generator, eps)
        loss, d_real, d_fake, pen = _MLPCriticLoss.apply(xr, xf, eps, *fused_args(critic, kind, center, weight))
        return CriticLoss(loss, d_real.detach(), d_fake.detach(), pen.detach())
    d_real = critic(*real_t).mean()
    d_fake = critic(*fake_t).mean()
    pen = gradient_penalty(critic, real_t, fake_t, kind=kind, center=center, weight=weight, generator=generator,
                           fused=False if fused is False else None, eps=eps, scaler=scaler)
    return CriticLoss(d_fake - d_real + pen, d_real.detach(), d_fake.detach(), pen.detach())
