"""The BiGAN joint discriminator layer act(W x + U z + b) as one op (Donahue et al. 2017, section 4).

    y = act(x @ weight.T + z @ z_weight.T + bias) * gain,   act in {linear, relu, lrelu}

Forward: C++ on CPU and CUDA (both GEMMs accumulate into one output buffer, then one in-place bias + activation
pass); Triton (torch.ops.fastgan_triton.joint_linear: one tiled matmul over both K ranges into one accumulator with
the bias + activation epilogue). Backward, the same structure on every backend: dA = gy * act'(y) * gain with the
fused bias_act_backward kernel of the backend (which also reduces db), then the four matrix products (torch.mm for
the C++ backends, whose autograd is C++: csrc/autograd.cpp; for Triton the joint kernel itself with act = linear).
It is composed of registered ops that have their own autograd, so second derivatives (gradient penalties through
stacks of these layers) are exact; these activations have a zero second derivative, so the backward's own backward
is a masked product computed from the saved output's sign: no pre-activation is saved.
"""
from __future__ import annotations

import functools

import torch

from .. import _checks
from ..activations import ACTIVATIONS, get_act
from . import reference
from .bias_act import OP as ACT_OP
from .registry import declare
from .weight_grads import weight_grads_skipped

__all__ = ["joint_linear", "check_act", "OP"]

_ACTS = ("linear", "relu", "lrelu")


def check_act(act, alpha, gain) -> tuple[float, float]:
    """The activations whose derivative is exact from the output in every dtype (only its sign matters)."""
    get_act(act)
    if act not in _ACTS:
        raise ValueError(f"act: joint_linear supports {', '.join(map(repr, _ACTS))}, got {act!r} (use a linear "
                         "layer followed by fastgan.bias_act for others)")
    alpha = _checks.finite(alpha, "alpha")
    if alpha < 0:
        raise ValueError(f"alpha: expected a finite number >= 0, got {alpha}")
    gain = _checks.finite(gain, "gain")
    if gain == 0:
        raise ValueError("gain: expected a finite non-zero number, got 0.0")
    return alpha, gain


_CPP_BACKENDS = ("cpp", "cuda")


@functools.lru_cache(maxsize=64)
def _check_act_memo(act: str, alpha, gain) -> tuple[float, float]:
    return check_act(act, alpha, gain)


def _checked_act(act, alpha, gain) -> tuple[float, float]:
    """check_act, memoised for the plain str / float / int arguments a layer passes on every call."""
    if _checks.plain_scalars(act, alpha, gain):
        return _check_act_memo(act, alpha, gain)
    return check_act(act, alpha, gain)


