"""The Triton device code of kernel_sum (kernels/kernel_sum.py holds the launchers, the configuration and the
compile variants; its docstring describes the walk): the per-pair mixture of bandwidths (_mix_add, _mixture) and the
tile kernel (_pair_kernel). The kernel table is csrc/include/fastgan/pair_math.h's."""
from __future__ import annotations

import triton
import triton.language as tl

from ._math import _exp, _log


@triton.jit
def _mix_add(val, c, h, r2, p_arg, w_arg, off_arg, KERNEL: tl.constexpr, DEG: tl.constexpr):
    """(val, c, h) + (k, k', k'') of one bandwidth at r2 (poly: at the dot product; unused ones are dead code the
    compiler drops). p_arg, w_arg, off_arg: fp64 scalar arguments (Python floats under the interpreter), rounded to
    the compute type here."""
    p = tl.full([], p_arg, r2.dtype)
    w = tl.full([], w_arg, r2.dtype)
    if KERNEL == 5:  # poly: b = p t + off; k = b^DEG, k' = DEG p b^(DEG-1), k'' = DEG (DEG-1) p^2 b^(DEG-2)
        b = p * r2 + tl.full([], off_arg, r2.dtype)
        e2 = tl.zeros_like(r2) + 1.0
        for _ in tl.static_range(2, DEG):  # b^(DEG-2) by products (b may be negative); 1 for DEG < 2 (weight 0)
            e2 = e2 * b
        if DEG >= 2:
            e1 = e2 * b
        else:
            e1 = tl.zeros_like(r2) + 1.0
        val += w * (e1 * b)
        c += (w * DEG * p) * e1
        h += (w * (DEG * (DEG - 1)) * p * p) * e2
    elif KERNEL == 0:  # gaussian: k = e^(-p r2), k' = -p k, k'' = p^2 k
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
    elif KERNEL == 3 or KERNEL == 4:  # laplacians, of the distance t (euclidean: sqrt r2): k = e^(-p t), dk/dt = -p k
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
def _mixture(r2, p0, p1, p2, p3, p4, p5, p6, p7, w0, w1, w2, w3, w4, w5, w6, w7, off, NS: tl.constexpr,
             KERNEL: tl.constexpr, DEG: tl.constexpr):
    """(k, k', k'') of the mixture of the first NS bandwidths at r2."""
    val = tl.zeros_like(r2)
    c = tl.zeros_like(r2)
    h = tl.zeros_like(r2)
    val, c, h = _mix_add(val, c, h, r2, p0, w0, off, KERNEL, DEG)
    if NS > 1:
        val, c, h = _mix_add(val, c, h, r2, p1, w1, off, KERNEL, DEG)
    if NS > 2:
        val, c, h = _mix_add(val, c, h, r2, p2, w2, off, KERNEL, DEG)
    if NS > 3:
        val, c, h = _mix_add(val, c, h, r2, p3, w3, off, KERNEL, DEG)
    if NS > 4:
        val, c, h = _mix_add(val, c, h, r2, p4, w4, off, KERNEL, DEG)
    if NS > 5:
        val, c, h = _mix_add(val, c, h, r2, p5, w5, off, KERNEL, DEG)
    if NS > 6:
        val, c, h = _mix_add(val, c, h, r2, p6, w6, off, KERNEL, DEG)
    if NS > 7:
        val, c, h = _mix_add(val, c, h, r2, p7, w7, off, KERNEL, DEG)
    return val, c, h


