"""Triton kernel of the BiGAN joint layer: one tiled matmul over two K ranges into one accumulator, with the bias +
activation + gain epilogue, and its launch helper.

    out[m, n] = act(sum_k a1[m, k] b1[k, n] + sum_k a2[m, k] b2[k, n] + bias[n]) * gain

Forward: a1 = x, b1 = weight^T, a2 = z, b2 = z_weight^T (transposes are stride swaps, never copies): x W^T and z U^T
meet in the same registers, the bias and the activation are applied before the one store; no temporaries. The
backward's matrix products are the same kernel with act = linear and no second range (fastgan/ops/joint_linear.py),
so the Triton backend is Triton end to end and differentiable to any order.

Accumulation in fp32 (fp64 for fp64). fp32 inputs multiply in IEEE fp32, or TF32 when the caller allows it
(torch.backends.cuda.matmul.allow_tf32, as torch.mm does). The epilogue is the activation table of
kernels/bias_act.py (one source of truth with the C++ kernels). Indexing is int64. Under the interpreter
(TRITON_INTERPRET=1) half tiles are widened to fp32 before the dot (exact products, like the tensor cores) and bf16
stores are rounded to nearest even by the shared _to_out.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from .bias_act import _INTERPRET, _act, _scalar, _to_out

__all__ = ["matmul_act"]


@triton.jit
def _widen(v, ACC_F64: tl.constexpr):
    if ACC_F64:
        r = v
    elif _INTERPRET:
        r = v.to(tl.float32)
    else:
        r = v
    return r


@triton.jit
def _k_range(acc, a_ptr, b_ptr, rm, rn, M, N, K, sam, sak, sbk, sbn, ACC_F64: tl.constexpr, PREC: tl.constexpr,
             BK: tl.constexpr):
    # acc += a[rm, :K] @ b[:K, rn], BK columns of a (rows of b) at a time.
    rk = tl.arange(0, BK).to(tl.int64)
    a_ptrs = a_ptr + rm[:, None] * sam + rk[None, :] * sak
    b_ptrs = b_ptr + rk[:, None] * sbk + rn[None, :] * sbn
    m_ok = rm[:, None] < M
    n_ok = rn[None, :] < N
    for k0 in range(0, K, BK):
        k_ok = (k0 + rk) < K
        a = tl.load(a_ptrs, mask=m_ok & k_ok[None, :], other=0.0)
        b = tl.load(b_ptrs, mask=k_ok[:, None] & n_ok, other=0.0)
        acc = tl.dot(_widen(a, ACC_F64), _widen(b, ACC_F64), acc, input_precision=PREC)
        a_ptrs += BK * sak
        b_ptrs += BK * sbk
    return acc


@triton.jit
def _joint_mm_kernel(out_ptr, a1_ptr, b1_ptr, a2_ptr, b2_ptr, bias_ptr, M, N, K1, K2,
                     sa1m, sa1k, sb1k, sb1n, sa2m, sa2k, sb2k, sb2n, som, son,
                     alpha: tl.float64, gain: tl.float64, ACT: tl.constexpr, HAS_BIAS: tl.constexpr,
                     HAS_2: tl.constexpr, ACC_F64: tl.constexpr, PREC: tl.constexpr, BM: tl.constexpr,
                     BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr):
    # One program computes the tile out[BM rows, BN columns]. Programs are ordered in groups of GROUP_M row tiles
    # that sweep the column tiles together, so the b tiles they share stay in L2.
    pid = tl.program_id(0).to(tl.int64)
    grid_m = tl.cdiv(M, BM)
    grid_n = tl.cdiv(N, BN)
    per_group = GROUP_M * grid_n
    first_m = (pid // per_group) * GROUP_M
    group_m = tl.minimum(grid_m - first_m, GROUP_M)
    pm = first_m + (pid % per_group) % group_m
    pn = (pid % per_group) // group_m
    rm = pm * BM + tl.arange(0, BM).to(tl.int64)
    rn = pn * BN + tl.arange(0, BN).to(tl.int64)

    if ACC_F64:
        acc = tl.zeros([BM, BN], dtype=tl.float64)
    else:
        acc = tl.zeros([BM, BN], dtype=tl.float32)
    acc = _k_range(acc, a1_ptr, b1_ptr, rm, rn, M, N, K1, sa1m, sa1k, sb1k, sb1n, ACC_F64, PREC, BK)
    if HAS_2:
        acc = _k_range(acc, a2_ptr, b2_ptr, rm, rn, M, N, K2, sa2m, sa2k, sb2k, sb2n, ACC_F64, PREC, BK)

    # epilogue: bias, activation, gain, in the accumulator's precision; one rounding at the store
    if HAS_BIAS:
        bv = tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(acc.dtype)
        acc = acc + bv[None, :]
    acc = _act(acc, _scalar(alpha, acc), ACT) * _scalar(gain, acc)
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    tl.store(out_ptr + rm[:, None] * som + rn[None, :] * son, _to_out(acc, out_ptr.dtype.element_ty), mask=mask)


def _tiles(M: int, N: int, K: int, dtype: torch.dtype, interpret: bool) -> tuple[int, int, int, int, int]:
    """(BM, BN, BK, num_warps, num_stages): tl.dot needs tiles of at least 16; the interpreter runs whole tiles as
    numpy arrays, so it gets tiles just large enough for the test sizes."""
    if interpret:
        return 16, 16, 16, 1, 1
    if dtype == torch.float64:
        return 32, 32, 16, 4, 2
    bm = 128 if M >= 128 else 64 if M >= 64 else 32 if M >= 32 else 16
    bn = 128 if N >= 128 else 64 if N >= 64 else 32
    bk = 32 if dtype == torch.float32 else 64
    return bm, bn, bk, 8 if bm * bn >= 128 * 128 else 4, 3


def matmul_act(a1: torch.Tensor, b1: torch.Tensor, a2: torch.Tensor | None, b2: torch.Tensor | None,
               bias: torch.Tensor | None, act_id: int, alpha: float, gain: float) -> torch.Tensor:
    """act(a1 @ b1 (+ a2 @ b2) + bias) * gain: a1 (M, K1), b1 (K1, N), a2 (M, K2), b2 (K2, N), bias (N,), any strides
    (a transposed view costs nothing; a strided bias is made contiguous, N elements). Returns a new contiguous (M, N)
    tensor of a1's dtype. No autograd here."""
    M, K1 = a1.shape
    N = b1.shape[1]
    out = torch.empty((M, N), dtype=a1.dtype, device=a1.device)
    if M == 0 or N == 0:
        return out
    has_2 = a2 is not None and a2.shape[1] > 0
    bias = bias.contiguous() if bias is not None else None  # the kernel reads bias[n] at unit stride
    if not has_2:
        a2, b2 = a1, b1
    interpret = a1.device.type == "cpu"
    bm, bn, bk, warps, stages = _tiles(M, N, K1 + (a2.shape[1] if has_2 else 0), a1.dtype, interpret)
    prec = "tf32" if (a1.dtype == torch.float32 and not interpret and torch.backends.cuda.matmul.allow_tf32) else "ieee"
    grid = (triton.cdiv(M, bm) * triton.cdiv(N, bn),)
    # A bare `wrap_triton(<kernel name>)` call: the pattern torch's get_inner_triton_kernels recognises.
    wrap_triton(_joint_mm_kernel)[grid](
        out, a1, b1, a2, b2, bias if bias is not None else out, M, N, K1, a2.shape[1] if has_2 else 0,
        a1.stride(0), a1.stride(1), b1.stride(0), b1.stride(1), a2.stride(0), a2.stride(1), b2.stride(0),
        b2.stride(1), out.stride(0), out.stride(1), float(alpha), float(gain), ACT=int(act_id),
        HAS_BIAS=bias is not None, HAS_2=has_2, ACC_F64=a1.dtype == torch.float64, PREC=prec, BM=bm, BN=bn, BK=bk,
        GROUP_M=8, num_warps=warps, num_stages=stages)
    return out
