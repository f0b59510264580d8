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

GPU shape (docs/design.md, "GPU shape"): one function, `config`, decides the tiles and the grid for the launch helpers
and for `static_variants` (the static sm_90 report, bench/static_report.py), so the report cannot drift from the
launches.
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

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from ..activations import ACTIVATIONS
from ._launch import (
    COMPILE_DTYPES,
    SM_COUNT,
    concrete,
    device_guard,
    generic_variant,
    launch_spec,
    wave_programs,
    wrap_triton,
)
from ._math import _bwd2_elem, _bwd_elem, _compute_type, _fwd_elem, _scalar, _to_out

__all__ = ["forward", "backward", "config", "static_variants", "BLOCK"]

BLOCK = 1024  # elements per program (at most)
MIN_BLOCK = 256  # ... and at least, when a small tensor would otherwise give fewer than 2 x SM_COUNT programs
NUM_WARPS = 4

_HAS_2ND = {spec.id: spec.has_2nd for spec in ACTIVATIONS.values()}  # host side: f'' != 0

_FWD = tl.constexpr(0)
_BWD = tl.constexpr(1)
_BWD2 = tl.constexpr(2)


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
    programs exist where the tensor allows. With bias_sum the grid is capped near wave_programs(NUM_WARPS) (one wave,
    rounded up to a multiple of NC x NS): PO programs along o, each walking NT = cdiv(NO, PO) o-tiles; the partials
    are PO x NS rows of C."""
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
        PO = min(NO, triton.cdiv(wave_programs(NUM_WARPS, SM_COUNT), NC * NS))
    return Config(OB, CB, SB, NO, NC, NS, PO, triton.cdiv(NO, PO), NUM_WARPS)


def _run(out, ref, g, g_bcast, gg, gg_bcast, b, layout, act_id, mode, yref, alpha, gain, clamp, sum_dtype=None):
    """Launches the kernel over out (numel > 0); returns the per-channel sums of out (length C) when sum_dtype."""
    O, C, S = concrete(*layout)
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


def generic_variants():
    """The compile check's dtype x activation x mode coverage (.ci/triton_check.py), generic scalars."""
    scalars = dict.fromkeys(("O", "C", "S", "NC", "NS", "PO", "NT"), "i64") | dict.fromkeys(
        ("alpha", "gain", "clamp"), "fp64")
    ptrs = ("out_ptr", "ref_ptr", "g_ptr", "gg_ptr", "b_ptr", "part_ptr")
    for dt, _ in COMPILE_DTYPES:
        for spec in ACTIVATIONS.values():
            for mode in (0, 1, 2):
                cfg = config(1, 1024, 1, mode > 0)
                consts = dict(ACT=spec.id, MODE=mode, YREF=mode > 0 and spec.y_ok, HAS_BIAS=True, G_BCAST=False,
                              GG_BCAST=False, BIAS_SUM=mode > 0, OB=1, CB=8, SB=128)
                yield generic_variant(f"bias_act {dt} {spec.name} mode={mode}", _bias_act_kernel, ptrs, dt, scalars,
                                      consts, dict(num_warps=cfg.num_warps), wide=("part_ptr",))