@triton.jit
def _pair_kernel(a_ptr, b_ptr, na_ptr, nb_ptr, val_ptr, g_ptr, g2_ptr, pu_ptr, qv_ptr, pa_ptr, qb_ptr,
                 NA, NB, D, SPLITS, fac1, fac2,
                 p0: tl.float64, p1: tl.float64, p2: tl.float64, p3: tl.float64,
                 p4: tl.float64, p5: tl.float64, p6: tl.float64, p7: tl.float64,
                 w0: tl.float64, w1: tl.float64, w2: tl.float64, w3: tl.float64,
                 w4: tl.float64, w5: tl.float64, w6: tl.float64, w7: tl.float64, off: tl.float64,
                 KERNEL: tl.constexpr, NS: tl.constexpr, MODE: tl.constexpr, SELF: tl.constexpr,
                 DIAG: tl.constexpr, PREC: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr,
                 DEG: tl.constexpr):
    # a (NA, D), b (NB, D), pu (NA, D), qv (NB, D): contiguous rows; na, nb, pa, qb: per-row vectors (|a|^2, |b|^2,
    # p.a, q.b). Outputs, one slice per split: val (SPLITS, NA) per-row sums; g, g2 (SPLITS, NA, D) (g2: scratch).
    pid_m = tl.program_id(0).to(tl.int64)
    pid_s = tl.program_id(1).to(tl.int64)
    rows = pid_m * BM + tl.arange(0, BM).to(tl.int64)
    row_ok = rows < NA
    n_tiles = (NB + BN - 1) // BN  # (no .to(): NB, D, SPLITS may arrive as constexprs, specialised at 1)
    c_lo = (pid_s * n_tiles) // SPLITS * BN  # this split's columns: tiles [s T / S, (s + 1) T / S), never empty
    c_hi = ((pid_s + 1) * n_tiles) // SPLITS * BN
    part = pid_s * NA + rows  # the rows of this split's slice of the partial buffers
    a_rows = a_ptr + rows[:, None] * D
    g_rows = g_ptr + part[:, None] * D
    g2_rows = g2_ptr + part[:, None] * D
    pu_rows = pu_ptr + rows[:, None] * D
    na = tl.load(na_ptr + rows, mask=row_ok, other=0.0)
    zero_row = tl.zeros([BM], dtype=na.dtype)
    row_val = zero_row
    rsum1 = zero_row
    rsum2 = zero_row
    if MODE == 2:
        pa = tl.load(pa_ptr + rows, mask=row_ok, other=0.0)
    for j0 in range(c_lo, c_hi, BN):
        cols = j0 + tl.arange(0, BN).to(tl.int64)
        col_ok = cols < NB
        b_cols = b_ptr + cols[:, None] * D
        qv_cols = qv_ptr + cols[:, None] * D
        nb = tl.load(nb_ptr + cols, mask=col_ok, other=0.0)
        dot = tl.zeros([BM, BN], dtype=na.dtype)
        edot = tl.zeros([BM, BN], dtype=na.dtype)
        if KERNEL == 3 or KERNEL == 4:  # laplacians: distances from direct differences, exact at zero distance
            for k0 in range(0, D, BD):
                ks = k0 + tl.arange(0, BD)
                k_ok = ks < D
                a = tl.load(a_rows + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
                b = tl.load(b_cols + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
                df = a[:, None, :] - b[None, :, :]
                if KERNEL == 4:
                    dot += tl.sum(tl.where(df < 0.0, -df, df), axis=2)
                else:
                    dot += tl.sum(df * df, axis=2)
        else:  # (a constexpr branch, not an empty range: a loop body is compiled even where its range is empty,
            # and Triton 3.6 rejects the laplacians' fp32 tl.dot at BD = 8 < 16 -- issue 28)
            for k0 in range(0, D, BD):
                ks = k0 + tl.arange(0, BD)
                k_ok = ks < D
                a = tl.load(a_rows + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
                b = tl.load(b_cols + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
                dot = tl.dot(a, tl.trans(b), dot, input_precision=PREC, out_dtype=dot.dtype)
                if MODE == 2:  # p_i . b_j + a_i . q_j
                    pu = tl.load(pu_rows + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
                    qv = tl.load(qv_cols + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
                    edot = tl.dot(pu, tl.trans(b), edot, input_precision=PREC, out_dtype=edot.dtype)
                    edot = tl.dot(a, tl.trans(qv), edot, input_precision=PREC, out_dtype=edot.dtype)
        if KERNEL >= 3:
            r2 = dot  # the l1 distance, or the squared euclidean one; poly: the dot product
        else:
            r2 = na[:, None] + nb[None, :] - 2.0 * dot
            r2 = tl.where(r2 < 0.0, 0.0, r2)  # NaN passes
        valid = row_ok[:, None] & col_ok[None, :]
        if SELF:
            same = rows[:, None] == cols[None, :]
            if KERNEL != 5:
                r2 = tl.where(same, 0.0, r2)  # exactly 0 on the diagonal
            if not DIAG:
                valid = valid & (rows[:, None] != cols[None, :])
        val, c, h = _mixture(r2, p0, p1, p2, p3, p4, p5, p6, p7, w0, w1, w2, w3, w4, w5, w6, w7, off, NS, KERNEL,
                             DEG)
        if KERNEL == 3:  # d dist / d a = (a - b) / dist, and 0 at dist 0 (the least-norm subgradient)
            c = tl.where(r2 == 0.0, 0.0, c / tl.where(r2 == 0.0, 1.0, tl.sqrt(r2)))  # NaN propagates
        c = tl.where(valid, c, 0.0)
        if MODE < 2:
            row_val += tl.sum(tl.where(valid, val, 0.0), axis=1)
        if MODE >= 1:
            rsum1 += tl.sum(c, axis=1)
        if MODE == 2:
            qb = tl.load(qb_ptr + cols, mask=col_ok, other=0.0)
            if KERNEL == 5:  # poly: q = h e, e = p_i.b_j + a_i.q_j
                q = tl.where(valid, h * edot, 0.0)
            else:
                q = tl.where(valid, h * (pa[:, None] + qb[None, :] - edot), 0.0)
            rsum2 += tl.sum(q, axis=1)
        if MODE >= 1:
            # the slice holds the sums of the earlier tiles (none before the first); the last tile stores the
            # finished partial (the row sums are complete once this tile's are in)
            # (scalar conditions as feature limits: the interpreter mistypes a bool tile & a bool scalar)
            last = j0 + BN >= c_hi
            d_more = tl.where(j0 > c_lo, D, 0)  # the slice's features to load: none on the split's first tile
            d_last = tl.where(last, D, 0)  # features of a, p to load: only on the last tile
            for k0 in range(0, D, BD):
                ks = k0 + tl.arange(0, BD)
                k_ok = ks < D
                m_out = row_ok[:, None] & k_ok[None, :]
                m_b = col_ok[:, None] & k_ok[None, :]
                b = tl.load(b_cols + ks[None, :], mask=m_b, other=0.0)
                acc = tl.load(g_rows + ks[None, :], mask=row_ok[:, None] & (ks < d_more)[None, :], other=0.0)
                if KERNEL == 3 or KERNEL == 4:  # laplacians: g += sum_j c_ij f(a_i - b_j), f = sign or identity
                    a = tl.load(a_rows + ks[None, :], mask=m_out, other=0.0)
                    df = a[:, None, :] - b[None, :, :]
                    if KERNEL == 4:
                        df = tl.where(df > 0.0, 1.0, tl.where(df < 0.0, -1.0, 0.0)).to(df.dtype)
                    acc += tl.sum(c[:, :, None] * df, axis=1)
                    out = tl.where(last, fac1 * acc, acc)
                elif MODE == 1:  # g += C b
                    acc = tl.dot(c, b, acc, input_precision=PREC, out_dtype=acc.dtype)
                    if KERNEL == 5:  # poly: no row-sum term
                        out = tl.where(last, fac1 * acc, acc)
                    else:
                        a = tl.load(a_rows + ks[None, :], mask=row_ok[:, None] & (ks < d_last)[None, :], other=0.0)
                        out = tl.where(last, fac1 * (rsum1[:, None] * a - acc), acc)
                else:  # g += C q, g2 += Q b
                    qv = tl.load(qv_cols + ks[None, :], mask=m_b, other=0.0)
                    acc = tl.dot(c, qv, acc, input_precision=PREC, out_dtype=acc.dtype)
                    acc2 = tl.load(g2_rows + ks[None, :], mask=row_ok[:, None] & (ks < d_more)[None, :], other=0.0)
                    acc2 = tl.dot(q, b, acc2, input_precision=PREC, out_dtype=acc2.dtype)
                    if KERNEL == 5:  # poly: no row-sum terms
                        out = tl.where(last, fac1 * acc + fac2 * acc2, acc)
                    else:
                        a = tl.load(a_rows + ks[None, :], mask=row_ok[:, None] & (ks < d_last)[None, :], other=0.0)
                        pu = tl.load(pu_rows + ks[None, :], mask=row_ok[:, None] & (ks < d_last)[None, :], other=0.0)
                        out = tl.where(last, fac1 * (rsum1[:, None] * pu - acc) + fac2 * (rsum2[:, None] * a - acc2),
                                       acc)
                    tl.store(g2_rows + ks[None, :], acc2, mask=row_ok[:, None] & (ks < D - d_last)[None, :])
                tl.store(g_rows + ks[None, :], out, mask=m_out)
    if MODE < 2:
        tl.store(val_ptr + part, row_val, mask=row_ok)
