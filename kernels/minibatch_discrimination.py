"""Triton kernel of minibatch discrimination (forward and backward) and its launch helpers.

One program takes kernel slice k and a block of BI rows of `a`, and walks all rows of `b` in tiles of BJ:

    MODE 0  o[i, k] = sum_j e_ij,   e_ij = exp(-sum_c |a[i, k, c] - b[j, k, c]|)   (SELF and EXCL: no pair j = i)
    MODE 1  d[i, k, c] = -sum_j w_ij e_ij sign(a[i, k, c] - b[j, k, c]),  w_ij = g_a[i, k] (ROW_G) + g_b[j, k] (COL_G)
    MODE 2  (second order) u_ij = sum_c sign(a[i, k, c] - b[j, k, c]) (p[i, k, c] - q[j, k, c]);
            d[i, k, c] = sum_j w_ij e_ij u_ij sign(a[i, k, c] - b[j, k, c]);  dg[i, k] = -sum_j e_ij u_ij (G_OUT)

Within a batch (a = b = m) the gradient is MODE 1 with both weights; with a reference batch the gradient of m is
MODE 1 with g_a = g, and the reference's is the same kernel with the roles swapped (a = ref, b = m, g_b = g). The
second order (the backward of that backward, P and Q the incoming gradients of dm and dref) is MODE 2: within the batch
a = b = m, p = q = P, both weights; with a reference, (a, b, p, q) = (m, ref, P, Q) with g_a = g for dm and dg, then
(ref, m, Q, P) with g_b = g for dref (u is the same for the swapped pair: both its factors change sign). Each
program owns its rows of the output: no atomics, deterministic. Sums in fp32 (fp64 for fp64); libdevice exp on the
GPU, fp64 numpy under the interpreter (the _exp of kernels/bias_act.py).

Grid (row blocks, K): row blocks on axis 0, the K kernels on axis 1 (CUDA allows at most 65535 there: a larger K is
refused with a message). `config` chooses the row block BI for the launch helpers and for `static_variants` (the
static sm_90 report): the largest of 32, 16, 8 rows that still gives one wave of the 132-SM H100 (132 x 16 programs
of 4 warps), where the batch allows. Every launch runs under its tensors' device guard.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import concrete, device_guard, generic_variant, launch_spec, wave_programs, wrap_triton
from ._math import _exp

__all__ = ["forward", "backward", "backward2", "config", "static_variants"]


@triton.jit
def _md_kernel(a_ptr, b_ptr, ga_ptr, gb_ptr, out_ptr, p_ptr, q_ptr, dg_ptr, NA, NB, K, C, MODE: tl.constexpr,
               SELF: tl.constexpr, EXCL: tl.constexpr, ROW_G: tl.constexpr, COL_G: tl.constexpr, G_OUT: tl.constexpr,
               BI: tl.constexpr, BJ: tl.constexpr):
    # grid (row blocks, K): the row blocks on axis 0 (up to 2^31 - 1 programs), K on axis 1 (at most 65535)
    rows = tl.program_id(0).to(tl.int64) * BI + tl.arange(0, BI).to(tl.int64)
    k = tl.program_id(1).to(tl.int64)
    row_ok = rows < NA
    a_row = a_ptr + (rows * K + k) * C  # the C values of a[i, k]
    acc = tl.zeros([BI], dtype=tl.float64 if a_ptr.dtype.element_ty == tl.float64 else tl.float32)
    if MODE >= 1:
        if ROW_G:
            ga = tl.load(ga_ptr + rows * K + k, mask=row_ok, other=0.0).to(acc.dtype)
    for j0 in range(0, NB, BJ):
        cols = j0 + tl.arange(0, BJ).to(tl.int64)
        col_ok = cols < NB
        b_row = b_ptr + (cols * K + k) * C
        dist = tl.zeros([BI, BJ], dtype=acc.dtype)
        for c in range(0, C):
            av = tl.load(a_row + c, mask=row_ok, other=0.0).to(acc.dtype)
            bv = tl.load(b_row + c, mask=col_ok, other=0.0).to(acc.dtype)
            df = av[:, None] - bv[None, :]
            dist += tl.where(df < 0.0, -df, df)
        valid = row_ok[:, None] & col_ok[None, :]
        if SELF and EXCL:
            valid = valid & (rows[:, None] != cols[None, :])
        e = tl.where(valid, _exp(-dist), 0.0)
        if MODE == 0:
            acc += tl.sum(e, axis=1)
        else:
            if MODE == 2:  # e_ij u_ij
                u = tl.zeros([BI, BJ], dtype=acc.dtype)
                for c in range(0, C):
                    av = tl.load(a_row + c, mask=row_ok, other=0.0).to(acc.dtype)
                    bv = tl.load(b_row + c, mask=col_ok, other=0.0).to(acc.dtype)
                    pv = tl.load(p_ptr + (rows * K + k) * C + c, mask=row_ok, other=0.0).to(acc.dtype)
                    qv = tl.load(q_ptr + (cols * K + k) * C + c, mask=col_ok, other=0.0).to(acc.dtype)
                    df = av[:, None] - bv[None, :]
                    sg = tl.where(df > 0.0, 1.0, tl.where(df < 0.0, -1.0, 0.0)).to(acc.dtype)
                    u += sg * (pv[:, None] - qv[None, :])
                e = e * u
                if G_OUT:
                    acc -= tl.sum(e, axis=1)
            w = tl.zeros([BI, BJ], dtype=acc.dtype)
            if ROW_G:
                w += ga[:, None]
            if COL_G:
                gb = tl.load(gb_ptr + cols * K + k, mask=col_ok, other=0.0).to(acc.dtype)
                w += gb[None, :]
            we = w * e
            for c in range(0, C):
                av = tl.load(a_row + c, mask=row_ok, other=0.0).to(acc.dtype)
                bv = tl.load(b_row + c, mask=col_ok, other=0.0).to(acc.dtype)
                df = av[:, None] - bv[None, :]
                sg = tl.where(df > 0.0, 1.0, tl.where(df < 0.0, -1.0, 0.0)).to(acc.dtype)
                part = tl.sum(we * sg, axis=1)
                if MODE == 1:
                    part = -part
                o_ptr = out_ptr + (rows * K + k) * C + c
                tl.store(o_ptr, tl.load(o_ptr, mask=row_ok, other=0.0) + part, mask=row_ok)
    if MODE == 0:
        tl.store(out_ptr + rows * K + k, acc, mask=row_ok)
    if MODE == 2:
        if G_OUT:
            tl.store(dg_ptr + rows * K + k, acc, mask=row_ok)


def _compute(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float64 if t.dtype == torch.float64 else torch.float32).contiguous()


MAX_GRID_Y = 65535  # CUDA's limit on gridDim.y
NUM_WARPS = 4


def config(NA: int, K: int, interpret: bool) -> tuple[int, int, int]:
    """(BI, BJ, num_warps): the one configuration function of _launch and static_variants. The interpreter gets
    16 x 16 tiles; the GPU 32 columns per tile and the largest row block in (32, 16, 8) whose grid
    cdiv(NA, BI) x K still fills one wave (wave_programs(4) = 132 x 16 programs), else 8."""
    if interpret:
        return 16, 16, NUM_WARPS
    bi = 32
    while bi > 8 and triton.cdiv(NA, bi) * K < wave_programs(NUM_WARPS):
        bi //= 2
    return bi, 32, NUM_WARPS


def _launch(mode, a, b, out, ga=None, gb=None, self_sum=False, excl=False, p=None, q=None, dg=None):
    NA, K, C, NB = concrete(*a.shape, b.shape[0])
    if NA == 0 or K == 0:
        return
    if K > MAX_GRID_Y:
        raise ValueError(f"minibatch_discrimination: the Triton kernel takes at most {MAX_GRID_Y} kernels (grid axis "
                         f"1), got K = {K}")
    bi, bj, warps = config(NA, K, a.device.type == "cpu")
    with device_guard(a):
        wrap_triton(_md_kernel)[(triton.cdiv(NA, bi), K)](
            a, b, ga if ga is not None else a, gb if gb is not None else a, out, p if p is not None else a,
            q if q is not None else a, dg if dg is not None else a, NA, NB, K, C, MODE=mode, SELF=self_sum,
            EXCL=excl, ROW_G=ga is not None, COL_G=gb is not None, G_OUT=dg is not None, BI=bi, BJ=bj,
            num_warps=warps)


def forward(m: torch.Tensor, ref: torch.Tensor | None, exclude_self: bool) -> torch.Tensor:
    a = _compute(m)
    b = a if ref is None else _compute(ref)
    out = torch.zeros(a.shape[:2], dtype=a.dtype, device=a.device)
    _launch(0, a, b, out, self_sum=ref is None, excl=exclude_self)
    return out.to(m.dtype)


def backward(grad: torch.Tensor, m: torch.Tensor, ref: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    a = _compute(m)
    g = _compute(grad)
    dm = torch.zeros_like(a)
    if ref is None:
        _launch(1, a, a, dm, ga=g, gb=g, self_sum=True)
        return dm.to(m.dtype), m.new_empty([0])
    r = _compute(ref)
    dr = torch.zeros_like(r)
    _launch(1, a, r, dm, ga=g)
    _launch(1, r, a, dr, gb=g)
    return dm.to(m.dtype), dr.to(ref.dtype)


def backward2(ggm: torch.Tensor, ggr: torch.Tensor | None, grad: torch.Tensor, m: torch.Tensor,
              ref: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a, g, p = _compute(m), _compute(grad), _compute(ggm)
    dg, dm = torch.zeros_like(g), torch.zeros_like(a)
    if ref is None:
        _launch(2, a, a, dm, ga=g, gb=g, self_sum=True, p=p, q=p, dg=dg)
        return dg.to(grad.dtype), dm.to(m.dtype), m.new_empty([0])
    r, q = _compute(ref), _compute(ggr)
    dr = torch.zeros_like(r)
    _launch(2, a, r, dm, ga=g, p=p, q=q, dg=dg)
    _launch(2, r, a, dr, gb=g, p=q, q=p)
    return dg.to(grad.dtype), dm.to(m.dtype), dr.to(ref.dtype)


# ---- the static sm_90 report (bench/static_report.py) and the compile check (.ci/triton_check.py) ----
# (MODE, SELF, EXCL, ROW_G, COL_G, G_OUT, what, hot): the launches of the wrappers above
_STATIC_MODES = ((0, True, True, False, False, False, "fwd", True), (1, True, False, True, True, False, "bwd", True),
                 (2, True, False, True, True, True, "bwd2", False),
                 (0, False, False, False, False, False, "fwd ref", False),
                 (1, False, False, True, False, False, "bwd ref dm", False),
                 (1, False, False, False, True, False, "bwd ref dref", False))


def static_variants():
    """The kernel's launches at bench/bench_minibatch_discrimination.py's shapes (B in {64, 256, 1024} rows, K = 100
    kernels of C = 5 dims, fp32; within the batch: the forward and backward are hot, the second order and the
    reference-batch forms are not), configured by `config` and specialised by launch_spec."""
    K, C = 100, 5
    for B in (64, 256, 1024):
        bi, bj, warps = config(B, K, False)
        for mode, self_sum, excl, row_g, col_g, g_out, what, hot in _STATIC_MODES:
            if B != 256 and not hot:
                continue
            f = torch.float32
            values = dict(a_ptr=f, b_ptr=f, ga_ptr=f, gb_ptr=f, out_ptr=f, p_ptr=f, q_ptr=f, dg_ptr=f, NA=B, NB=B, K=K,
                          C=C)
            consts = dict(MODE=mode, SELF=self_sum, EXCL=excl, ROW_G=row_g, COL_G=col_g, G_OUT=g_out, BI=bi, BJ=bj)
            sig, consts, attrs = launch_spec(_md_kernel, values, consts)
            yield dict(name=f"minibatch_discrimination {what} [BI={bi}]", kernel=_md_kernel, signature=sig,
                       constexprs=consts, attrs=attrs, options=dict(num_warps=warps, num_stages=3),
                       grid=(triton.cdiv(B, bi), K),
                       shape=f"B={B} K={K} C={C}", hot=hot)


def generic_variants():
    """The compile check's coverage (.ci/triton_check.py): every (mode, self, rows / columns) launch the wrappers make,
    in fp32 and fp64 (the kernel computes in those only; half inputs are widened first), generic scalars."""
    scalars = dict.fromkeys(("NA", "NB", "K", "C"), "i64")
    ptrs = ("a_ptr", "b_ptr", "ga_ptr", "gb_ptr", "out_ptr", "p_ptr", "q_ptr", "dg_ptr")
    for dt in ("fp32", "fp64"):
        # (MODE, SELF, EXCL, ROW_G, COL_G, G_OUT): forward, backward, second order
        for mode, self_sum, excl, row_g, col_g, g_out in (
                (0, True, True, False, False, False), (0, False, False, False, False, False),
                (1, True, False, True, True, False), (1, False, False, True, False, False),
                (1, False, False, False, True, False), (2, True, False, True, True, True),
                (2, False, False, True, False, True), (2, False, False, False, True, False)):
            consts = dict(MODE=mode, SELF=self_sum, EXCL=excl, ROW_G=row_g, COL_G=col_g, G_OUT=g_out, BI=32, BJ=32)
            yield generic_variant(f"minibatch_discrimination {dt} mode={mode} self={self_sum} row_g={row_g}",
                                  _md_kernel, ptrs, dt, scalars, consts, dict(num_warps=4))
