"""The fused penalty path for MLP critics of piecewise-linear layers (fastgan.nn.MLPCritic of linear / relu / lrelu
LinearAct layers): the input gradient and the penalty's parameter gradients as GEMMs with the slope masks of the
forward, no double backward. fastgan.penalties decides when it runs (fused_reason) and calls _MLPPenalty and
_MLPCriticLoss with fused_args(critic, ...)."""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ..nn import LinearAct, MLPCritic
from ..ops import output_slope_ops

__all__ = ["fused_args", "fused_reason"]

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


def fused_args(critic, kind, center, weight) -> tuple:
    """What follows the inputs in _MLPPenalty.apply / _MLPCriticLoss.apply for `critic`: (meta, *weights, *biases)."""
    layers = list(critic.layers)
    acts = tuple((layer.act, 0.2 if layer.alpha is None else float(layer.alpha), float(layer.gain)) for layer in layers)
    return ((kind, float(center), float(weight), acts, layers[0].impl), *[layer.weight for layer in layers],
            *[layer.bias for layer in layers])
