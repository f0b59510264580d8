"""Minibatch discrimination (Salimans et al., "Improved techniques for training GANs", 2016) without the
B x B x K x C difference tensor.

    o[i, k] = sum_j exp(-|m[i, k, :] - r[j, k, :]|_1),   m (B, K, C) = f(x) T,  r = m or a reference batch (R, K, C)

The C++ kernel walks each kernel slice k on its own thread, each pair once within the batch (o is symmetric in the
pair); Triton walks blocks of rows against tiles of the other side. Backward:
fastgan::minibatch_discrimination_backward, one more walk that recomputes the pair terms (nothing of size B x B is
saved); its own backward (the second order, for gradient penalties on a discriminator with this layer):
fastgan::minibatch_discrimination_backward2, one more walk. The third derivative raises NotImplementedError naming the
op.
"""
from __future__ import annotations

import torch

from .. import _checks
from . import reference as spec
from .registry import declare

__all__ = ["minibatch_discrimination", "OP"]


def _check(m, ref, exclude_self):
    _checks.tensor(m, "m")
    if m.dim() != 3:
        raise ValueError(f"m: expected a 3-d tensor of shape (batch, kernels K, kernel_dim C), got shape "
                         f"{tuple(m.shape)}")
    if ref is not None:
        _checks.like(ref, "reference", m, "m")
        if ref.dim() != 3 or ref.shape[1:] != m.shape[1:]:
            raise ValueError(f"reference: expected shape (R, {m.shape[1]}, {m.shape[2]}) like m, got "
                             f"{tuple(ref.shape)}")
        if exclude_self:
            raise ValueError("exclude_self: applies to the pairs within the batch (reference=None); a reference "
                             "batch has no self pairs")
    if not isinstance(exclude_self, bool):
        raise TypeError(f"exclude_self: expected a bool, got {type(exclude_self).__name__}")


def minibatch_discrimination(m: torch.Tensor, reference: torch.Tensor | None = None, exclude_self: bool = False,
                             impl: str | None = None) -> torch.Tensor:
    """o (B, K) with o[i, k] = sum_j exp(-|m[i, k] - r[j, k]|_1) for m (B, K, C): r = m (the pairs within the batch;
    exclude_self drops the pair (i, i), which contributes exp(0) = 1 otherwise) or the reference batch (R, K, C).
    Differentiable twice in m and reference; memory O((B + R) K C)."""
    _check(m, reference, exclude_self)
    return OP.run(impl, m.device, m, reference, exclude_self)


def _fake_ref_grad(m, ref):
    return torch.empty_like(ref) if ref is not None else m.new_empty([0])


_FAKES = {
    "minibatch_discrimination": lambda m, ref, exclude_self: m.new_empty(m.shape[:2]),
    "minibatch_discrimination_backward":
        lambda grad, m, ref, exclude_self: (torch.empty_like(m), _fake_ref_grad(m, ref)),
    "minibatch_discrimination_backward2": lambda ggm, ggr, grad, m, ref, exclude_self:
        (torch.empty_like(grad), torch.empty_like(m), _fake_ref_grad(m, ref)),
}


def _autograd(ns, ns_name: str) -> None:
    q = f"{ns_name}::minibatch_discrimination"

    def setup(ctx, inputs, output):
        m, ref, exclude_self = inputs
        ctx.exclude_self = exclude_self
        ctx.save_for_backward(m, ref)

    def backward(ctx, g):
        m, ref = ctx.saved_tensors
        need_m, need_r = ctx.needs_input_grad[:2]
        dm, dr = ns.minibatch_discrimination_backward(g, m, ref, ctx.exclude_self)
        return (dm if need_m else None), (dr if need_r and ref is not None else None), None

    torch.library.register_autograd(q, backward, setup_context=setup)

    def setup2(ctx, inputs, output):
        g, m, ref, exclude_self = inputs
        ctx.set_materialize_grads(False)  # None for an output nobody used (the empty dref within the batch)
        ctx.exclude_self = exclude_self
        ctx.save_for_backward(g, m, ref)

    def backward2(ctx, ggm, ggr):
        g, m, ref = ctx.saved_tensors
        ggr = None if ref is None else ggr
        if ggm is None and ggr is None:
            return None, None, None, None
        ggm = torch.zeros_like(m) if ggm is None else ggm
        if ref is not None and ggr is None:
            ggr = torch.zeros_like(ref)
        dg, dm, dr = ns.minibatch_discrimination_backward2(ggm, ggr, g, m, ref, ctx.exclude_self)
        need_g, need_m, need_r = ctx.needs_input_grad[:3]
        return (dg if need_g else None), (dm if need_m else None), (dr if need_r and ref is not None else None), None

    torch.library.register_autograd(q + "_backward", backward2, setup_context=setup2)


def _triton() -> dict:
    # bare names: torch finds the kernels behind a triton_op (for its compile-cache keys) only through them
    from .._triton.minibatch_discrimination import backward as tk_backward
    from .._triton.minibatch_discrimination import backward2 as tk_backward2
    from .._triton.minibatch_discrimination import forward as tk_forward

    def fwd(m, ref, exclude_self):
        return tk_forward(m, ref, exclude_self)

    def bwd(grad, m, ref, exclude_self):
        return tk_backward(grad, m, ref)

    def bwd2(ggm, ggr, grad, m, ref, exclude_self):
        return tk_backward2(ggm, ggr, grad, m, ref)

    return {"minibatch_discrimination": fwd, "minibatch_discrimination_backward": bwd,
            "minibatch_discrimination_backward2": bwd2}


OP = declare("minibatch_discrimination", kernels=("minibatch_discrimination", "minibatch_discrimination_backward",
                                                  "minibatch_discrimination_backward2"),
             backends=("reference", "cpp", "cuda", "triton"), reference=spec.minibatch_discrimination, fakes=_FAKES,
             autograd=_autograd, triton=_triton, last="minibatch_discrimination_backward2")
