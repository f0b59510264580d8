"""Triton kernels of bias_act (forward, first and second derivative) and their launch helpers.

The element formulas mirror csrc/include/fastgan/activations.h one for one (act_fwd, act_d1_x, act_d1_y, act_d2_x,
act_d2_y, clamp_pass and bias_act_{fwd,bwd,bwd2}_elem); the memory layout is that of
csrc/include/fastgan/bias_act.h: a dense tensor seen in memory order as [O][C][S] (the element at memory offset i has
channel (i // S) % C). One kernel, specialised on ACT / MODE / YREF / HAS_BIAS, walks that view in tiles
[OB][CB][SB], so each element's channel comes from its tile index, and with BIAS_SUM also writes per-channel partial
sums of the (unrounded) outputs, which `backward` adds up into the bias gradient. Math runs in fp32 (fp64 for fp64
tensors); alpha, gain and clamp travel as fp64 and are rounded to the compute type in the kernel, as in C++.

`forward` and `backward` run inside torch.library.triton_op (fastgan/ops/bias_act.py): only torch tensor ops and
launches through wrap_triton, so they also trace with FakeTensors (torch.compile); no autograd here. Every launch runs
under the device guard of its tensors (`device_guard`: a no-op for CPU tensors).

GPU shape (DESIGN.md, "GPU shape"): one function, `config`, decides the tiles and the grid for the launch helpers and
for `static_variants` (the static sm_90 report, bench/static_report.py), so the report cannot drift from the launches.
A program handles BLOCK elements (fewer for small tensors, so that at least 2 x 132 programs exist when the tensor
allows it). With BIAS_SUM the grid is capped at one wave of the 132-SM H100 (132 x 16 resident programs of 4 warps):
each program then walks its o-tiles po = p, p + PO, p + 2 PO, ... in that fixed order, summing into registers, and
writes ONE row of partial sums, so the partials are at most PO x NS x C <= programs x C (not one row per tile: for the
(N, C) layout of an MLP layer that was as large as the output). `backward` adds the rows up with torch.sum (a fixed
reduction order): deterministic, no atomics.

Under the interpreter (TRITON_INTERPRET=1, CPU tensors) libdevice does not exist: exp, expm1, log1p and tanh are then
computed in fp64 from exp and log with the classic accurate formulas, and fp32 -> bf16 stores are rounded to nearest
even by hand (the interpreter's own cast truncates). torch.compile cannot trace the ops there (wrap_triton hands back
the raw interpreted kernel, which FakeTensors cannot run).
"""
from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton
from triton.language.extra import libdevice

from ..activations import ACTIVATIONS, SELU_ALPHA, SELU_LAMBDA

__all__ = ["forward", "backward", "config", "static_variants", "device_guard", "launch_spec", "BLOCK", "SM_COUNT"]

BLOCK = 1024  # elements per program (at most)
MIN_BLOCK = 256  # ... and at least, when a small tensor would otherwise give fewer than 2 x SM_COUNT programs
NUM_WARPS = 4
SM_COUNT = 132  # the H100 SXM the grids are shaped for (DESIGN.md, "GPU shape")
MAX_THREADS_PER_SM = 2048


