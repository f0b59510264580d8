"""The Triton math shared by the kernel files (mirroring csrc/include/fastgan/activations.h and vec_math.h): the
activation table's ids and constants, elementary functions (libdevice on the GPU; under the interpreter, which has no
libdevice, fp64 exp / log with the classic accurate formulas for expm1, log1p and tanh), each activation and its
first and second derivatives (from x or from y), the clamp, bias_act's element formulas, and the compute-type /
output-cast helpers (fp32 -> bf16 rounded to nearest even by hand under the interpreter, whose own cast truncates)."""
from __future__ import annotations

import triton
import triton.language as tl
from triton.language.extra import libdevice

from ..activations import ACTIVATIONS, SELU_ALPHA, SELU_LAMBDA

# Decided when the kernels below are decorated, exactly as triton.jit decides whether to interpret them.
_INTERPRET = tl.constexpr(bool(triton.knobs.runtime.interpret))

_LINEAR = tl.constexpr(ACTIVATIONS["linear"].id)
_RELU = tl.constexpr(ACTIVATIONS["relu"].id)
_LRELU = tl.constexpr(ACTIVATIONS["lrelu"].id)
_TANH = tl.constexpr(ACTIVATIONS["tanh"].id)
_SIGMOID = tl.constexpr(ACTIVATIONS["sigmoid"].id)
_ELU = tl.constexpr(ACTIVATIONS["elu"].id)
_SELU = tl.constexpr(ACTIVATIONS["selu"].id)
_SOFTPLUS = tl.constexpr(ACTIVATIONS["softplus"].id)
_SWISH = tl.constexpr(ACTIVATIONS["swish"].id)

_SELU_L = tl.constexpr(SELU_LAMBDA)
_SELU_LA = tl.constexpr(SELU_LAMBDA * SELU_ALPHA)  # the double product, rounded to the compute type (as C++)



# ---- elementary functions: libdevice on the GPU; under the interpreter (no libdevice) exp and log in fp64, with the
# classic accurate formulas for expm1, log1p and tanh, rounded to the compute type (fp32 results then match a
# correctly rounded libm, so the CPU op can be compared tightly) ----
@triton.jit
def _exp(v):
    if _INTERPRET:
        r = tl.exp(v.to(tl.float64)).to(v.dtype)
    else:
        r = libdevice.exp(v)
    return r


@triton.jit
def _log(v):
    if _INTERPRET:
        r = tl.log(v.to(tl.float64)).to(v.dtype)
    else:
        r = libdevice.log(v)
    return r


@triton.jit
def _expm1_f64(w):
    # Kahan: (u - 1) * w / log(u) with u = e^w is accurate to a few ulp, also for tiny |w|.
    u = tl.exp(w)
    um1 = u - 1.0
    plain = (u != 1.0) & (um1 != -1.0) & (u != float("inf"))
    r = um1 * w / tl.log(tl.where(plain, u, 2.0))  # (the guard keeps numpy quiet on discarded lanes)
    return tl.where(plain, r, tl.where(u == 1.0, w, tl.where(um1 == -1.0, -1.0, u)))


@triton.jit
def _expm1(v):
    if _INTERPRET:
        r = _expm1_f64(v.to(tl.float64)).to(v.dtype)
    else:
        r = libdevice.expm1(v)
    return r


@triton.jit
def _log1p(v):
    if _INTERPRET:
        # Goldberg: log(u) * w / (u - 1) with u = 1 + w (used here on w in (0, 1] only).
        w = v.to(tl.float64)
        u = 1.0 + w
        d = u - 1.0
        r = tl.where(d == 0.0, w, tl.log(u) * (w / tl.where(d == 0.0, 1.0, d))).to(v.dtype)
    else:
        r = libdevice.log1p(v)
    return r


@triton.jit
def _tanh(v):
    if _INTERPRET:
        w = v.to(tl.float64)
        t = _expm1_f64(-2.0 * tl.where(w < 0, -w, w))  # in [-1, 0]
        r = -t / (2.0 + t)
        r = tl.where(w < 0, -r, r).to(v.dtype)
    else:
        r = libdevice.tanh(v)
    return r


