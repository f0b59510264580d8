"""Triton kernels of kernel_sum (the building block of MMD) and of its second derivative, and their launch helpers.

The pair matrix is cut into a 2-D grid: program (i, s) owns a block of BM rows of `a` and split s, a contiguous range
of column tiles (BN rows of `b` each) — the splits divide the cdiv(NB, BN) tiles as evenly as they can. It walks its
tiles and never holds more than a BM x BN tile of the pair matrix:

    MODE 0/1  per row i of a: sum_j sum_s w_s k_s(|a_i - b_j|^2) over the split's columns;
              MODE 1 also  g_i = fac1 (rowsum_i(C) a_i - (C b)_i),  C = sum_s w_s k_s'(r2), over the split's columns
    MODE 2    out_i = fac1 (rowsum_i(C) p_i - (C q)_i) + fac2 (rowsum_i(Q) a_i - (Q b)_i),
              Q_ij = (sum_s w_s k_s''(r2_ij)) (p_i - q_j).(a_i - b_j), over the split's columns

Every output is linear in the pairs, so each program writes its own finished partials to a scratch slice [s, rows]
of buffers of shape (splits, NA) and (splits, NA, D), and the host sums them over the split axis afterwards (a torch
sum: fixed order, deterministic, no atomics). Inside a program the (C b) sums accumulate in its slice, column tile by
column tile (the first tile stores, later ones load and add), and the last tile combines them with the row sums as it
stores: no second pass over the slice, no zero fill. The number of splits comes from pick_config (below), the one
function that the launcher and static_variants() (the compile report's contract) share: enough programs for a full
wave of the GPU's SMs at small batches, one split where the row blocks alone fill the GPU.

The distances come from tl.dot tiles over the feature dimension in chunks of BD (IEEE fp32 or fp64: never TF32,
whose 10-bit mantissa would wreck |a|^2 + |b|^2 - 2 a.b), on rows centred by the host (the cancellation guard of the
C++ kernel). The gradient of b is the same kernel with the roles of a and b swapped (the host launches it); a
self-sum walks the full square with the pairs (i, i) masked out when the diagonal is excluded.

The laplacian kernels (3: euclidean, 4: l1; p = 1 / s) take their distances from direct differences (a BM x BN x BD
block per feature chunk, exact at zero distance, where their gradient is defined as 0) and accumulate the gradient as
sum_j c_ij f(a_i - b_j) directly (f = identity / dist or sign); first order only.

The poly kernel (5: p = the scale g of the dot product, k = (g t + OFF)^DEG of t = a_i.b_j, DEG a constexpr) is a
function of the dot product, not of the distance: its rows are not centred (it is not translation invariant), the
tile's argument is the dot product itself, and its gradients have no row-sum terms:

    MODE 1    g_i = fac1 (C b)_i                         C = sum_s w_s dk_s/dt
    MODE 2    out_i = fac1 (C q)_i + fac2 (Q b)_i        Q_ij = (sum_s w_s d2k_s/dt2) (p_i.b_j + a_i.q_j)

and the pairs (i, i) of a self-sum count in every mode when DIAG (their terms do not vanish).

The mixture's parameters and weights are scalar kernel arguments (fp64, rounded in the kernel to the compute type),
NS_MAX of them per launch: no tensor is built from Python numbers per call (a pageable host-to-device copy, a stream
sync). A mixture of more bandwidths is summed over launches of NS_MAX bandwidths each (every output is linear in the
weights). Every launch runs under the tensors' device guard, on the current stream; nothing reads a device value on
the host.

Elementary functions: kernels/_math.py's _exp / _log (libdevice on the GPU, fp64 numpy under the interpreter).
The kernel table is that of csrc/include/fastgan/pair_math.h: 0 gaussian (p = 1 / 2s^2), 1 rq (p = a),
2 imq (p = s^2), 3 / 4 laplacians (p = 1 / s), 5 poly (p = g).
"""
from __future__ import annotations

import functools
from typing import Iterator, NamedTuple

