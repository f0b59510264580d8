"""Triton kernel of the BiGAN joint layer: one tiled matmul over two K ranges into one accumulator, with the bias +
activation + gain epilogue, and its launch helper.

    out[m, n] = act(sum_k a1[m, k] b1[k, n] + sum_k a2[m, k] b2[k, n] + bias[n]) * gain

Forward: a1 = x, b1 = weight^T, a2 = z, b2 = z_weight^T (transposes are stride swaps, never copies): x W^T and z U^T
meet in the same registers, the bias and the activation are applied before the one store; no temporaries. The
backward's matrix products are the same kernel with act = linear and no second range (fastgan/ops/joint_linear.py),
so the Triton backend is Triton end to end and differentiable to any order.

Accumulation in fp32 (fp64 for fp64). fp32 inputs multiply in IEEE fp32, or TF32 when the caller allows it: the
PREC constexpr of every launch is `precision(dtype)`, "tf32" exactly when torch.backends.cuda.matmul.allow_tf32 is
set (read at each call, as torch.mm does; off by default) for fp32 on the GPU, "ieee" otherwise. The epilogue is the
activation table of kernels/_math.py (one source of truth with the C++ kernels). Indexing is int64. Under the
interpreter (TRITON_INTERPRET=1) half tiles are widened to fp32 before the dot (exact products, like the tensor
cores) and bf16 stores are rounded to nearest even by the shared _to_out.

GPU shape (docs/design.md, "GPU shape"): `config(M, N, K, ...)` is the one configuration function of matmul_act and of
static_variants (bench/static_report.py compiles those for sm_90 and reports registers, spills and waves). It takes
the largest spill-free tile whose grid has >= 132 programs (an H100's SMs); when even the smallest tile gives fewer
(e.g. B = 128 rows x 1024 columns: 32 tiles of 64 x 64), it splits the joint K axis into up to 16 chunks of >= 3 BK
steps: program (tile, s) writes its fp32 / fp64 partial to a (SPLIT, M, N) workspace and _splitk_epilogue_kernel adds
the chunks in the fixed order s = 0, 1, ... before the bias / activation / gain epilogue (deterministic, no atomics).
At the benchmark shapes (fp32, IEEE): B = 128 forward and dX: 64 x 64 x 16 tiles, 8 warps, split-K 5 = 160 programs;
B = 4096 forward and dX: 64 x 128 x 16, 512 programs; dW (1024 x 1024): 64 x 64, 256 programs. Every launch runs
under its tensors' device guard (kernels/_launch.py: device_guard).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from ..activations import ACTIVATIONS
from ._launch import COMPILE_DTYPES, SM_COUNT, concrete, device_guard, generic_variant, launch_spec, wrap_triton
from ._math import _INTERPRET, _act, _scalar, _to_out

__all__ = ["matmul_act", "config", "precision", "static_variants"]


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
def _k_range(acc, a_ptr, b_ptr, rm, rn, M, N, lo, hi, sam, sak, sbk, sbn, ACC_F64: tl.constexpr, PREC: tl.constexpr,
             BK: tl.constexpr):
    # acc += a[rm, lo:hi] @ b[lo:hi, rn], BK columns of a (rows of b) at a time.
    rk = tl.arange(0, BK).to(tl.int64)
    a_ptrs = a_ptr + rm[:, None] * sam + (lo + rk[None, :]) * sak
    b_ptrs = b_ptr + (lo + rk[:, None]) * sbk + rn[None, :] * sbn
    m_ok = rm[:, None] < M
    n_ok = rn[None, :] < N
    for k0 in range(lo, hi, BK):
        k_ok = (k0 + rk) < hi
        a = tl.load(a_ptrs, mask=m_ok & k_ok[None, :], other=0.0)
        b = tl.load(b_ptrs, mask=k_ok[:, None] & n_ok, other=0.0)
        # (out_dtype: Triton 3.6 takes an fp64 accumulator only when told so; later versions infer it)
        acc = tl.dot(_widen(a, ACC_F64), _widen(b, ACC_F64), acc, input_precision=PREC,
                     out_dtype=acc.dtype)
        a_ptrs += BK * sak
        b_ptrs += BK * sbk
    return acc


@triton.jit
def _joint_mm_kernel(out_ptr, a1_ptr, b1_ptr, a2_ptr, b2_ptr, bias_ptr, M, N, K1, K2, KS,
                     sa1m, sa1k, sb1k, sb1n, sa2m, sa2k, sb2k, sb2n, som, son, sos,
                     alpha: tl.float64, gain: tl.float64, ACT: tl.constexpr, HAS_BIAS: tl.constexpr,
                     HAS_2: tl.constexpr, ACC_F64: tl.constexpr, PREC: tl.constexpr, SPLIT: tl.constexpr,
                     BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr):
    # Program (pid, ps) computes the tile out[BM rows, BN columns] over the ps-th chunk [ps KS, (ps + 1) KS) of the
    # joint K axis (K1 columns of a1, then K2 of a2). Programs are ordered in groups of GROUP_M row tiles that sweep
    # the column tiles together, so the b tiles they share stay in L2. SPLIT: the fp32 / fp64 partial sum goes to
    # out + ps * sos (a workspace; _splitk_epilogue_kernel adds the chunks in order and applies the epilogue);
    # otherwise (one chunk) the epilogue runs here.
    pid = tl.program_id(0)
    ps = tl.program_id(1)
    grid_m = tl.cdiv(M, BM)
    grid_n = tl.cdiv(N, BN)
    per_group = GROUP_M * grid_n
    first_m = (pid // per_group) * GROUP_M
    group_m = tl.minimum(grid_m - first_m, GROUP_M)
    pm = first_m + (pid % per_group) % group_m
    pn = (pid % per_group) // group_m
    rm = pm.to(tl.int64) * BM + tl.arange(0, BM)
    rn = pn.to(tl.int64) * BN + tl.arange(0, BN)

    if ACC_F64:
        acc = tl.zeros([BM, BN], dtype=tl.float64)
    else:
        acc = tl.zeros([BM, BN], dtype=tl.float32)
    lo = ps * KS
    hi = tl.minimum(lo + KS, K1 + K2)
    acc = _k_range(acc, a1_ptr, b1_ptr, rm, rn, M, N, tl.minimum(lo, K1), tl.minimum(hi, K1), sa1m, sa1k, sb1k,
                   sb1n, ACC_F64, PREC, BK)
    if HAS_2:
        acc = _k_range(acc, a2_ptr, b2_ptr, rm, rn, M, N, tl.maximum(lo, K1) - K1, tl.maximum(hi, K1) - K1, sa2m,
                       sa2k, sb2k, sb2n, ACC_F64, PREC, BK)

    mask = (rm[:, None] < M) & (rn[None, :] < N)
    if SPLIT:
        tl.store(out_ptr + ps.to(tl.int64) * sos + rm[:, None] * som + rn[None, :] * son, acc, mask=mask)
    else:
        # epilogue: bias, activation, gain, in the accumulator's precision; one rounding at the store
        if HAS_BIAS:
            bv = tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(acc.dtype)
            acc = acc + bv[None, :]
        acc = _act(acc, _scalar(alpha, acc), ACT) * _scalar(gain, acc)
        tl.store(out_ptr + rm[:, None] * som + rn[None, :] * son, _to_out(acc, out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _splitk_epilogue_kernel(out_ptr, part_ptr, bias_ptr, MN, N, S, alpha: tl.float64, gain: tl.float64,
                            ACT: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr):
    # out[i] = act(sum_{s = 0 .. S-1} part[s, i] + bias[i % N]) * gain over the contiguous (M, N) output, the chunks
    # added in the fixed order s = 0, 1, ...: deterministic, no atomics.
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < MN
    acc = tl.load(part_ptr + i, mask=ok, other=0.0)
    for s in range(1, S):
        acc += tl.load(part_ptr + s * MN + i, mask=ok, other=0.0)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + i % N, mask=ok, other=0.0).to(acc.dtype)
    acc = _act(acc, _scalar(alpha, acc), ACT) * _scalar(gain, acc)
    tl.store(out_ptr + i, _to_out(acc, out_ptr.dtype.element_ty), mask=ok)


EPILOGUE_BLOCK = 1024
EPILOGUE_WARPS = 4


class Config(NamedTuple):
    """Tiles BM x BN x BK, warps, pipeline stages; SPLIT chunks of KS along the joint K axis (SPLIT = 1: none)."""
    BM: int
    BN: int
    BK: int
    num_warps: int
    num_stages: int
    SPLIT: int
    KS: int

    def tiles(self, M: int, N: int) -> int:
        return triton.cdiv(M, self.BM) * triton.cdiv(N, self.BN)

    def grid(self, M: int, N: int) -> tuple[int, int]:
        return (self.tiles(M, N), self.SPLIT)


# Tile candidates per operand precision, largest first: (BM, BN, BK, warps, stages). "ieee": fp32 on the FMA units
# (tl.dot with IEEE fp32 products: BK = 16 and 8 warps keep the operand slices in registers; 128 x 128 spills at
# sm_90, as does 64 x 64 with 4 warps on the two-range forward); "tf32" and "half" (fp16 / bf16): wgmma on sm_90
# (half 128 x 128 with BK = 64 spills; BK = 32 does not); "fp64": DFMA. Checked spill-free by
# bench/static_report.py at the benchmark shapes (bench/results/static-sm90.md).
_CANDIDATES = {
    "ieee": ((64, 128, 16, 8, 3), (64, 64, 16, 8, 3)),
    "tf32": ((128, 128, 32, 8, 3), (64, 64, 32, 4, 3)),
    "half": ((128, 128, 32, 8, 3), (64, 64, 64, 4, 3)),
    "fp64": ((32, 32, 16, 4, 2),),
}
MAX_SPLIT = 16
MIN_CHUNK_STEPS = 3  # a split-K chunk is at least 3 BK steps long (num_stages: the pipeline fills)


def precision(dtype: torch.dtype, interpret: bool) -> str:
    """The PREC constexpr: "tf32" exactly when torch.mm would use TF32 (fp32 inputs on the GPU and
    torch.backends.cuda.matmul.allow_tf32), "ieee" otherwise (fp32 products exact; half and fp64 ignore it)."""
    return "tf32" if (dtype == torch.float32 and not interpret and torch.backends.cuda.matmul.allow_tf32) else "ieee"


def config(M: int, N: int, K: int, dtype: torch.dtype, prec: str, interpret: bool) -> Config:
    """The tiles of an (M, N) output over a joint K axis of length K: the one configuration function of matmul_act
    and static_variants. The largest candidate tile whose grid has >= SM_COUNT programs; failing that the smallest
    candidate, and the K axis split into chunks (a multiple of BK, >= MIN_CHUNK_STEPS steps, <= MAX_SPLIT of them)
    until the grid has >= SM_COUNT programs or K allows no more. The interpreter runs whole tiles as numpy arrays: it
    gets 16 x 16 x 16 tiles (and the same split rule)."""
    if interpret:
        cands = ((16, 16, 16, 1, 1),)
    elif dtype == torch.float64:
        cands = _CANDIDATES["fp64"]
    elif dtype in (torch.float16, torch.bfloat16):
        cands = _CANDIDATES["half"]
    else:
        cands = _CANDIDATES[prec]
    for bm, bn, bk, warps, stages in cands:
        if triton.cdiv(M, bm) * triton.cdiv(N, bn) >= SM_COUNT:
            return Config(bm, bn, bk, warps, stages, 1, max(K, 1))
    tiles = triton.cdiv(M, bm) * triton.cdiv(N, bn)
    want = min(MAX_SPLIT, triton.cdiv(SM_COUNT, tiles), max(1, K // (MIN_CHUNK_STEPS * bk)))
    ks = triton.cdiv(triton.cdiv(K, want), bk) * bk if want > 1 else max(K, 1)
    return Config(bm, bn, bk, warps, stages, triton.cdiv(K, ks) if want > 1 else 1, ks)


def matmul_act(a1: torch.Tensor, b1: torch.Tensor, a2: torch.Tensor | None, b2: torch.Tensor | None,
               bias: torch.Tensor | None, act_id: int, alpha: float, gain: float, cfg: Config | None = None
               ) -> torch.Tensor:
    """act(a1 @ b1 (+ a2 @ b2) + bias) * gain: a1 (M, K1), b1 (K1, N), a2 (M, K2), b2 (K2, N), bias (N,), any strides
    (a transposed view costs nothing; a strided bias is made contiguous, N elements). Returns a new contiguous (M, N)
    tensor of a1's dtype. No autograd here. cfg: the tiles (default: config(...); tests force split-K with it)."""
    M, K1, N = concrete(*a1.shape, b1.shape[1])
    out = torch.empty((M, N), dtype=a1.dtype, device=a1.device)
    if M == 0 or N == 0:
        return out
    K2 = concrete(a2.shape[1])[0] if a2 is not None else 0
    has_2 = K2 > 0
    bias = bias.contiguous() if bias is not None else None  # the kernels read bias[n] at unit stride
    if not has_2:
        a2, b2 = a1, b1
    interpret = a1.device.type == "cpu"
    prec = precision(a1.dtype, interpret)
    if cfg is None:
        cfg = config(M, N, K1 + K2, a1.dtype, prec, interpret)
    split = cfg.SPLIT > 1
    acc_dtype = torch.float64 if a1.dtype == torch.float64 else torch.float32
    dst = torch.empty((cfg.SPLIT, M, N), dtype=acc_dtype, device=a1.device) if split else out
    with device_guard(a1):
        # A bare `wrap_triton(<kernel name>)` call: the pattern torch's get_inner_triton_kernels recognises.
        wrap_triton(_joint_mm_kernel)[cfg.grid(M, N)](
            dst, a1, b1, a2, b2, bias if bias is not None else out, M, N, K1, K2, cfg.KS,
            *concrete(*a1.stride(), *b1.stride(), *a2.stride(), *b2.stride(), dst.stride(-2), dst.stride(-1)),
            M * N if split else 0, float(alpha), float(gain),
            ACT=int(act_id), HAS_BIAS=bias is not None, HAS_2=has_2, ACC_F64=a1.dtype == torch.float64, PREC=prec,
            SPLIT=split, BM=cfg.BM, BN=cfg.BN, BK=cfg.BK, GROUP_M=8, num_warps=cfg.num_warps,
            num_stages=cfg.num_stages)
        if split:
            wrap_triton(_splitk_epilogue_kernel)[(triton.cdiv(M * N, EPILOGUE_BLOCK),)](
                out, dst, bias if bias is not None else out, M * N, N, cfg.SPLIT, float(alpha), float(gain),
                ACT=int(act_id), HAS_BIAS=bias is not None, BLOCK=EPILOGUE_BLOCK, num_warps=EPILOGUE_WARPS)
    return out


