"""Fused bias + activation + gain + clamp: the public function, fake kernels and autograd of the op on every backend.

The C++ ops (torch.ops.fastgan.*, CPU and CUDA kernels) and the Triton ops (torch.ops.fastgan_triton.*) share one
autograd structure: `_autograd` registers it for the Triton ops, csrc/autograd.cpp states it in C++ for the C++ ops
(Python's per-node overhead cost more than these kernels, issue 29):

    bias_act            forward; saves y (activations whose derivative is a function of the output, fp32/fp64)
                        or x (otherwise, and always for fp16/bf16 so the gradient is as exact as the forward)
    bias_act_backward   (dx, db); its own backward uses bias_act_backward for d(grad) and bias_act_backward2 for
                        d(ref), so second derivatives (gradient penalties) are exact
    bias_act_backward2  the second-derivative kernel; third order raises NotImplementedError
"""
from __future__ import annotations

import functools

import torch

from .. import _checks
from ..activations import ACTIVATIONS, get_act
from . import reference
from .registry import declare
from .weight_grads import weight_grads_skipped

__all__ = ["bias_act", "output_slope_ops", "OP"]

_EXACT_Y = (torch.float32, torch.float64)


def _act_scalars(act, alpha, gain, clamp) -> tuple[str, float, float, float]:
    """(act, alpha, gain, clamp) as the op takes them: the activation's defaults filled in, checked."""
    spec = get_act(act)
    alpha = spec.default_alpha if alpha is None else _checks.finite(alpha, "alpha")
    gain = spec.default_gain if gain is None else _checks.finite(gain, "gain")
    return spec.name, alpha, gain, _checks.clamp(clamp)


_act_scalars_memo = functools.lru_cache(maxsize=64)(_act_scalars)


def _resolve_args(x, b, dim, act, alpha, gain, clamp):
    get_act(act)
    _checks.tensor(x, "x")
    if b is not None:
        _checks.like(b, "b", x, "x")
        dim = _checks.dim(dim, x)
        if b.dim() != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"b: expected a vector of length x.shape[{dim}] = {x.shape[dim]}, "
                             f"got shape {tuple(b.shape)}")
    elif isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim: expected an int, got {type(dim).__name__}")
    return (dim, *_act_scalars(act, alpha, gain, clamp))


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None, clamp=None,
             impl: str | None = None) -> torch.Tensor:
    """y = clamp(act(x + b) * gain, -clamp, clamp), b broadcast along `dim`, in one pass over memory.

    act: linear, relu, lrelu, tanh, sigmoid, elu, selu, softplus, swish; alpha and gain default to the activation's
    (lrelu: 0.2 and sqrt 2); clamp None or 'none' for no clamp, else a number >= 0 (its gradient is zero where the
    clamp was active). Differentiable twice on every backend; fp64, fp32, fp16 and bf16 (fp32 math inside).
    impl: 'auto' | 'reference' | 'cpp' | 'triton' | 'cuda' (default: fastgan.current_backend()).
    """
    _checks.tensor(x, "x")
    if _checks.autocast_dtype(x) is not None and isinstance(b, torch.Tensor) and b.is_floating_point():
        b = b.to(x.dtype)  # autocast: a pointwise op follows its input (fp32 math inside); the fp32 bias is cast
    backend = OP.resolve(impl, x.device)
    if backend in ("cpp", "cuda") and type(dim) is int and _checks.on_device(x.device, b) \
            and _checks.plain_scalars(act, alpha, gain, clamp):
        # The C++ op checks the tensors, dim and the numbers itself, with these messages (csrc/include/fastgan/
        # checks.h); the activation's defaults are resolved once per argument tuple (issue 29: per-call overhead).
        return OP.call(backend, x, b, dim, *_act_scalars_memo(act, alpha, gain, clamp))
    return OP.call(backend, x, b, *_resolve_args(x, b, dim, act, alpha, gain, clamp))


def _bias_shape(ndim: int, dim: int) -> list[int]:
    shape = [1] * ndim
    shape[dim] = -1
    return shape