def _check_args(x, z, weight, z_weight, bias, act, alpha, gain, cast=None):
    alpha, gain = check_act(act, alpha, gain)
    _checks.tensor(x, "x")
    named = ((z, "z"), (weight, "weight"), (z_weight, "z_weight")) + (((bias, "bias"),) if bias is not None else ())
    for t, name in named:
        _checks.like(t, name, x, "x", cast=cast)
    for t, name, shape in ((x, "x", "(N, in_features)"), (z, "z", "(N, z_features)"),
                           (weight, "weight", "(out_features, in_features)"),
                           (z_weight, "z_weight", "(out_features, z_features)")):
        if t.dim() != 2:
            raise ValueError(f"{name}: expected a 2-d tensor of shape {shape}, got shape {tuple(t.shape)}")
    if z.shape[0] != x.shape[0]:
        raise ValueError(f"z: expected {x.shape[0]} rows like x, got shape {tuple(z.shape)}")
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight: expected shape (out_features, {x.shape[1]}) for x of shape {tuple(x.shape)}, "
                         f"got {tuple(weight.shape)}")
    if z_weight.shape != (weight.shape[0], z.shape[1]):
        raise ValueError(f"z_weight: expected shape ({weight.shape[0]}, {z.shape[1]}), got {tuple(z_weight.shape)}")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[0]):
        raise ValueError(f"bias: expected shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    return alpha, gain


def joint_linear(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, z_weight: torch.Tensor,
                 bias: torch.Tensor | None = None, act: str = "lrelu", alpha: float = 0.2, gain: float = 1.0,
                 impl: str | None = None) -> torch.Tensor:
    """act(x @ weight.T + z @ z_weight.T + bias) * gain for x (N, in), z (N, zdim), weight (out, in),
    z_weight (out, zdim), bias (out,) -> (N, out). act: 'linear', 'relu' or 'lrelu' (alpha >= 0; gain != 0).

    Differentiable twice on every backend; fp64, fp32, fp16, bf16 (half: GEMMs accumulate in fp32, the epilogue
    computes in fp32). impl: 'auto' | 'reference' | 'cpp' | 'cuda' | 'triton'.
    """
    _checks.tensor(x, "x")
    backend = OP.resolve(impl, x.device)
    if backend in _CPP_BACKENDS and _checks.on_device(x.device, z, weight, z_weight, bias):
        # The C++ op checks every tensor itself, with these messages, after its Autocast kernel's casts
        # (csrc/include/fastgan/joint_linear.h): checking them here too cost more than a small layer's GEMM (issue 29).
        # Tensors on another device are refused here (the dispatcher would take a meta tensor's kernel).
        alpha, gain = _checked_act(act, alpha, gain)
        return OP.call(backend, x, z, weight, z_weight, bias, act, alpha, gain)
    # autocast: a matrix product, run in the autocast dtype like torch.mm (fp32 math inside). The C++ ops cast in
    # their Autocast kernels (csrc/autocast.cpp) through autocast's cache, so a weight is cast once per autocast
    # region however often D runs in it; the Triton ops and the reference are cast here.
    ac = _checks.autocast_dtype(x)
    if ac is not None and backend in ("triton", "reference"):
        x, z, weight, z_weight = (t.to(ac) if isinstance(t, torch.Tensor) and t.is_floating_point() else t
                                  for t in (x, z, weight, z_weight))
        bias = bias.to(ac) if isinstance(bias, torch.Tensor) and bias.is_floating_point() else bias
        ac = None
    alpha, gain = _check_args(x, z, weight, z_weight, bias, act, alpha, gain, cast=ac)
    return OP.call(backend, x, z, weight, z_weight, bias, act, alpha, gain)


def _autograd(ns, ns_name: str) -> None:
    """The Triton op's autograd (the C++ op's is csrc/autograd.cpp, the same structure with torch.mm)."""
    act_ns = ACT_OP.namespace("triton")  # bias_act_backward of the backend

    def mm(a, b):  # a @ b with the joint kernel (act linear, no z range): differentiable through this op again
        return ns.joint_linear(a, a.new_empty((a.shape[0], 0)), b.t(), b.new_empty((b.shape[1], 0)), None,
                               "linear", 0.0, 1.0)

    def setup(ctx, inputs, output):
        x, z, weight, z_weight, bias, act, alpha, gain = inputs
        ctx.args = (act, alpha, gain)
        ctx.save_for_backward(x, z, weight, z_weight, output)

    def backward(ctx, gy):
        act, alpha, gain = ctx.args
        x, z, weight, z_weight, y = ctx.saved_tensors
        nx, nz, nw, nu, nb = ctx.needs_input_grad[:5]
        if weight_grads_skipped():  # inside a gradient penalty's inner gradient: only dx, dz are wanted
            nw = nu = nb = False
        if act == "linear":
            da = gy if gain == 1.0 else gy * gain
            db = da.sum(0) if nb else None
        else:  # dA = gy * act'(y) * gain, db = sum_n dA in the same pass
            da, db = act_ns.bias_act_backward(gy, y, None, 1, act, alpha, gain, -1.0, True, nb)
        return (mm(da, weight) if nx else None, mm(da, z_weight) if nz else None, mm(da.t(), x) if nw else None,
                mm(da.t(), z) if nu else None, db if nb else None, None, None, None)

    torch.library.register_autograd(f"{ns_name}::joint_linear", backward, setup_context=setup)


def _triton() -> dict:
    from .._triton.joint_linear import matmul_act  # a bare name: torch finds the kernel behind a triton_op by it

    def fwd(x, z, weight, z_weight, bias, act, alpha, gain):
        return matmul_act(x, weight.t(), z, z_weight.t(), bias, ACTIVATIONS[act].id, alpha, gain)

    return {"joint_linear": fwd}


OP = declare("joint_linear", kernels=("joint_linear",), backends=("reference", "cpp", "cuda", "triton"),
             reference=reference.joint_linear,
             fakes={"joint_linear": lambda x, z, weight, z_weight, bias, act, alpha, gain:
                    x.new_empty((x.shape[0], weight.shape[0]))},
             autograd=_autograd, triton=_triton, cpp_autograd=True)