# ---- the static sm_90 report (bench/static_report.py) and the compile check (.ci/triton_check.py) ----
def _case(name, shape, M, N, K1, K2, strides, dtype, prec, act, has_bias, hot):
    """The launches of matmul_act for one GEMM (strides: sa1m, sa1k, sb1k, sb1n, sa2m, sa2k, sb2k, sb2n)."""
    cfg = config(M, N, K1 + K2, dtype, prec, False)
    split = cfg.SPLIT > 1
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    values = dict(out_ptr=acc if split else dtype, a1_ptr=dtype, b1_ptr=dtype, a2_ptr=dtype, b2_ptr=dtype,
                  bias_ptr=dtype, M=M, N=N, K1=K1, K2=K2, KS=cfg.KS, som=N, son=1, sos=M * N if split else 0,
                  alpha=0.2, gain=1.0)
    values.update(zip(("sa1m", "sa1k", "sb1k", "sb1n", "sa2m", "sa2k", "sb2k", "sb2n"), strides))
    act_id = ACTIVATIONS[act].id
    consts = dict(ACT=act_id, HAS_BIAS=has_bias, HAS_2=K2 > 0, ACC_F64=dtype == torch.float64, PREC=prec,
                  SPLIT=split, BM=cfg.BM, BN=cfg.BN, BK=cfg.BK, GROUP_M=8)
    sig, consts, attrs = launch_spec(_joint_mm_kernel, values, consts)
    tile = f"{cfg.BM}x{cfg.BN}x{cfg.BK}" + (f" split-K {cfg.SPLIT}x{cfg.KS}" if split else "")
    yield dict(name=f"joint_linear {name} [{tile}]", kernel=_joint_mm_kernel, signature=sig, constexprs=consts,
               attrs=attrs, options=dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages), grid=cfg.grid(M, N),
               shape=shape, hot=hot)
    if split:
        values = dict(out_ptr=dtype, part_ptr=acc, bias_ptr=dtype, MN=M * N, N=N, S=cfg.SPLIT, alpha=0.2, gain=1.0)
        sig, consts, attrs = launch_spec(_splitk_epilogue_kernel, values,
                                         dict(ACT=act_id, HAS_BIAS=has_bias, BLOCK=EPILOGUE_BLOCK))
        yield dict(name=f"joint_linear {name} [split-K epilogue]", kernel=_splitk_epilogue_kernel, signature=sig,
                   constexprs=consts, attrs=attrs, options=dict(num_warps=EPILOGUE_WARPS, num_stages=3),
                   grid=(triton.cdiv(M * N, EPILOGUE_BLOCK),), shape=shape, hot=hot)