import torch
import triton

from ._kernel_sum_jit import _pair_kernel
from ._launch import concrete, device_guard, wrap_triton

__all__ = ["kernel_sum", "kernel_sum_backward2", "KERNEL_IDS", "NS_MAX", "Config", "pick_config", "static_variants"]

KERNEL_IDS = {"gaussian": 0, "rq": 1, "imq": 2, "laplacian": 3, "laplacian_l1": 4, "poly": 5}
DIRECT_IDS = (3, 4)  # the laplacians: distances from direct differences, first order only
POLY = 5
NS_MAX = 8  # bandwidths per launch (scalar arguments p0..p7, w0..w7); more are summed over launches
MAX_SPLITS = 32  # column splits per row block (the partial buffers hold at most this many slices)
H100_SMS = 132  # the SM count of the benchmark GPU (the static report, and CPU tensors under the interpreter)
# The extra bytes the gradient partials of one launch may take beyond its output (splits - 1 slices of NA x D): a
# bound on the split count that only binds at large D; at the benchmark shapes the buffers stay a few MiB.
PARTIAL_BYTES = 64 << 20
# Tests only: force this many splits (capped at the column tiles) to exercise uneven splits under the interpreter.
_SPLITS_OVERRIDE: int | None = None


# ---- configuration: one function for the launcher and the static report ----
class Config(NamedTuple):
    bm: int
    bn: int
    bd: int
    num_warps: int
    num_stages: int
    splits: int

    @property
    def tiles(self) -> tuple[int, int, int, int, int]:
        return self.bm, self.bn, self.bd, self.num_warps, self.num_stages


# (BM, BN, BD, num_warps, num_stages), preferred first, per (family, compute type, second order): tl.dot needs tiles
# of at least 16. Every fp32 entry compiles for sm_90 without register spills (ptxas as Triton 3.9 invokes it) for each
# kernel of its family in the modes it serves; see static_variants(). In MODE 1 the (C b) product's inner dimension is
# BN and Triton's FMA dot (IEEE fp32 / fp64: no tensor cores) holds a thread's operand rows over all of it in
# registers: BN = 64 spilled (464 B at 64 x 64 x 32, 2 KB for rq), and 64 x 32 x 32 still spilled 8 B (imq, the
# cross sum); MODE 2 has two such products, hence BD = 16 there. The laplacians' direct differences hold a
# BM x BN x BD block. fp64 (gradcheck only, not hot) spills in
# MODE 1 / 2 for rq and imq (76-608 B) and the laplacians' MODE 1 (8-24 B; 192 B for l1 at 32 x 32).
_TILES = {
    ("smooth", "fp32", False): ((64, 32, 16, 4, 1), (32, 32, 16, 4, 1), (16, 32, 32, 2, 1), (16, 16, 32, 1, 1)),
    ("smooth", "fp32", True): ((32, 32, 16, 4, 1), (16, 16, 16, 1, 1)),
    ("smooth", "fp64", False): ((32, 32, 16, 4, 1), (16, 32, 16, 2, 1), (16, 16, 16, 1, 1)),
    ("smooth", "fp64", True): ((32, 32, 16, 4, 1), (16, 16, 16, 1, 1)),
    ("direct", "fp32", False): ((32, 32, 8, 4, 1), (16, 32, 8, 4, 1), (16, 16, 8, 2, 1)),
    ("direct", "fp64", False): ((32, 32, 8, 4, 1), (16, 32, 8, 4, 1), (16, 16, 8, 2, 1)),
}
_INTERPRET_TILES = ((16, 16, 16, 1, 1),)  # the interpreter runs a program at a time: small tiles, fewer masked lanes