def _sum_but(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.sum(dim=[d for d in range(t.dim()) if d != dim]) if t.dim() > 1 else t.clone()


def _ref_is_y(act: str, alpha: float, gain: float, dtype: torch.dtype) -> bool:
    return ACTIVATIONS[act].y_ok and alpha >= 0 and gain != 0 and dtype in _EXACT_Y


def _fake_bwd(ref, bias_grad, dim):
    c = ref.shape[dim] if bias_grad else 0
    return torch.empty_like(ref), ref.new_empty([c])


_FAKES = {
    "bias_act": lambda x, b, dim, act, alpha, gain, clamp: torch.empty_like(x),
    "bias_act_backward": lambda grad, ref, b, dim, act, alpha, gain, clamp, ref_is_y, bias_grad:
        _fake_bwd(ref, bias_grad, dim),
    "bias_act_backward2": lambda grad_grad, grad, ref, b, dim, act, alpha, gain, clamp, ref_is_y, bias_grad:
        _fake_bwd(ref, bias_grad, dim),
}


def _autograd(ns, ns_name: str) -> None:
    q = f"{ns_name}::"

    # ---- forward ----
    def fwd_setup(ctx, inputs, output):
        x, b, dim, act, alpha, gain, clamp = inputs
        ctx.args = (dim, act, alpha, gain, clamp)
        ctx.trivial = act == "linear" and clamp < 0
        ctx.ref_is_y = _ref_is_y(act, alpha, gain, x.dtype)
        if ctx.trivial:
            ctx.save_for_backward()
        elif ctx.ref_is_y:
            ctx.save_for_backward(output)
        else:
            ctx.save_for_backward(x, b)

    def fwd_backward(ctx, gy):
        dim, act, alpha, gain, clamp = ctx.args
        need_x, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = need_b and not weight_grads_skipped()  # a penalty's inner gradient wants dx only
        if ctx.trivial:
            dx = gy if gain == 1.0 else gy * gain
            db = _sum_but(dx, dim) if need_b else None
        else:
            ref, b = (ctx.saved_tensors[0], None) if ctx.ref_is_y else ctx.saved_tensors
            dx, db = ns.bias_act_backward(gy, ref, b, dim, act, alpha, gain, clamp, ctx.ref_is_y, need_b)
        return (dx if need_x else None), (db if need_b else None), None, None, None, None, None

    torch.library.register_autograd(q + "bias_act", fwd_backward, setup_context=fwd_setup)

    # ---- first derivative ----
    def bwd_setup(ctx, inputs, output):
        grad, ref, b, dim, act, alpha, gain, clamp, ref_is_y, bias_grad = inputs
        ctx.args = (dim, act, alpha, gain, clamp, ref_is_y, bias_grad)
        ctx.save_for_backward(grad, ref, b)

    def bwd_backward(ctx, gdx, gdb):
        dim, act, alpha, gain, clamp, ref_is_y, bias_grad = ctx.args
        grad, ref, b = ctx.saved_tensors
        dd = gdx
        need_grad, need_ref, need_b = ctx.needs_input_grad[:3]
        dtype = ref.dtype
        if bias_grad and gdb is not None:  # db = sum(dx): its gradient is broadcast back onto dx's
            gb = gdb.reshape(_bias_shape(ref.dim(), dim)).expand_as(ref)
            if dd is None:
                dd = gb
            elif dtype in _EXACT_Y:
                dd = dd + gb
            else:  # fp16/bf16: adding in half precision would round; run this step in fp32 instead
                dd = dd.float() + gb.float()
                grad, ref, b = grad.float(), ref.float(), None if b is None else b.float()
        if dd is None:
            return (None,) * 10
        g_grad = g_ref = g_b = None
        if need_grad:
            g_grad = ns.bias_act_backward(dd, ref, b, dim, act, alpha, gain, clamp, ref_is_y, False)[0].to(dtype)
        if (need_ref or need_b) and ACTIVATIONS[act].has_2nd:
            want_b = need_b and not ref_is_y and b is not None
            r, rb = ns.bias_act_backward2(dd, grad, ref, b, dim, act, alpha, gain, clamp, ref_is_y, want_b)
            g_ref = r.to(dtype) if need_ref else None
            g_b = rb.to(dtype) if want_b else None
        return g_grad, g_ref, g_b, None, None, None, None, None, None, None

    torch.library.register_autograd(q + "bias_act_backward", bwd_backward, setup_context=bwd_setup)


def _triton() -> dict:
    # bare names: torch finds the kernels behind a triton_op (for its compile-cache keys) only through them
    from .._triton.bias_act import backward as tk_backward
    from .._triton.bias_act import forward as tk_forward

    def fwd(x, b, dim, act, alpha, gain, clamp):
        return tk_forward(x, b, dim, ACTIVATIONS[act].id, alpha, gain, clamp)

    def bwd(grad, ref, b, dim, act, alpha, gain, clamp, ref_is_y, bias_grad):
        return tk_backward(None, grad, ref, b, dim, ACTIVATIONS[act].id, alpha, gain, clamp, ref_is_y, bias_grad)

    def bwd2(grad_grad, grad, ref, b, dim, act, alpha, gain, clamp, ref_is_y, bias_grad):
        return tk_backward(grad_grad, grad, ref, b, dim, ACTIVATIONS[act].id, alpha, gain, clamp, ref_is_y, bias_grad)

    return {"bias_act": fwd, "bias_act_backward": bwd, "bias_act_backward2": bwd2}


OP = declare("bias_act", kernels=("bias_act", "bias_act_backward", "bias_act_backward2"),
             backends=("reference", "cpp", "cuda", "triton"), reference=reference.bias_act, fakes=_FAKES,
             autograd=_autograd, triton=_triton, last="bias_act_backward2", cpp_autograd=True)


def output_slope_ops(impl: str | None, device, acts, dtype: torch.dtype):
    """For fused passes that apply bias_act and its output-based slope themselves (the fused MLP-critic penalty): the
    namespace of the raw ops (`bias_act`, `bias_act_backward`, no autograd of their own) that `impl` resolves to on
    `device`, when every (act, alpha, gain) of `acts` has its derivative exactly from the output in `dtype`; else None
    (the reference backend, or a slope that needs the input: compose torch ops instead)."""
    backend = OP.resolve(impl, device)
    exact = all(_ref_is_y(act, alpha, gain, dtype) for act, alpha, gain in acts)
    return OP.namespace(backend) if backend != "reference" and exact else None
