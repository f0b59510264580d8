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
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch.autograd.function import once_differentiable

from ._checks import autocast_dtype
from .nn import LinearAct, MLPCritic
from .ops.bias_act import output_slope_ops
from .ops.weight_grads import input_grads

__all__ = ["gradient_penalty", "wgan_critic_loss", "CriticLoss", "KINDS"]

KINDS = ("wgan-gp", "r1", "r2")

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


# ---- the fused path: MLP critics of piecewise-linear layers ----
_PIECEWISE = ("linear", "relu", "lrelu")


def fused_reason(critic) -> str | None:
    """None if `critic` can take the fused penalty path, else why not."""
    if not isinstance(critic, MLPCritic):
        return f"the fused path takes a fastgan.nn.MLPCritic, got {type(critic).__name__}"
    for i, layer in enumerate(critic.layers):
        if not isinstance(layer, LinearAct) or layer.act not in _PIECEWISE:
            return f"layer {i} is not a LinearAct with act in {_PIECEWISE}"
    if len({layer.impl for layer in critic.layers}) > 1:
        return "its layers ask for different impls (the fused path runs one backend)"
    last = critic.layers[-1]
    if last.out_features != 1 or last.act != "linear":
        return "the last layer must be a linear layer to one unit"
    return None


class _Slopes:
    """Multiplication by the slope masks m_l = gain_l * act'(a_l) of an MLP's layers, given their outputs h_l: the
    fused bias_act_backward kernel (from the output's sign, exact for these activations in fp32 / fp64), or
    torch.where on the pre-activations' signs (reference backend, half dtypes)."""

    def __init__(self, x, acts, impl):
        # the critic's layers' impl; the slope from the output's sign when exact (alpha >= 0, gain != 0, fp32 / fp64)
        self.ns = output_slope_ops(impl, x.device, acts, x.dtype)
        self.acts = acts

    def forward(self, h, w, bias, layer):
        """(the layer's output h_l, what backward needs to apply m_l: h_l itself, or the mask)."""
        a = h @ w.t()
        return self.activate(a, layer, bias)


    def activate(self, a, layer, bias=None):
        """(h_l, ref) from the pre-activations a (plus bias, when given)."""
        act, alpha, gain = self.acts[layer]
        if self.ns is not None:
            y = self.ns.bias_act(a, bias, 1, act, alpha, gain, -1.0)
            return y, y
        if bias is not None:
            a = a + bias
        slope = {"linear": 1.0, "relu": 0.0, "lrelu": alpha}[act]
        m = torch.where(a > 0, a.new_full((), gain), a.new_full((), slope * gain))  # in a's dtype: exact
        return a * m, m

    def apply(self, t, ref, layer):
        """t * m_l."""
        if self.ns is None:
            return t * ref
        act, alpha, gain = self.acts[layer]
        return self.ns.bias_act_backward(t, ref, None, 1, act, alpha, gain, -1.0, True, False)[0]


class _Shifted:
    """A _Slopes seen from layer `k` on (for the layers after the first)."""

    def __init__(self, slopes, k):
        self.slopes, self.k = slopes, k

    def forward(self, h, w, bias, layer):
        return self.slopes.forward(h, w, bias, layer + self.k)


def _hidden_forward(x, weights, biases, slopes):
    """The hidden layers of an MLP on the rows of x: (outputs h_1..h_{L-1}, what slopes.apply needs per layer)."""
    h, hs, refs = x, [], []
    for i in range(len(weights) - 1):
        h, ref = slopes.forward(h, weights[i], biases[i], i)
        hs.append(h)
        refs.append(ref)
    return hs, refs


def _input_grad(b, weights, refs, slopes, out_gain, like):
    """The chain e_L = gain_L, e_l = (e_{l+1} W_{l+1}) * m_l; returns (es, grad x = e_1 W_1) for b rows."""
    n = len(weights)
    es = [None] * n
    es[-1] = torch.full((b, 1), out_gain, dtype=like.dtype, device=like.device)
    for i in range(n - 2, -1, -1):
        es[i] = slopes.apply(es[i + 1] @ weights[i + 1], refs[i], i)
    return es, es[0] @ weights[0]


def _penalty_of(gx, kind, center, weight):
    """(the penalty of the input gradients gx, v = dP/d gx)."""
    b = gx.shape[0]
    norm = torch.linalg.vector_norm(gx, dim=1)
    if kind == "wgan-gp":
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        coef = torch.where(norm > 0, (2 * weight / b) * (norm - center) / safe, torch.zeros_like(norm))
        return weight * (norm - center).square().mean(), gx * coef[:, None]
    return (weight / 2) * norm.square().mean(), gx * (weight / b)


def _penalty_tangents(v, weights, refs, slopes):
    """The right operands of the penalty's weight gradients, dP/dW_l = e_l^T t_l: t_1 = v, t_{l+1} = (t_l W_l^T) *
    m_l (the input-gradient chain run forward)."""
    ts = [v]
    for i in range(len(weights) - 1):
        ts.append(slopes.apply(ts[-1] @ weights[i].t(), refs[i], i))
    return ts