def static_variants():
    """The kernel's launches at the benchmark shapes (bench/bench_joint_linear.py: B in {128, 4096}, in = out = 1024,
    zdim = 50; bench/bench_train_step.py's joint critic 784 -> 1024 -> 1024 -> 1 at B = 128), configured by `config`
    as matmul_act configures them and specialised by launch_spec: the forward of each layer and the four products
    of its backward (dX = dA W, dZ = dA U, dW = dA^T x, dU = dA^T z), fp32 (IEEE, the default, and TF32), the bf16
    forward (autocast) and one fp64 product (gradcheck only: not hot)."""
    f32, zd = torch.float32, 50
    for b in (128, 4096):
        for i in ((784, 1024) if b == 128 else (1024,)):
            fwd = (i, 1, 1, i, zd, 1, 1, zd)  # x, weight^T, z, z_weight^T
            yield from _case(f"fwd B={b} in={i}", f"{b}x({i}+{zd})->1024", b, 1024, i, zd, fwd, f32, "ieee",
                             "lrelu", True, True)
        yield from _case(f"dX B={b}", f"{b}x1024 @ 1024x1024", b, 1024, 1024, 0, (1024, 1, 1024, 1, 0, 0, 0, 0),
                         f32, "ieee", "linear", False, True)
        yield from _case(f"dW B={b}", f"(1024x{b}) @ {b}x1024", 1024, 1024, b, 0, (1, 1024, 1024, 1, 0, 0, 0, 0),
                         f32, "ieee", "linear", False, True)
    yield from _case("dZ B=128", "128x1024 @ 1024x50", 128, zd, 1024, 0, (1024, 1, zd, 1, 0, 0, 0, 0), f32, "ieee",
                     "linear", False, True)
    yield from _case("dU B=128", "(50x128) @ 128x1024", 1024, zd, 128, 0, (1, 1024, zd, 1, 0, 0, 0, 0), f32, "ieee",
                     "linear", False, True)
    yield from _case("fwd out=1 B=128", "128x(1024+50)->1", 128, 1, 1024, zd, (1024, 1, 1, 1024, zd, 1, 1, zd), f32,
                     "ieee", "linear", True, True)
    yield from _case("fwd tf32 B=128", "128x(1024+50)->1024", 128, 1024, 1024, zd, (1024, 1, 1, 1024, zd, 1, 1, zd),
                     f32, "tf32", "lrelu", True, True)
    yield from _case("fwd tf32 B=4096", "4096x(1024+50)->1024", 4096, 1024, 1024, zd,
                     (1024, 1, 1, 1024, zd, 1, 1, zd), f32, "tf32", "lrelu", True, True)
    for b in (128, 4096):
        yield from _case(f"fwd bf16 B={b}", f"{b}x(1024+50)->1024", b, 1024, 1024, zd,
                         (1024, 1, 1, 1024, zd, 1, 1, zd), torch.bfloat16, "ieee", "lrelu", True, True)
    yield from _case("fwd fp64 B=128", "128x(1024+50)->1024", 128, 1024, 1024, zd,
                     (1024, 1, 1, 1024, zd, 1, 1, zd), torch.float64, "ieee", "lrelu", True, False)