def pick_config(NA: int, NB: int, D: int, dtype: torch.dtype, kernel_id: int, mode: int, *, interpret: bool = False,
                sms: int = H100_SMS) -> Config:
    """The tiles and the number of column splits of one launch of _pair_kernel (a rows, b columns, D features).

    The first tile shape (largest first) whose grid cdiv(NA, BM) x splits reaches `sms` programs (one full wave)
    with splits <= min(MAX_SPLITS, column tiles, the PARTIAL_BYTES bound) wins, with the fewest splits that reach
    it; where none reaches it (tiny batches), the shape with the most programs. Row blocks alone that fill the GPU
    give one split: no partial buffer beyond the output."""
    ct = "fp64" if dtype == torch.float64 else "fp32"
    family = "direct" if kernel_id in DIRECT_IDS else "smooth"
    cands = _INTERPRET_TILES if interpret else _TILES[(family, ct, mode == 2 and family == "smooth")]
    esize = 8 if ct == "fp64" else 4
    best = None
    for bm, bn, bd, warps, stages in cands:
        rb = triton.cdiv(max(NA, 1), bm)
        n_tiles = triton.cdiv(NB, bn)
        cap = min(MAX_SPLITS, max(n_tiles, 1))
        if mode >= 1:  # (splits - 1) extra slices of NA x D (two buffers in MODE 2)
            slice_bytes = max(NA * D * esize * (2 if mode == 2 else 1), 1)
            cap = max(1, min(cap, 1 + PARTIAL_BYTES // slice_bytes))
        if _SPLITS_OVERRIDE is not None:
            splits = max(1, min(_SPLITS_OVERRIDE, max(n_tiles, 1)))
            return Config(bm, bn, bd, warps, stages, splits)
        splits = min(cap, triton.cdiv(sms, rb))
        cfg = Config(bm, bn, bd, warps, stages, splits)
        if rb * splits >= sms:
            return cfg
        if best is None or rb * splits > best[0]:
            best = (rb * splits, cfg)
    return best[1]


def _grid(NA: int, cfg: Config) -> tuple[int, int]:
    return triton.cdiv(NA, cfg.bm), cfg.splits


# ---- launch helpers ----
def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _centred(x: torch.Tensor, y: torch.Tensor | None, centre: bool = True):
    """x and y (or None) minus their common mean, contiguous, in the compute type (the cancellation guard);
    centre=False (poly, not translation invariant): as given."""
    ct = _compute_dtype(x.dtype)
    xc = x.to(ct)
    yc = None if y is None else y.to(ct)
    cnt = x.shape[0] + (0 if y is None else y.shape[0])
    if cnt and centre:
        mean = xc.sum(0) if y is None else xc.sum(0) + yc.sum(0)
        mean = mean / cnt
        xc = xc - mean
        yc = None if yc is None else yc - mean
    return xc.contiguous(), (None if yc is None else yc.contiguous())


def _params(kernel: str, bandwidths, weights) -> tuple[list[tuple[list[float], list[float]]], int]:
    """The mixture as Python floats, in launches of at most NS_MAX bandwidths: ([(p's, w's), ...], kernel id)."""
    if kernel == "gaussian":
        p = [1.0 / (2.0 * s * s) for s in bandwidths]
    elif kernel == "rq":
        p = [float(s) for s in bandwidths]
    elif kernel == "imq":
        p = [s * s for s in bandwidths]
    elif kernel == "poly":  # the scales of the dot product
        p = [float(s) for s in bandwidths]
    else:  # laplacians
        p = [1.0 / s for s in bandwidths]
    w = [float(v) for v in weights]
    if not p or len(p) != len(w):
        raise ValueError(f"bandwidths: expected a non-empty sequence with one weight each, got {len(p)} bandwidths "
                         f"and {len(w)} weights")
    return [(p[i:i + NS_MAX], w[i:i + NS_MAX]) for i in range(0, len(p), NS_MAX)], KERNEL_IDS[kernel]


def _scalars(ps: list[float], ws: list[float]) -> list[float]:
    pad = NS_MAX - len(ps)
    return ps + [1.0] * pad + ws + [0.0] * pad


def _launch(mode, a, b, na, nb, params, kernel_id, self_sum, diagonal, fac1=0.0, fac2=0.0, pu=None, qv=None,
            pa=None, qb=None, poly=(1, 0.0)):
    """(per-row value partials (splits, NA), the gradient (NA, D) or None) of one mixture chunk."""
    NA, D, NB = concrete(*a.shape, b.shape[0])
    interpret = a.device.type == "cpu"
    cfg = pick_config(NA, NB, D, a.dtype, kernel_id, mode, interpret=interpret,
                      sms=H100_SMS if interpret else _sm_count(a.device.index if a.device.index is not None
                                                                else torch.cuda.current_device()))
    if NA == 0 or NB == 0:  # no pairs: zero sums and gradients
        return a.new_zeros([1, NA]), (torch.zeros_like(a) if mode >= 1 else None)
    S = cfg.splits
    val = a.new_empty([S, NA])
    g = a.new_empty([S, NA, D]) if mode >= 1 else val
    g2 = a.new_empty([S, NA, D]) if mode == 2 and triton.cdiv(NB, cfg.bn) > S else g  # scratch: 2+ tiles a split
    ps, ws = params
    with device_guard(a):
        wrap_triton(_pair_kernel)[_grid(NA, cfg)](
            a, b, na, nb, val, g, g2, pu if pu is not None else a, qv if qv is not None else b,
            pa if pa is not None else na, qb if qb is not None else nb, NA, NB, D, S, float(fac1), float(fac2),
            *_scalars(ps, ws), float(poly[1]), KERNEL=int(kernel_id), NS=len(ps), MODE=int(mode),
            SELF=bool(self_sum), DIAG=bool(diagonal), PREC="ieee", BM=cfg.bm, BN=cfg.bn, BD=cfg.bd,
            DEG=int(poly[0]) if kernel_id == POLY else 1, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    if mode == 0:
        return val, None
    return val, (g[0] if S == 1 else g.sum(0))


def _row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(1)


def _add(acc, t):
    return t if acc is None else acc + t


def kernel_sum(x, y, kernel, bandwidths, weights, diagonal, grad_x, grad_y, degree=3, offset=1.0):
    """(S, dS/dx or [0], dS/dy or [0]) as fastgan::kernel_sum (arguments checked by the caller)."""
    chunks, kid = _params(kernel, bandwidths, weights)
    self_sum = y is None
    xc, yc = _centred(x, y, centre=kid != POLY)
    b = xc if self_sum else yc
    nx = _row_dot(xc, xc)
    nb = nx if self_sum else _row_dot(yc, yc)
    # laplacians and poly: the gradient is accumulated as it is (no row-sum combination), factor 1 / 2
    direct = kid >= 3
    poly = (degree, offset)
    value = gx = gy = None
    for params in chunks:
        rows, g = _launch(1 if grad_x else 0, xc, b, nx, nb, params, kid, self_sum, diagonal,
                          fac1=(2.0 if self_sum else 1.0) if direct else (4.0 if self_sum else 2.0), poly=poly)
        value = _add(value, rows.sum(dtype=torch.float64))
        gx = _add(gx, g) if grad_x else None
        if grad_y and not self_sum:
            gy = _add(gy, _launch(1, yc, xc, nb, nx, params, kid, False, True, fac1=1.0 if direct else 2.0,
                                  poly=poly)[1])
    half = x.dtype in (torch.float16, torch.bfloat16)  # the sum in fp32 for half inputs, as the C++ op
    value = value.to(torch.float32 if half else x.dtype)
    gx = gx.to(x.dtype) if grad_x else x.new_empty([0])
    gy = gy.to(x.dtype) if (grad_y and not self_sum) else x.new_empty([0])
    return value, gx, gy


def kernel_sum_backward2(x, y, u, v, kernel, bandwidths, weights, grad_x, grad_y, diagonal=True, degree=3,
                         offset=1.0):
    """(d/dx, d/dy) of <u, dS/dx> + <v, dS/dy>, as fastgan::kernel_sum_backward2."""
    chunks, kid = _params(kernel, bandwidths, weights)
    if kid in DIRECT_IDS:
        raise NotImplementedError(f"fastgan.kernel_sum: second-order derivatives of the {kernel} kernel are not "
                                  "implemented (it is not twice differentiable at zero distance); use a smooth kernel "
                                  "(gaussian, rq, imq, poly) for gradient penalties through an MMD")
    self_sum = y is None
    ct = _compute_dtype(x.dtype)
    xc, yc = _centred(x, y, centre=kid != POLY)
    uc = u.to(ct).contiguous()
    if self_sum:
        yc, vc = xc, uc
    else:
        vc = (v.to(ct) if v is not None else torch.zeros_like(yc)).contiguous()
    nx, ny = _row_dot(xc, xc), _row_dot(yc, yc)
    ux, vy = _row_dot(uc, xc), _row_dot(vc, yc)
    poly = (degree, offset)
    if kid == POLY:  # out = f (C q + Q b), f = 2 for a self-sum (its pairs (i, i) count when diagonal)
        fx = fx2 = 2.0 if self_sum else 1.0
        fy = fy2 = 1.0
        diag_x = diagonal
    else:  # a self-sum's pairs (i, i) contribute 0 analytically (u_i - u_i, x_i - x_i): left out, as the C++
        fx = 4.0 if self_sum else 2.0
        fx2, fy, fy2, diag_x = 2.0 * fx, 2.0, 4.0, False
    dx = dy = None
    for params in chunks:
        if grad_x:
            dx = _add(dx, _launch(2, xc, yc, nx, ny, params, kid, self_sum, diag_x, fx, fx2, uc, vc, ux, vy,
                                  poly=poly)[1])
        if grad_y and not self_sum:
            dy = _add(dy, _launch(2, yc, xc, ny, nx, params, kid, False, True, fy, fy2, vc, uc, vy, ux, poly=poly)[1])
    dx = dx.to(x.dtype) if grad_x else x.new_empty([0])
    dy = dy.to(x.dtype) if (grad_y and not self_sum) else x.new_empty([0])
    return dx, dy


# ---- the static-variant contract (the compile report: .ci/triton_check.py, bench/results/static-sm90.md) ----
_PTR_ARGS = ("a_ptr", "b_ptr", "na_ptr", "nb_ptr", "val_ptr", "g_ptr", "g2_ptr", "pu_ptr", "qv_ptr", "pa_ptr",
             "qb_ptr")
_SCALAR_ARGS = {"NA": "i32", "NB": "i32", "D": "i32", "SPLITS": "i32", "fac1": "fp32", "fac2": "fp32"} | {
    f"{c}{i}": "fp64" for c in "pw" for i in range(NS_MAX)} | {"off": "fp64"}  # (ints: i32 below 2^31, as the JIT)
_SIG = dict.fromkeys(_PTR_ARGS, "*fp32") | _SCALAR_ARGS
# (n = m, d): the mmd2 calls of bench/bench_kernel_sum.py, the trainers of bench/bench_train_step.py (gmmn: B = 128 on
# 784 MNIST pixels; mmdgan: B = 128 on 16 critic features) and batches of 256 and 512 (issue 16: 256-1024 fill an H100)
BENCH_SHAPES = ((128, 784), (128, 16), (256, 64), (512, 64), (1024, 64), (1024, 784), (4096, 64), (16384, 64))
# (mode, self-sum, diagonal, hot) as the launch helpers pass them for mmd2 (biased, the benchmarks' and trainers'
# estimator): a forward without gradients (mode 0: e.g. the data's self-sum in gmmn), forward-with-gradients (mode 1;
# the backward reuses what it computed), and the second order of a gradient penalty (mode 2: self-sums leave the
# diagonal out, it contributes 0), which no benchmarked training step runs
_MODES = ((0, True, True, True), (0, False, True, True), (1, True, True, True), (1, False, True, True),
          (2, True, False, False), (2, False, True, False))
FP64_SHAPES = ((1024, 64),)  # gradcheck's dtype: compiled for the check, not hot
# the trainers and benchmarks use the gaussian kernel (hot) at every shape; the other kernels, and the second order,
# are compiled at one shape (their compile coverage; the static report's time is mostly compiles)
OTHER_SHAPES = ((1024, 64),)


def _jit_spec(consts: dict, ints: dict) -> tuple[dict, dict, dict]:
    """(signature, constexprs, attrs) as Triton's JIT specialises a launch: ints equal to 1 become constexprs, ints
    divisible by 16 and fresh allocations (the pointers) get tt.divisibility 16."""
    sig, consts, attrs = {}, dict(consts), {}
    for i, name in enumerate(_pair_kernel.arg_names):  # (arg_names: also on the interpreter's wrapper)
        if name not in _SIG:
            sig[name] = "constexpr"
        elif name in ints and ints[name] == 1:
            sig[name] = "constexpr"
            consts[name] = 1
        else:
            sig[name] = _SIG[name]
            if name in _PTR_ARGS or (name in ints and ints[name] % 16 == 0):
                attrs[(i,)] = [["tt.divisibility", 16]]
    return sig, consts, attrs


def static_variants(shapes=BENCH_SHAPES, sms: int = H100_SMS) -> Iterator[dict]:
    """Every specialisation of _pair_kernel that the launch helpers compile at `shapes` (n = m rows, d features), one
    dict per (variant, shape): name, kernel, signature, constexprs, options, grid, shape, hot (and attrs: the
    divisibility Triton's JIT would give the launch) — from pick_config, the launcher's own choice. The same name
    always means the same compile. fp32 (the training dtype; fp16 / bf16 inputs compute in fp32 too) at `shapes`;
    fp64 (gradcheck, not hot) at FP64_SHAPES. NS = 5: the trainers' and benchmarks' five bandwidths."""
    for dt, dtype, shp in (("fp32", torch.float32, shapes), ("fp64", torch.float64, FP64_SHAPES)):
        for kname, kid in KERNEL_IDS.items():
            # (poly's biased self-sums keep their pairs (i, i) in the second order too: one more variant)
            for mode, self_sum, diag, hot in _MODES + (((2, True, True, False),) if kid == POLY else ()):
                if mode == 2 and kid in DIRECT_IDS:  # the laplacians are first order only
                    continue
                for n, d in (shp if kid == 0 and mode < 2 else [sh for sh in shp if sh in OTHER_SHAPES]):
                    cfg = pick_config(n, n, d, dtype, kid, mode, sms=sms)
                    consts = dict(KERNEL=kid, NS=5, MODE=mode, SELF=self_sum, DIAG=diag, PREC="ieee", BM=cfg.bm,
                                  BN=cfg.bn, BD=cfg.bd, DEG=3 if kid == POLY else 1)
                    sig, consts, attrs = _jit_spec(consts, dict(NA=n, NB=n, D=d, SPLITS=cfg.splits))
                    sig = {k: (v.replace("*fp32", "*" + dt) if v.startswith("*") else v) for k, v in sig.items()}
                    name = (f"mmd {dt} {kname} mode={mode} {'self' if self_sum else 'cross'}"
                            f"{'' if diag or not self_sum else ' nodiag'} BM={cfg.bm} BN={cfg.bn} BD={cfg.bd} "
                            f"w={cfg.num_warps} s={cfg.num_stages}"
                            + "".join(f" {k}=1" for k in ("NA", "NB", "D", "SPLITS") if consts.get(k) == 1)
                            + "".join(f" {k}%16" for k in ("NA", "NB", "D") if k in sig and sig[k] != "constexpr"
                                      and dict(NA=n, NB=n, D=d)[k] % 16 == 0))
                    yield dict(name=name, kernel=_pair_kernel, signature=sig, constexprs=consts,
                               options=dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages), grid=_grid(n, cfg),
                               shape=f"n=m={n} d={d} ({cfg.splits} split{'s' if cfg.splits > 1 else ''})",
                               hot=bool(hot and dt == "fp32" and kid == 0), attrs=attrs)