@triton.jit
def _sigmoid(s):
    # Numerically stable logistic sigmoid (fg_sigmoid).
    e = _exp(-tl.where(s < 0, -s, s))  # exp(-|s|) in (0, 1]
    r = 1.0 / (1.0 + e)
    return tl.where(s >= 0, r, e * r)


@triton.jit
def _nonpos(s):
    # min(s, 0) keeping NaN: the argument of the exponentials of elu/selu, whose results are used for s <= 0 only
    # (tl.where evaluates both sides; this keeps the discarded side finite).
    return tl.where(s > 0, 0.0, s)


# ---- the activation table (activations.h) ----
@triton.jit
def _act(s, alpha, ACT: tl.constexpr):
    """a = f(s)."""
    if ACT == _LINEAR:
        a = s
    elif ACT == _RELU:
        a = tl.where(s < 0, 0.0, s)  # NaN passes through, as torch.relu's
    elif ACT == _LRELU:
        a = tl.where(s > 0, s, alpha * s)
    elif ACT == _TANH:
        a = _tanh(s)
    elif ACT == _SIGMOID:
        a = _sigmoid(s)
    elif ACT == _ELU:
        a = tl.where(s > 0, s, alpha * _expm1(_nonpos(s)))
    elif ACT == _SELU:
        a = tl.where(s > 0, _SELU_L * s, _SELU_LA * _expm1(_nonpos(s)))
    elif ACT == _SOFTPLUS:
        # log(1 + e^s) = max(s, 0) + log1p(e^-|s|)
        a = tl.where(s > 0, s, 0.0) + _log1p(_exp(-tl.where(s < 0, -s, s)))
    else:  # swish
        a = s * _sigmoid(s)
    return a


@triton.jit
def _d1_x(s, a, alpha, ACT: tl.constexpr):
    """f'(s), given s and a = f(s)."""
    if ACT == _LINEAR:
        d = tl.full(s.shape, 1.0, s.dtype)
    elif ACT == _RELU:
        d = tl.where(s <= 0, 0.0, 1.0).to(s.dtype)  # at NaN: 1 (threshold_backward)
    elif ACT == _LRELU:
        d = tl.where(s > 0, 1.0, alpha)
    elif ACT == _TANH:
        d = 1.0 - a * a
    elif ACT == _SIGMOID:
        d = a * (1.0 - a)
    elif ACT == _ELU:
        d = tl.where(s > 0, 1.0, tl.where(s <= 0, alpha * _exp(_nonpos(s)), 0.0))  # NaN: 0, the reference's
    elif ACT == _SELU:
        d = tl.where(s > 0, _SELU_L, tl.where(s <= 0, _SELU_LA * _exp(_nonpos(s)), 0.0))
    elif ACT == _SOFTPLUS:
        d = _sigmoid(s)
    else:  # swish
        sg = _sigmoid(s)
        d = sg * (1.0 + s * (1.0 - sg))
    return d


@triton.jit
def _d2_x(s, a, alpha, ACT: tl.constexpr):
    """f''(s), given s and a = f(s)."""
    if ACT == _TANH:
        d = -2.0 * a * (1.0 - a * a)
    elif ACT == _SIGMOID:
        d = a * (1.0 - a) * (1.0 - 2.0 * a)
    elif ACT == _ELU:
        d = tl.where(s > 0, 0.0, alpha * _exp(_nonpos(s)))
    elif ACT == _SELU:
        d = tl.where(s > 0, 0.0, _SELU_LA * _exp(_nonpos(s)))
    elif ACT == _SOFTPLUS:
        sg = _sigmoid(s)
        d = sg * (1.0 - sg)
    elif ACT == _SWISH:
        sg = _sigmoid(s)
        d = sg * (1.0 - sg) * (2.0 + s * (1.0 - 2.0 * sg))
    else:  # linear, relu, lrelu
        d = tl.zeros(s.shape, s.dtype)
    return d