def generic_variants():
    """The compile check's dtype x precision x activation coverage (.ci/triton_check.py), generic scalars."""
    scalars = dict.fromkeys(("M", "N", "K1", "K2", "KS", "sa1m", "sa1k", "sb1k", "sb1n", "sa2m", "sa2k", "sb2k",
                             "sb2n", "som", "son", "sos"), "i64") | {"alpha": "fp64", "gain": "fp64"}
    ptrs = ("out_ptr", "a1_ptr", "b1_ptr", "a2_ptr", "b2_ptr", "bias_ptr")
    for dt, dtype in COMPILE_DTYPES:
        for prec in (("ieee", "tf32") if dt == "fp32" else ("ieee",)):
            for m in (16, 4096):
                cfg = config(m, 1024, 1074, dtype, prec, False)
                for act in ("lrelu", "linear"):
                    consts = dict(ACT=ACTIVATIONS[act].id, HAS_BIAS=act == "lrelu", HAS_2=act == "lrelu",
                                  ACC_F64=dt == "fp64", PREC=prec, SPLIT=cfg.SPLIT > 1, BM=cfg.BM, BN=cfg.BN,
                                  BK=cfg.BK, GROUP_M=8)
                    yield generic_variant(f"joint_linear {dt} {prec} {act} M={m}", _joint_mm_kernel, ptrs, dt,
                                          scalars, consts, dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages),
                                          wide=("out_ptr",) if consts["SPLIT"] else ())