class _MLPPenalty(torch.autograd.Function):
    """The penalty of an MLP critic of piecewise-linear layers, h_l = (h_{l-1} W_l^T + b_l) * m_l with the slope masks
    m_l = gain_l * act'(a_l) (constant almost everywhere: the activations have zero second derivative). The input
    gradient is the chain e_L = gain_L, e_l = (e_{l+1} W_{l+1}) * m_l, grad x = e_1 W_1; the penalty's parameter
    gradients run the chain forward (_penalty_tangents) with v = dP/d(grad x). Only GEMMs and the fused mask
    products: no autograd graph of the backward, no zero tensors pushed back through the forward chain (eager double
    backward does both). The biases get no gradient (they move only the masks' kinks). First order in the
    parameters (the penalty is a loss)."""

    @staticmethod
    def forward(ctx, x, meta, *params):
        kind, center, weight, acts, impl = meta
        n = len(acts)
        weights, biases = params[:n], params[n:]
        slopes = _Slopes(x, acts, impl)
        _, refs = _hidden_forward(x, weights, biases, slopes)
        es, gx = _input_grad(x.shape[0], weights, refs, slopes, acts[-1][2], x)
        pen, v = _penalty_of(gx, kind, center, weight)
        ctx.n_layers, ctx.slopes = n, slopes
        ctx.save_for_backward(v, *weights, *es, *refs)
        return pen

    @staticmethod
    @once_differentiable  # the penalty is a loss: differentiating its gradient again is refused, not silently wrong
    def backward(ctx, gp):
        n, slopes = ctx.n_layers, ctx.slopes
        saved = ctx.saved_tensors
        v, weights, es, refs = saved[0], saved[1:1 + n], saved[1 + n:1 + 2 * n], saved[1 + 2 * n:]
        ts = _penalty_tangents(v * gp, weights, refs, slopes)
        return (None, None, *[e.t() @ t for e, t in zip(es, ts)], *([None] * n))


class _MLPCriticLoss(torch.autograd.Function):
    """E[D(fake)] - E[D(real)] + penalty for an MLP critic of piecewise-linear layers (at least one hidden layer), in
    one pass over the 3B rows [real; fake; x_hat]:
      forward   the layers once over the 3B rows, the first layer's pre-activations at x_hat interpolated from those
                of real and fake (the layer is affine: a_1(lerp(f, r, eps)) = lerp(a_1(f), a_1(r), eps)): saves that
                GEMM; then one backward chain C_l = (C_{l+1} W_{l+1}) * m_l over the 3B rows that is both the scores'
                backprop (rows 0..2B, for a unit upstream gradient: the loss is linear in it) and the input-gradient
                chain e_l of the penalty (rows 2B..3B); grad x = e_1 W_1 and the penalty.
      backward  the penalty's tangents t_l (_penalty_tangents) written over the x_hat rows of the layers' inputs,
                so that each weight gradient, gl * (delta_l^T h_{l-1} + e_l^T t_l), is one GEMM of depth 3B into a
                fresh dW (no accumulation pass, no concatenation)."""

    @staticmethod
    def forward(ctx, xr, xf, eps, meta, *params):
        kind, center, weight, acts, impl = meta
        n = len(acts)
        weights, biases = params[:n], params[n:]
        b = xr.shape[0]
        slopes = _Slopes(xr, acts, impl)
        x3 = xr.new_empty(3 * b, xr.shape[1])  # [real; fake; the penalty's tangent t_1 (written in backward)]
        x3[:b], x3[b:2 * b] = xr, xf
        a1 = xr.new_empty(3 * b, weights[0].shape[0])
        torch.mm(x3[:2 * b], weights[0].t(), out=a1[:2 * b])  # the bias is added in the activation pass
        torch.lerp(a1[b:2 * b], a1[:b], eps.to(a1.dtype)[:, None], out=a1[2 * b:])  # the x_hat rows
        h, ref = slopes.activate(a1, 0, biases[0])
        hs, refs = [h], [ref]
        for i in range(1, n - 1):
            h, ref = slopes.forward(h, weights[i], biases[i], i)
            hs.append(h)
            refs.append(ref)
        out_gain = acts[-1][2]
        out = hs[-1][:2 * b] @ weights[-1].t()
        if biases[-1] is not None:
            out = out + biases[-1]
        out = out[:, 0] * out_gain
        # the chain's top: d loss / d out = -gain/B (real), +gain/B (fake); e_L = gain (x_hat)
        c = xr.new_full((3 * b, 1), out_gain)
        c[:2 * b] /= b
        c[:b] = -c[:b]
        cs = [c]
        for i in range(n - 2, -1, -1):
            cs.insert(0, slopes.apply(cs[0] @ weights[i + 1], refs[i], i))
        gx = cs[0][2 * b:] @ weights[0]
        pen, v = _penalty_of(gx, kind, center, weight)
        d_real, d_fake = out[:b].mean(), out[b:].mean()
        ctx.n_layers, ctx.slopes, ctx.b = n, slopes, b
        ctx.has_bias = [bb is not None for bb in biases]
        ctx.save_for_backward(x3, v, *weights, *cs, *hs, *[r[2 * b:] for r in refs])
        ctx.mark_non_differentiable(d_real, d_fake, pen)
        return d_fake - d_real + pen, d_real, d_fake, pen

    @staticmethod
    @once_differentiable
    def backward(ctx, gl, *unused):
        if getattr(ctx, "done", False):
            raise RuntimeError("wgan_critic_loss (fused MLP path): backward can run once per loss (it writes the "
                               "penalty's tangents over its saved activations); recompute the loss instead of "
                               "retain_graph=True, or pass fused=False")
        ctx.done = True
        n, slopes, b = ctx.n_layers, ctx.slopes, ctx.b
        saved = ctx.saved_tensors
        x3, v = saved[0], saved[1]
        weights, cs = saved[2:2 + n], saved[2 + n:2 + 2 * n]
        hs, hat = saved[2 + 2 * n:1 + 3 * n], saved[1 + 3 * n:]
        inputs = [x3, *hs]  # layer l's input over [real; fake], then its tangent t_l in the x_hat rows
        ts = _penalty_tangents(v, weights, hat, slopes)
        dws, dbs = [], [None] * n
        for i in range(n):
            inputs[i][2 * b:] = ts[i]  # the x_hat rows' activations were last needed for the tangents' masks
            dws.append(torch.mm(cs[i].t(), inputs[i]).mul_(gl))  # gl stays on the device: no host sync
            if ctx.has_bias[i]:
                dbs[i] = cs[i][:2 * b].sum(0).mul_(gl)
        return (None, None, None, None, *dws, *dbs)