@triton.jit
def _d1_y(a, alpha, ACT: tl.constexpr):
    """f'(s) from a = f(s) alone (y_ok activations, alpha >= 0)."""
    if ACT == _LINEAR:
        d = tl.full(a.shape, 1.0, a.dtype)
    elif ACT == _RELU:
        d = tl.where(a <= 0, 0.0, 1.0).to(a.dtype)
    elif ACT == _LRELU:
        d = tl.where(a > 0, 1.0, alpha)
    elif ACT == _TANH:
        d = 1.0 - a * a
    elif ACT == _SIGMOID:
        d = a * (1.0 - a)
    elif ACT == _ELU:
        d = tl.where(a > 0, 1.0, tl.where(a <= 0, a + alpha, 0.0))
    elif ACT == _SELU:
        d = tl.where(a > 0, _SELU_L, tl.where(a <= 0, a + _SELU_LA, 0.0))
    elif ACT == _SOFTPLUS:
        d = -_expm1(-a)  # sigmoid(s) = 1 - e^-a
    else:  # swish: not y_ok, never used on the y path
        d = tl.zeros(a.shape, a.dtype)
    return d


@triton.jit
def _d2_y(a, alpha, ACT: tl.constexpr):
    """d f'(s) / d a from a alone (y_ok activations, alpha >= 0)."""
    if ACT == _TANH:
        d = -2.0 * a
    elif ACT == _SIGMOID:
        d = 1.0 - 2.0 * a
    elif ACT == _ELU or ACT == _SELU:
        d = tl.where(a > 0, 0.0, 1.0).to(a.dtype)
    elif ACT == _SOFTPLUS:
        d = _exp(-a)
    else:  # linear, relu, lrelu, swish
        d = tl.zeros(a.shape, a.dtype)
    return d


# ---- clamp rules (NaN propagates through the clamp; a NaN never passes the gradient mask) ----
@triton.jit
def _apply_clamp(v, clamp):
    return tl.where(clamp < 0, v, tl.where(v > clamp, clamp, tl.where(v < -clamp, -clamp, v)))


@triton.jit
def _clamp_pass(v, clamp):
    # strictly inside (-clamp, clamp): the same answer from the unclamped value and from the clamped output
    return (clamp < 0) | ((v > -clamp) & (v < clamp))


@triton.jit
def _fwd_elem(x, bv, alpha, gain, clamp, ACT: tl.constexpr):
    return _apply_clamp(_act(x + bv, alpha, ACT) * gain, clamp)


@triton.jit
def _bwd_elem(g, ref, bv, alpha, gain, clamp, ACT: tl.constexpr, YREF: tl.constexpr):
    if YREF:
        a = ref / gain
        r = tl.where(_clamp_pass(ref, clamp), g * gain * _d1_y(a, alpha, ACT), 0.0)
    else:
        s = ref + bv
        a = _act(s, alpha, ACT)
        r = tl.where(_clamp_pass(a * gain, clamp), g * gain * _d1_x(s, a, alpha, ACT), 0.0)
    return r


@triton.jit
def _bwd2_elem(gg, g, ref, bv, alpha, gain, clamp, ACT: tl.constexpr, YREF: tl.constexpr):
    if YREF:
        a = ref / gain
        r = tl.where(_clamp_pass(ref, clamp), gg * g * _d2_y(a, alpha, ACT), 0.0)
    else:
        s = ref + bv
        a = _act(s, alpha, ACT)
        r = tl.where(_clamp_pass(a * gain, clamp), gg * g * gain * _d2_x(s, a, alpha, ACT), 0.0)
    return r


@triton.jit
def _compute_type(v):
    if v.dtype == tl.float64:
        r = v
    else:
        r = v.to(tl.float32)
    return r


@triton.jit
def _scalar(v, like):
    """A host float (fp64 on the GPU, a Python float under the interpreter) rounded to like's dtype, as a [1] block."""
    return (tl.zeros([1], like.dtype) + v).to(like.dtype)


@triton.jit
def _to_out(v, DT: tl.constexpr):
    r = v.to(DT)
    if _INTERPRET:
        if DT == tl.bfloat16:
            # The interpreter truncates fp32 -> bf16: round to nearest even like the GPU and c10::BFloat16.
            bits = v.to(tl.uint32, bitcast=True)
            rnd = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
            rnd = tl.where(v != v, 0x7FC0, rnd)
            r = rnd.to(tl.uint16).to(tl.bfloat16, bitcast=True)
    return r
