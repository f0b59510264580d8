"""Minibatch discrimination (Salimans et al., "Improved techniques for training GANs", 2016) without the
B x B x K x C difference tensor.

    o[i, k] = sum_j exp(-|m[i, k, :] - r[j, k, :]|_1),   m (B, K, C) = f(x) T,  r = m or a reference batch (R, K, C)

The C++ kernel walks each kernel slice k on its own thread, each pair once within the batch (o is symmetric in the
pair); Triton walks blocks of rows against tiles of the other side. Backward: fastgan::minibatch_disc_backward, one
more walk that recomputes the pair terms (nothing of size B x B is saved); its own backward (the second order, for
gradient penalties on a discriminator with this layer): fastgan::minibatch_disc_backward2, one more walk. The third
derivative raises NotImplementedError naming the op.
"""
from __future__ import annotations

from typing import Optional, Tuple  # noqa: F401  (the Triton ops' annotations are resolved at module scope)

import torch

from .. import _checks, _ext
from ..backend import resolve
from . import reference
from ._namespaces import OpNamespaces, end_of_chain

__all__ = ["minibatch_discrimination"]

_IMPLEMENTED = frozenset({"reference", "cpp", "triton", "cuda"})


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
    backend = resolve(impl, m.device, "minibatch_discrimination", _IMPLEMENTED)
    if backend == "reference":
        return reference_impl(m, reference, exclude_self)
    return _ops(backend).minibatch_disc(m, reference, exclude_self)


reference_impl = reference.minibatch_disc


def _register(ns_name: str, with_fake: bool) -> None:
    ns = getattr(torch.ops, ns_name)
    q = f"{ns_name}::minibatch_disc"

    if with_fake:
        @torch.library.register_fake(q)
        def _(m, ref, exclude_self):
            return m.new_empty(m.shape[:2])

        @torch.library.register_fake(q + "_backward")
        def _(grad, m, ref, exclude_self):
            return torch.empty_like(m), (torch.empty_like(ref) if ref is not None else m.new_empty([0]))

        @torch.library.register_fake(q + "_backward2")
        def _(ggm, ggr, grad, m, ref, exclude_self):
            return (torch.empty_like(grad), torch.empty_like(m),
                    torch.empty_like(ref) if ref is not None else m.new_empty([0]))

    def setup(ctx, inputs, output):
        m, ref, exclude_self = inputs
        ctx.exclude_self = exclude_self
        ctx.save_for_backward(m, ref)

    def backward(ctx, g):
        m, ref = ctx.saved_tensors
        need_m, need_r = ctx.needs_input_grad[:2]
        dm, dr = ns.minibatch_disc_backward(g, m, ref, ctx.exclude_self)
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
        dg, dm, dr = ns.minibatch_disc_backward2(ggm, ggr, g, m, ref, ctx.exclude_self)
        need_g, need_m, need_r = ctx.needs_input_grad[:3]
        return (dg if need_g else None), (dm if need_m else None), (dr if need_r and ref is not None else None), None

    torch.library.register_autograd(q + "_backward", backward2, setup_context=setup2)

    end_of_chain(q + "_backward2", "fastgan.minibatch_discrimination: third-order derivatives are not implemented "
                 f"({q}_backward2 has no backward); use impl='reference' if you need them")


def _define_triton_ops() -> None:
    from torch.library import triton_op

    # bare names: torch finds the kernels behind a triton_op (for its compile-cache keys) only through them
    from .._triton.minibatch_disc import backward as tk_backward
    from .._triton.minibatch_disc import backward2 as tk_backward2
    from .._triton.minibatch_disc import forward as tk_forward

    @triton_op("fastgan_triton::minibatch_disc", mutates_args=())
    def _fwd(m: torch.Tensor, ref: Optional[torch.Tensor], exclude_self: bool) -> torch.Tensor:
        return tk_forward(m, ref, exclude_self)

    @triton_op("fastgan_triton::minibatch_disc_backward", mutates_args=())
    def _bwd(grad: torch.Tensor, m: torch.Tensor, ref: Optional[torch.Tensor],
             exclude_self: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        return tk_backward(grad, m, ref)

    @triton_op("fastgan_triton::minibatch_disc_backward2", mutates_args=())
    def _bwd2(ggm: torch.Tensor, ggr: Optional[torch.Tensor], grad: torch.Tensor, m: torch.Tensor,
              ref: Optional[torch.Tensor], exclude_self: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tk_backward2(ggm, ggr, grad, m, ref)


_ops = OpNamespaces(_define_triton_ops, _register)


def _init() -> None:
    if _ext.load() is not None:
        _register("fastgan", with_fake=True)


_init()
