"""Triton kernels of kernel_sum (the building block of MMD) and of its second derivative, and their launch helpers.

One kernel walks, for a block of BM rows of `a`, every row of `b` in tiles of BN, never holding more than a BM x BN
tile of the pair matrix:

    MODE 0/1  per row i of a: sum_j sum_s w_s k_s(|a_i - b_j|^2) (a per-row partial sum; the host adds the rows up);
              MODE 1 also  g_i = fac1 (rowsum_i(C) a_i - (C b)_i),  C = sum_s w_s k_s'(r2)
    MODE 2    out_i = fac1 (rowsum_i(C) p_i - (C q)_i) + fac2 (rowsum_i(Q) a_i - (Q b)_i),
              Q_ij = (sum_s w_s k_s''(r2_ij)) (p_i - q_j).(a_i - b_j)

The distances come from tl.dot tiles over the feature dimension in chunks of BD (IEEE fp32 or fp64: never TF32,
whose 10-bit mantissa would wreck |a|^2 + |b|^2 - 2 a.b), on rows centred by the host (the cancellation guard of the
C++ kernel). Each program owns its rows of the outputs: the (C b) sums accumulate in the output itself, chunk by
chunk, and the final combination runs in place — no atomics, no second buffer for MODE 1, deterministic results.
The gradient of b is the same kernel with the roles of a and b swapped (the host launches it); a self-sum walks the
full square with the pairs (i, i) masked out when the diagonal is excluded.

The laplacian kernels (3: euclidean, 4: l1; p = 1 / s) take their distances from direct differences (a BM x BN x BD
block per feature chunk, exact at zero distance, where their gradient is defined as 0) and accumulate the gradient as
sum_j c_ij f(a_i - b_j) directly (f = identity / dist or sign); first order only.

Elementary functions: kernels/bias_act.py's _exp / _log (libdevice on the GPU, fp64 numpy under the interpreter).
The kernel table is that of csrc/include/fastgan/pair_kernels.h: 0 gaussian (p = 1 / 2s^2), 1 rq (p = a), 2 imq (p = s^2).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from .bias_act import _exp, _log

__all__ = ["kernel_sum", "kernel_sum_backward2", "KERNEL_IDS"]

KERNEL_IDS = {"gaussian": 0, "rq": 1, "imq": 2, "laplacian": 3, "laplacian_l1": 4}


@triton.jit
def _mixture(r2, p_ptr, w_ptr, NS: tl.constexpr, KERNEL: tl.constexpr):
    """(k, k', k'') of the mixture at r2 (unused ones are dead code the compiler drops)."""
    val = tl.zeros_like(r2)
    c = tl.zeros_like(r2)
    h = tl.zeros_like(r2)
    for s in tl.static_range(NS):
        p = tl.load(p_ptr + s)
        w = tl.load(w_ptr + s)
        if KERNEL == 0:  # gaussian: k = e^(-p r2), k' = -p k, k'' = p^2 k
            e = _exp(-p * r2)
            val += w * e
            c += (-w * p) * e
            h += (w * p * p) * e
        elif KERNEL == 1:  # rq: k = t^-p, t = 1 + r2 / (2p); k' = -k / (2t), k'' = (p + 1) / (4p) k / t^2
            t = 1.0 + r2 * (0.5 / p)
            e = _exp(-p * _log(t))
            et = e / t
            val += w * e
            c += (-0.5 * w) * et
            h += (w * (p + 1.0) / (4.0 * p)) * (et / t)
        elif KERNEL >= 3:  # laplacians, of the distance t (euclidean: sqrt r2): k = e^(-p t), dk/dt = -p k
            e = _exp(-p * (tl.sqrt(r2) if KERNEL == 3 else r2))
            val += w * e
            c += (-w * p) * e
        else:  # imq: k = p / q, q = p + r2; k' = -k / q, k'' = 2k / q^2
            q = p + r2
            e = p / q
            eq = e / q
            val += w * e
            c -= w * eq
            h += (2.0 * w) * (eq / q)
    return val, c, h


@triton.jit
def _pair_rows_kernel(a_ptr, b_ptr, na_ptr, nb_ptr, p_ptr, w_ptr, val_ptr, g_ptr, g2_ptr, pu_ptr, qv_ptr, pa_ptr,
                      qb_ptr, NA, NB, D, fac1, fac2, KERNEL: tl.constexpr, NS: tl.constexpr, MODE: tl.constexpr,
                      SELF: tl.constexpr, DIAG: tl.constexpr, PREC: tl.constexpr, BM: tl.constexpr,
                      BN: tl.constexpr, BD: tl.constexpr):
    # a (NA, D), b (NB, D), g / g2 / pu (NA, D), qv (NB, D): contiguous rows; na, nb, pa, qb: per-row vectors
    # (|a|^2, |b|^2, p.a, q.b); val: per-row sums (NA).
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * BM + tl.arange(0, BM).to(tl.int64)
    row_ok = rows < NA
    na = tl.load(na_ptr + rows, mask=row_ok, other=0.0)
    zero_row = tl.zeros([BM], dtype=na.dtype)
    row_val = zero_row
    rsum1 = zero_row
    rsum2 = zero_row
    if MODE == 2:
        pa = tl.load(pa_ptr + rows, mask=row_ok, other=0.0)
    for j0 in range(0, NB, BN):
        cols = j0 + tl.arange(0, BN).to(tl.int64)
        col_ok = cols < NB
        nb = tl.load(nb_ptr + cols, mask=col_ok, other=0.0)
        dot = tl.zeros([BM, BN], dtype=na.dtype)
        edot = tl.zeros([BM, BN], dtype=na.dtype)
        if KERNEL >= 3:  # laplacians: distances from direct differences, exact at zero distance
            for k0 in range(0, D, BD):
                ks = k0 + tl.arange(0, BD).to(tl.int64)
                k_ok = ks < D
                a = tl.load(a_ptr + rows[:, None] * D + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
                b = tl.load(b_ptr + cols[:, None] * D + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
                df = a[:, None, :] - b[None, :, :]
                if KERNEL == 4:
                    dot += tl.sum(tl.where(df < 0.0, -df, df), axis=2)
                else:
                    dot += tl.sum(df * df, axis=2)
        for k0 in range(0, D if KERNEL < 3 else 0, BD):
            ks = k0 + tl.arange(0, BD).to(tl.int64)
            k_ok = ks < D
            a = tl.load(a_ptr + rows[:, None] * D + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            b = tl.load(b_ptr + cols[:, None] * D + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
            dot = tl.dot(a, tl.trans(b), dot, input_precision=PREC)
            if MODE == 2:  # p_i . b_j + a_i . q_j
                pu = tl.load(pu_ptr + rows[:, None] * D + ks[None, :], mask=row_ok[:, None] & k_ok[None, :],
                             other=0.0)
                qv = tl.load(qv_ptr + cols[:, None] * D + ks[None, :], mask=col_ok[:, None] & k_ok[None, :],
                             other=0.0)
                edot = tl.dot(pu, tl.trans(b), edot, input_precision=PREC)
                edot = tl.dot(a, tl.trans(qv), edot, input_precision=PREC)
        if KERNEL >= 3:
            r2 = dot  # the l1 distance, or the squared euclidean one
        else:
            r2 = na[:, None] + nb[None, :] - 2.0 * dot
            r2 = tl.where(r2 < 0.0, 0.0, r2)  # NaN passes
        valid = row_ok[:, None] & col_ok[None, :]
        if SELF:
            same = rows[:, None] == cols[None, :]
            r2 = tl.where(same, 0.0, r2)  # exactly 0 on the diagonal
            if not DIAG:
                valid = valid & (rows[:, None] != cols[None, :])
        val, c, h = _mixture(r2, p_ptr, w_ptr, NS, KERNEL)
        if KERNEL == 3:  # d dist / d a = (a - b) / dist, and 0 at dist 0 (the least-norm subgradient)
            c = tl.where(r2 == 0.0, 0.0, c / tl.where(r2 == 0.0, 1.0, tl.sqrt(r2)))  # NaN propagates
        c = tl.where(valid, c, 0.0)
        if MODE < 2:
            row_val += tl.sum(tl.where(valid, val, 0.0), axis=1)
        if MODE >= 1:
            rsum1 += tl.sum(c, axis=1)
        if MODE == 2:
            qb = tl.load(qb_ptr + cols, mask=col_ok, other=0.0)
            q = tl.where(valid, h * (pa[:, None] + qb[None, :] - edot), 0.0)
            rsum2 += tl.sum(q, axis=1)
        if MODE >= 1 and KERNEL >= 3:  # laplacians: g += sum_j c_ij f(a_i - b_j), f = sign (l1) or identity
            for k0 in range(0, D, BD):
                ks = k0 + tl.arange(0, BD).to(tl.int64)
                k_ok = ks < D
                m_out = row_ok[:, None] & k_ok[None, :]
                a = tl.load(a_ptr + rows[:, None] * D + ks[None, :], mask=m_out, other=0.0)
                b = tl.load(b_ptr + cols[:, None] * D + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
                df = a[:, None, :] - b[None, :, :]
                if KERNEL == 4:
                    df = tl.where(df > 0.0, 1.0, tl.where(df < 0.0, -1.0, 0.0)).to(df.dtype)
                g_offs = rows[:, None] * D + ks[None, :]
                acc = tl.load(g_ptr + g_offs, mask=m_out, other=0.0)
                tl.store(g_ptr + g_offs, acc + tl.sum(c[:, :, None] * df, axis=1), mask=m_out)
        if MODE >= 1 and KERNEL < 3:  # g += C q (MODE 2) or C b (MODE 1); g2 += Q b (MODE 2), chunk by chunk
            for k0 in range(0, D, BD):
                ks = k0 + tl.arange(0, BD).to(tl.int64)
                k_ok = ks < D
                m_out = row_ok[:, None] & k_ok[None, :]
                b = tl.load(b_ptr + cols[:, None] * D + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
                g_offs = rows[:, None] * D + ks[None, :]
                if MODE == 1:
                    acc = tl.load(g_ptr + g_offs, mask=m_out, other=0.0)
                    tl.store(g_ptr + g_offs, tl.dot(c, b, acc, input_precision=PREC), mask=m_out)
                else:
                    qv = tl.load(qv_ptr + cols[:, None] * D + ks[None, :], mask=col_ok[:, None] & k_ok[None, :],
                                 other=0.0)
                    acc = tl.load(g_ptr + g_offs, mask=m_out, other=0.0)
                    tl.store(g_ptr + g_offs, tl.dot(c, qv, acc, input_precision=PREC), mask=m_out)
                    acc2 = tl.load(g2_ptr + g_offs, mask=m_out, other=0.0)
                    tl.store(g2_ptr + g_offs, tl.dot(q, b, acc2, input_precision=PREC), mask=m_out)
    if MODE < 2:
        tl.store(val_ptr + rows, row_val, mask=row_ok)
    if MODE >= 1:  # the final combination, in place
        for k0 in range(0, D, BD):
            ks = k0 + tl.arange(0, BD).to(tl.int64)
            m_out = row_ok[:, None] & (ks < D)[None, :]
            g_offs = rows[:, None] * D + ks[None, :]
            a = tl.load(a_ptr + g_offs, mask=m_out, other=0.0)
            acc = tl.load(g_ptr + g_offs, mask=m_out, other=0.0)
            if KERNEL >= 3:
                out = fac1 * acc
            elif MODE == 1:
                out = fac1 * (rsum1[:, None] * a - acc)
            else:
                pu = tl.load(pu_ptr + g_offs, mask=m_out, other=0.0)
                acc2 = tl.load(g2_ptr + g_offs, mask=m_out, other=0.0)
                out = fac1 * (rsum1[:, None] * pu - acc) + fac2 * (rsum2[:, None] * a - acc2)
            tl.store(g_ptr + g_offs, out, mask=m_out)


# ---- launch helpers ----
def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _tiles(D: int, dtype: torch.dtype, interpret: bool, direct: bool = False) -> tuple[int, int, int, int]:
    """(BM, BN, BD, num_warps); tl.dot needs tiles of at least 16; the laplacians' direct differences hold a
    BM x BN x BD block, so they get smaller tiles."""
    if interpret:
        return 16, 16, 16, 1
    if direct:
        return 32, 32, 8, 4
    if dtype == torch.float64:
        return 32, 32, 16, 4
    return 64, 64, 32 if D >= 32 else 16, 4


def _centred(x: torch.Tensor, y: torch.Tensor | None):
    """x and y (or None) minus their common mean, contiguous, in the compute type (the cancellation guard)."""
    ct = _compute_dtype(x.dtype)
    xc = x.to(ct)
    yc = None if y is None else y.to(ct)
    cnt = x.shape[0] + (0 if y is None else y.shape[0])
    if cnt:
        mean = xc.sum(0) if y is None else xc.sum(0) + yc.sum(0)
        mean = mean / cnt
        xc = xc - mean
        yc = None if yc is None else yc - mean
    return xc.contiguous(), (None if yc is None else yc.contiguous())


def _launch(mode, a, b, na, nb, pw, ww, kernel_id, self_sum, diagonal, fac1=0.0, fac2=0.0, pu=None, qv=None,
            pa=None, qb=None):
    NA, D = a.shape
    NB = b.shape[0]
    interpret = a.device.type == "cpu"
    bm, bn, bd, warps = _tiles(D, a.dtype, interpret, direct=kernel_id >= 3)
    val = torch.empty(NA, dtype=a.dtype, device=a.device)
    g = torch.zeros_like(a) if mode >= 1 else val
    g2 = torch.zeros_like(a) if mode == 2 else val
    if NA == 0:
        return val, g
    wrap_triton(_pair_rows_kernel)[(triton.cdiv(NA, bm),)](
        a, b, na, nb, pw, ww, val, g, g2, pu if pu is not None else a, qv if qv is not None else b,
        pa if pa is not None else na, qb if qb is not None else nb, NA, NB, D, float(fac1), float(fac2),
        KERNEL=int(kernel_id), NS=int(pw.numel()), MODE=int(mode), SELF=bool(self_sum), DIAG=bool(diagonal),
        PREC="ieee", BM=bm, BN=bn, BD=bd, num_warps=warps)
    return val, g


def _params(x, kernel: str, bandwidths, weights):
    ct = _compute_dtype(x.dtype)
    if kernel == "gaussian":
        p = [1.0 / (2.0 * s * s) for s in bandwidths]
    elif kernel == "rq":
        p = list(bandwidths)
    elif kernel == "imq":
        p = [s * s for s in bandwidths]
    else:  # laplacians
        p = [1.0 / s for s in bandwidths]
    return (torch.tensor(p, dtype=ct, device=x.device), torch.tensor(list(weights), dtype=ct, device=x.device),
            KERNEL_IDS[kernel])


def _row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(1)


def kernel_sum(x, y, kernel, bandwidths, weights, diagonal, grad_x, grad_y):
    """(S, dS/dx or [0], dS/dy or [0]) as fastgan::kernel_sum (arguments checked by the caller)."""
    pw, ww, kid = _params(x, kernel, bandwidths, weights)
    self_sum = y is None
    xc, yc = _centred(x, y)
    b = xc if self_sum else yc
    nx = _row_dot(xc, xc)
    nb = nx if self_sum else _row_dot(yc, yc)
    direct = kid >= 3  # laplacians: the gradient is accumulated as it is (no row-sum combination), factor 1 / 2
    rows, gx = _launch(1 if grad_x else 0, xc, b, nx, nb, pw, ww, kid, self_sum, diagonal,
                       fac1=(2.0 if self_sum else 1.0) if direct else (4.0 if self_sum else 2.0))
    half = x.dtype in (torch.float16, torch.bfloat16)  # the sum in fp32 for half inputs, as the C++ op
    value = rows.sum(dtype=torch.float64).to(torch.float32 if half else x.dtype)
    gx = gx.to(x.dtype) if grad_x else x.new_empty([0])
    if grad_y and not self_sum:
        gy = _launch(1, yc, xc, nb, nx, pw, ww, kid, False, True, fac1=1.0 if direct else 2.0)[1].to(x.dtype)
    else:
        gy = x.new_empty([0])
    return value, gx, gy


def kernel_sum_backward2(x, y, u, v, kernel, bandwidths, weights, grad_x, grad_y):
    """(d/dx, d/dy) of <u, dS/dx> + <v, dS/dy>, as fastgan::kernel_sum_backward2."""
    pw, ww, kid = _params(x, kernel, bandwidths, weights)
    if kid >= 3:
        raise NotImplementedError(f"fastgan.kernel_sum: second-order derivatives of the {kernel} kernel are not "
                                  "implemented (it is not twice differentiable at zero distance); use a smooth kernel "
                                  "(gaussian, rq, imq) for gradient penalties through an MMD")
    self_sum = y is None
    ct = _compute_dtype(x.dtype)
    xc, yc = _centred(x, y)
    uc = u.to(ct).contiguous()
    if self_sum:
        yc, vc = xc, uc
    else:
        vc = (v.to(ct) if v is not None else torch.zeros_like(yc)).contiguous()
    nx, ny = _row_dot(xc, xc), _row_dot(yc, yc)
    ux, vy = _row_dot(uc, xc), _row_dot(vc, yc)
    f = 4.0 if self_sum else 2.0
    dx = x.new_empty([0])
    if grad_x:
        # a self-sum's pairs (i, i) contribute 0 analytically (u_i - u_i, x_i - x_i): leave them out, as the C++ does
        dx = _launch(2, xc, yc, nx, ny, pw, ww, kid, self_sum, False, f, 2.0 * f, uc, vc, ux, vy)[1].to(x.dtype)
    dy = x.new_empty([0])
    if grad_y and not self_sum:
        dy = _launch(2, yc, xc, ny, nx, pw, ww, kid, False, True, 2.0, 4.0, vc, uc, vy, ux)[1].to(x.dtype)
    return dx, dy