def _acts_of(critic) -> tuple:
    return tuple((layer.act, 0.2 if layer.alpha is None else float(layer.alpha), float(layer.gain))
                 for layer in critic.layers)


def _fused_penalty(critic, x, kind, center, weight):
    layers = list(critic.layers)
    return _MLPPenalty.apply(x, (kind, float(center), float(weight), _acts_of(critic), critic.layers[0].impl),
                             *[layer.weight for layer in layers], *[layer.bias for layer in layers])


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
    for name, v in (("center", center), ("weight", weight)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not torch.isfinite(torch.tensor(float(v))):
            raise ValueError(f"{name}: expected a finite number, got {v!r}")

    if kind == "wgan-gp":
        eps = _interpolation_weights(real_t[0], generator, eps)
        # in the wider dtype of the two (under autocast a half-precision G output meets an fp32 data batch)
        points = tuple(torch.lerp(f.detach().to(dt), r.detach().to(dt), eps.view(-1, *[1] * (r.dim() - 1)).to(dt))
                       for r, f in zip(real_t, fake_t) for dt in [torch.promote_types(r.dtype, f.dtype)])
    else:
        points = tuple(t.detach() for t in (real_t if kind == "r1" else fake_t))
    reason = fused_reason(critic) if fused is not False else "fused=False"
    if reason is None and (scaler is not None or len(points) != 1 or _checks_autocast(points[0])):
        reason = "a scaler, autocast or several inputs (the generic path handles those)"
    if fused and reason is not None:
        raise ValueError(f"fused: the critic cannot take the fused penalty path: {reason}")
    if reason is None:
        return _fused_penalty(critic, points[0], kind, center, weight)
    points = tuple(p.requires_grad_(True) for p in points)

    out = critic(*points)
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
    real_t, fake_t = _as_tuple(real, "real"), _as_tuple(fake, "fake")
    reason = fused_reason(critic) if fused is not False else "fused=False"
    if reason is None and (kind != "wgan-gp" or len(real_t) != 1 or _checks_autocast(real_t[0]) or
                           len(critic.layers) < 2 or scaler is not None):
        reason = "only kind='wgan-gp' on a single input, without autocast or a scaler, with a hidden layer"
    if fused and reason is not None:
        raise ValueError(f"fused: the critic cannot take the fused loss path: {reason}")
    if reason is None:
        xr, xf = real_t[0].detach(), fake_t[0].detach()
        if xr.shape != xf.shape:
            raise ValueError(f"fake: expected shape {tuple(xr.shape)} like real, got {tuple(xf.shape)}")
        eps = _interpolation_weights(xr, generator, eps)
        layers = list(critic.layers)
        loss, d_real, d_fake, pen = _MLPCriticLoss.apply(
            xr, xf, eps, (kind, float(center), float(weight), _acts_of(critic), critic.layers[0].impl),
            *[layer.weight for layer in layers],
            *[layer.bias for layer in layers])
        return CriticLoss(loss, d_real.detach(), d_fake.detach(), pen.detach())
    d_real = critic(*real_t).mean()
    d_fake = critic(*fake_t).mean()
    pen = gradient_penalty(critic, real_t, fake_t, kind=kind, center=center, weight=weight, generator=generator,
                           fused=False if fused is False else None, eps=eps, scaler=scaler)
    return CriticLoss(d_fake - d_real + pen, d_real.detach(), d_fake.detach(), pen.detach())