def wave_programs(num_warps: int) -> int:
    """Programs of num_warps warps resident on all SMs at once by the thread limit alone (one wave at best)."""
    return SM_COUNT * (MAX_THREADS_PER_SM // (32 * num_warps))


def device_guard(t: torch.Tensor):
    """The device guard for a launch on t's device: torch.cuda.device for CUDA tensors (also FakeTensors on a CUDA
    device, under triton_op tracing / torch.compile / opcheck), a no-op for CPU tensors (the interpreter)."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


_PTR_TYPES = {torch.float32: "*fp32", torch.float64: "*fp64", torch.float16: "*fp16", torch.bfloat16: "*bf16"}


def launch_spec(kernel, values: dict, constexprs: dict) -> tuple[dict, dict, dict]:
    """(signature, constexprs, attrs) for triton.compile(ASTSource(...)) of the launch of `kernel` with these runtime
    arguments, specialised as Triton's JIT specialises a real launch: `values` maps every non-constexpr argument to
    a torch dtype (a tensor of that dtype, assumed 16-byte aligned like a fresh allocation: divisibility 16), a Python
    int (== 1: a constexpr; else i32 when it fits, i64 otherwise, divisibility 16 when divisible by 16) or a Python
    float (the annotated type, fp32 when unannotated). Used by static_variants, so the static report compiles what
    the benchmark shape would run."""
    sig, consts, attrs = {}, dict(constexprs), {}
    for i, (name, is_constexpr, annotated) in enumerate(_params(kernel)):
        if is_constexpr:
            sig[name] = "constexpr"
            continue
        v = values[name]
        if isinstance(v, torch.dtype):
            sig[name] = _PTR_TYPES[v]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(v, bool):
            sig[name] = "i1"
        elif isinstance(v, int):
            if v == 1:
                sig[name] = "constexpr"
                consts[name] = 1
                continue
            sig[name] = "i32" if -2**31 <= v < 2**31 else "i64"
            if v % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            sig[name] = annotated or "fp32"
    return sig, consts, attrs


def _params(kernel) -> list[tuple[str, bool, str]]:
    """(name, is constexpr, annotated scalar type) of each argument of a @triton.jit kernel; also of its
    interpreted form (TRITON_INTERPRET=1: a plain function whose annotations are strings)."""
    if hasattr(kernel, "params"):
        return [(p.name, bool(p.is_constexpr), p.annotation_type or "") for p in kernel.params]
    import inspect

    out = []
    for name, p in inspect.signature(kernel.fn).parameters.items():
        ann = str(p.annotation)
        out.append((name, "constexpr" in ann, "fp64" if "float64" in ann else "fp32" if "float32" in ann else ""))
    return out

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

_HAS_2ND = {spec.id: spec.has_2nd for spec in ACTIVATIONS.values()}  # host side: f'' != 0

_FWD = tl.constexpr(0)
_BWD = tl.constexpr(1)
_BWD2 = tl.constexpr(2)


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
        a = tl.where(s > 0, s, 0.0)
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
        d = tl.where(s > 0, 1.0, 0.0).to(s.dtype)
    elif ACT == _LRELU:
        d = tl.where(s > 0, 1.0, alpha)
    elif ACT == _TANH:
        d = 1.0 - a * a
    elif ACT == _SIGMOID:
        d = a * (1.0 - a)
    elif ACT == _ELU:
        d = tl.where(s > 0, 1.0, alpha * _exp(_nonpos(s)))
    elif ACT == _SELU:
        d = tl.where(s > 0, _SELU_L, _SELU_LA * _exp(_nonpos(s)))
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
        d = tl.where(a > 0, 1.0, 0.0).to(a.dtype)
    elif ACT == _LRELU:
        d = tl.where(a > 0, 1.0, alpha)
    elif ACT == _TANH:
        d = 1.0 - a * a
    elif ACT == _SIGMOID:
        d = a * (1.0 - a)
    elif ACT == _ELU:
        d = tl.where(a > 0, 1.0, a + alpha)
    elif ACT == _SELU:
        d = tl.where(a > 0, _SELU_L, a + _SELU_LA)
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


@triton.jit
def _bias_act_kernel(out_ptr, ref_ptr, g_ptr, gg_ptr, b_ptr, part_ptr, O, C, S, NC, NS, PO, NT, alpha: tl.float64,
                     gain: tl.float64, clamp: tl.float64, ACT: tl.constexpr, MODE: tl.constexpr, YREF: tl.constexpr,
                     HAS_BIAS: tl.constexpr, G_BCAST: tl.constexpr, GG_BCAST: tl.constexpr, BIAS_SUM: tl.constexpr,
                     OB: tl.constexpr, CB: tl.constexpr, SB: tl.constexpr):
    # The tensors are dense and seen in memory order as [O][C][S]; a tile [OB rows o][CB channels c][SB positions s]
    # lies at memory offsets (o * C + c) * S + s, so every element of the tile knows its channel c without a division.
    # ref is x (forward; backward with YREF=False) or y; g / gg are read at the same offsets, or at offset 0 when
    # *_BCAST (an expanded scalar). Program (p, pc, ps) computes the tiles (po, pc, ps) for po = p + t * PO,
    # t = 0 .. NT - 1 (NT = 1 unless BIAS_SUM caps the grid). BIAS_SUM: the program also sums its outputs per
    # channel (in the compute type, over its tiles in that fixed order) and writes the sums to part[p][ps][c].
    pid = tl.program_id(0).to(tl.int64)
    ps = pid % NS
    pc = (pid // NS) % NC
    p = pid // NS // NC
    c = pc * CB + tl.arange(0, CB).to(tl.int64)
    s = ps * SB + tl.arange(0, SB).to(tl.int64)
    c3 = c[None, :, None]
    s3 = s[None, None, :]
    if HAS_BIAS:
        bv = _compute_type(tl.load(b_ptr + c3, mask=c3 < C, other=0.0))
    else:
        bv = 0.0
    if BIAS_SUM:
        psum = tl.zeros([CB], dtype=tl.float64 if ref_ptr.dtype.element_ty == tl.float64 else tl.float32)
    for t in range(0, NT):
        o = (p + t * PO) * OB + tl.arange(0, OB).to(tl.int64)
        o3 = o[:, None, None]
        offs = (o3 * C + c3) * S + s3
        mask = (o3 < O) & (c3 < C) & (s3 < S)

        r = _compute_type(tl.load(ref_ptr + offs, mask=mask, other=0.0))
        alpha_c = _scalar(alpha, r)
        gain_c = _scalar(gain, r)
        clamp_c = _scalar(clamp, r)
        if MODE == _FWD:
            v = _fwd_elem(r, bv, alpha_c, gain_c, clamp_c, ACT)
        else:
            if G_BCAST:
                g = _compute_type(tl.load(g_ptr))
            else:
                g = _compute_type(tl.load(g_ptr + offs, mask=mask, other=0.0))
            if MODE == _BWD:
                v = _bwd_elem(g, r, bv, alpha_c, gain_c, clamp_c, ACT, YREF)
            else:
                if GG_BCAST:
                    gg = _compute_type(tl.load(gg_ptr))
                else:
                    gg = _compute_type(tl.load(gg_ptr + offs, mask=mask, other=0.0))
                v = _bwd2_elem(gg, g, r, bv, alpha_c, gain_c, clamp_c, ACT, YREF)
        tl.store(out_ptr + offs, _to_out(v, out_ptr.dtype.element_ty), mask=mask)
        if BIAS_SUM:
            psum += tl.sum(tl.sum(tl.where(mask, v, 0.0), axis=2), axis=0).to(psum.dtype)  # [CB]
    if BIAS_SUM:
        tl.store(part_ptr + (p * NS + ps) * C + c, psum.to(part_ptr.dtype.element_ty), mask=c < C)


# ---- launch helpers ----
def _non_overlapping_and_dense(t: torch.Tensor) -> bool:
    # c10's TensorImpl::is_non_overlapping_and_dense (not bound in Python): some permutation of the dimensions of
    # size >= 2 is contiguous.
    expected = 1
    for i in sorted((i for i in range(t.dim()) if t.size(i) >= 2), key=t.stride):
        if t.stride(i) != expected:
            return False
        expected *= t.size(i)
    return True


def _dense(t: torch.Tensor) -> torch.Tensor:
    return t if _non_overlapping_and_dense(t) else t.contiguous()


def _same_layout(t: torch.Tensor, ref: torch.Tensor) -> bool:
    # Same sizes and the same strides wherever the size is > 1 (fastgan::same_layout).
    if t.shape != ref.shape:
        return False
    return all(t.stride(i) == ref.stride(i) for i in range(t.dim()) if t.size(i) > 1)


def _all_zero_strides(t: torch.Tensor) -> bool:
    return all(t.stride(i) == 0 for i in range(t.dim()) if t.size(i) > 1)


def _operand(t: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(tensor laid out like ref, broadcast flag): used as is, read at element 0 (expanded scalar), or copied."""
    if _same_layout(t, ref):
        return t, False
    if _all_zero_strides(t):
        return t, True
    return torch.empty_like(ref).copy_(t), False


def _layout(ref: torch.Tensor, dim: int, per_channel: bool) -> tuple[int, int, int]:
    """(O, C, S) of dense ref (fastgan::BiasLayout): C = ref.shape[dim], S = its stride when per_channel and C > 1,
    else the whole tensor as one row."""
    n = ref.numel()
    if per_channel:
        d = dim % ref.dim()
        C = ref.shape[d]
        if C > 1:
            S = ref.stride(d)
            return n // (C * S), C, S
    return 1, 1, n


class Config(NamedTuple):
    """Tiles [OB][CB][SB], tile counts NO x NC x NS, PO programs along o (each walks NT o-tiles), warps."""
    OB: int
    CB: int
    SB: int
    NO: int
    NC: int
    NS: int
    PO: int
    NT: int
    num_warps: int

    @property
    def grid(self) -> tuple[int]:
        return (self.PO * self.NC * self.NS,)

    @property
    def partial_rows(self) -> int:
        return self.PO * self.NS


CMAX = 256  # channels per tile when a run of S does not fill the block (the (N, C) layout: OB >= BLOCK / 256 rows)


def config(O: int, C: int, S: int, bias_sum: bool) -> Config:
    """The tiles and the grid of a launch over the dense [O][C][S] view (numel > 0): the one configuration function
    of the launch helpers and of static_variants. A tile holds at most BLOCK elements: whole runs of S first, then
    channels (at most CMAX), then rows; small tensors get smaller tiles (down to MIN_BLOCK) so that >= 2 x SM_COUNT
    programs exist where the tensor allows. With bias_sum the grid is capped near wave_programs(NUM_WARPS) (one wave, rounded up to a multiple of NC x NS):
    PO programs along o, each walking NT = cdiv(NO, PO) o-tiles; the partials are PO x NS rows of C."""
    n = O * C * S
    block = BLOCK
    while block > MIN_BLOCK and n < 2 * SM_COUNT * block:
        block //= 2
    SB = min(triton.next_power_of_2(S), block)
    CB = min(triton.next_power_of_2(C), block // SB, CMAX)
    OB = min(triton.next_power_of_2(O), block // (SB * CB))
    NO, NC, NS = triton.cdiv(O, OB), triton.cdiv(C, CB), triton.cdiv(S, SB)
    PO = NO
    if bias_sum:
        PO = min(NO, triton.cdiv(wave_programs(NUM_WARPS), NC * NS))
    return Config(OB, CB, SB, NO, NC, NS, PO, triton.cdiv(NO, PO), NUM_WARPS)


def _run(out, ref, g, g_bcast, gg, gg_bcast, b, layout, act_id, mode, yref, alpha, gain, clamp, sum_dtype=None):
    """Launches the kernel over out (numel > 0); returns the per-channel sums of out (length C) when sum_dtype."""
    O, C, S = layout
    cfg = config(O, C, S, sum_dtype is not None)
    part = torch.empty([cfg.partial_rows, C], dtype=sum_dtype, device=out.device) if sum_dtype is not None else out
    with device_guard(out):
        # A bare `wrap_triton(<kernel name>)` call: the pattern torch's get_inner_triton_kernels recognises, so the
        # kernel source enters the compile caches' keys of the triton ops.
        wrap_triton(_bias_act_kernel)[cfg.grid](
            out, ref, g, gg, b if b is not None else ref, part, O, C, S, cfg.NC, cfg.NS, cfg.PO, cfg.NT, float(alpha),
            float(gain), float(clamp), ACT=int(act_id), MODE=mode, YREF=bool(yref), HAS_BIAS=b is not None,
            G_BCAST=bool(g_bcast), GG_BCAST=bool(gg_bcast), BIAS_SUM=sum_dtype is not None, OB=cfg.OB, CB=cfg.CB,
            SB=cfg.SB, num_warps=cfg.num_warps)
    return part.sum(dim=0) if sum_dtype is not None else None


def forward(x: torch.Tensor, b: torch.Tensor | None, dim: int, act_id: int, alpha: float, gain: float,
            clamp: float) -> torch.Tensor:
    """y = clamp(act(x + b along dim) * gain, -clamp, clamp) (clamp < 0: none), laid out like dense(x)."""
    ref = _dense(x)
    out = torch.empty_like(ref)
    if ref.numel() == 0:
        return out
    bias = b.contiguous() if b is not None else None
    _run(out, ref, ref, False, ref, False, bias, _layout(ref, dim, b is not None), act_id, int(_FWD), False, alpha,
         gain, clamp)
    return out


def backward(grad_grad: torch.Tensor | None, grad: torch.Tensor, ref: torch.Tensor, b: torch.Tensor | None, dim: int,
             act_id: int, alpha: float, gain: float, clamp: float, ref_is_y: bool,
             bias_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """bias_act_backward (grad_grad None: out = dx) or bias_act_backward2 (out = d(dx)/d(ref) . grad_grad).

    ref is x (ref_is_y False: s = x + b) or the forward's output y (b unused). Returns (out, bias_sum): bias_sum is
    out summed over every dimension but dim (length ref.shape[dim], from the unrounded values, accumulated in
    fp32 / fp64) when bias_grad, else an empty [0] tensor.
    """
    r = _dense(ref)
    csum = r.shape[dim % r.dim()] if bias_grad else 0
    second = grad_grad is not None
    if r.numel() == 0 or (second and not _HAS_2ND[int(act_id)]):  # nothing to compute, or f'' == 0
        return torch.zeros_like(r), r.new_zeros([csum])
    out = torch.empty_like(r)
    g, g_bcast = _operand(grad, r)
    gg, gg_bcast = _operand(grad_grad, r) if second else (r, False)
    bias = b.contiguous() if (b is not None and not ref_is_y) else None  # y reference: s = x + b is never formed
    layout = _layout(r, dim, b is not None or bias_grad)
    acc = (torch.float64 if r.dtype == torch.float64 else torch.float32) if bias_grad else None
    bias_sum = _run(out, r, g, g_bcast, gg, gg_bcast, bias, layout, act_id, int(_BWD2 if second else _BWD), ref_is_y,
                    alpha, gain, clamp, acc)
    return out, (bias_sum.to(r.dtype) if bias_grad else r.new_empty([0]))


# ---- the static sm_90 report (bench/static_report.py) and the compile check (.ci/triton_check.py) ----
# (name, shape (O, C, S), dtype, MODE, act, bias in the kernel, BIAS_SUM, hot): the launches of a training step at the
# benchmark shapes of bench/bench_bias_act.py (StyleGAN's lrelu layer, N C H W), of the MLP layers of
# bench/bench_train_step.py (B = 128 rows of 1024 channels: forward with the bias, backward from the saved y with the
# bias gradient) and of the joint layer's backward at bench/bench_joint_linear.py's B = 4096.
_STATIC_CASES = (
    ("fwd", "32x256x32x32", (32, 256, 1024), torch.float32, 0, "lrelu", True, False, True),
    ("bwd+db", "32x256x32x32", (32, 256, 1024), torch.float32, 1, "lrelu", False, True, True),
    ("fwd", "128x1024", (128, 1024, 1), torch.float32, 0, "lrelu", True, False, True),
    ("bwd+db", "128x1024", (128, 1024, 1), torch.float32, 1, "lrelu", False, True, True),
    ("bwd+db", "4096x1024", (4096, 1024, 1), torch.float32, 1, "lrelu", False, True, True),
    ("fwd bf16", "128x1024", (128, 1024, 1), torch.bfloat16, 0, "lrelu", True, False, True),
    ("bwd+db bf16", "128x1024", (128, 1024, 1), torch.bfloat16, 1, "lrelu", False, True, True),
    ("fwd swish", "128x1024", (128, 1024, 1), torch.float32, 0, "swish", True, False, False),
    ("bwd+db swish", "128x1024", (128, 1024, 1), torch.float32, 1, "swish", True, True, False),
    ("bwd2 tanh", "128x1024", (128, 1024, 1), torch.float32, 2, "tanh", False, False, False),
)


def static_variants():
    """The kernel's launches at the benchmark shapes, configured by `config` (as the launch helpers are) and
    specialised by launch_spec: dicts name, kernel, signature, constexprs, attrs, options, grid, shape, hot."""
    for name, shape_name, (O, C, S), dtype, mode, act, has_bias, bias_sum, hot in _STATIC_CASES:
        cfg = config(O, C, S, bias_sum)
        spec = ACTIVATIONS[act]
        yref = mode > 0 and spec.y_ok and not has_bias
        sum_dt = torch.float64 if dtype == torch.float64 else torch.float32
        values = dict(out_ptr=dtype, ref_ptr=dtype, g_ptr=dtype, gg_ptr=dtype, b_ptr=dtype,
                      part_ptr=sum_dt if bias_sum else dtype, O=O, C=C, S=S, NC=cfg.NC, NS=cfg.NS, PO=cfg.PO,
                      NT=cfg.NT, alpha=float(spec.default_alpha), gain=float(spec.default_gain), clamp=-1.0)
        consts = dict(ACT=spec.id, MODE=mode, YREF=bool(yref), HAS_BIAS=has_bias, G_BCAST=False, GG_BCAST=False,
                      BIAS_SUM=bias_sum, OB=cfg.OB, CB=cfg.CB, SB=cfg.SB)
        sig, consts, attrs = launch_spec(_bias_act_kernel, values, consts)
        yield dict(name=f"bias_act {name}", kernel=_bias_act_kernel, signature=sig, constexprs=consts, attrs=attrs,
                   options=dict(num_warps=cfg.num_warps, num_stages=3), grid=cfg.grid, shape=shape_name, hot=hot)
