"""Pairwise-kernel sums and the maximum mean discrepancy (GMMN, MMD-GAN, two-sample tests) without the n x m kernel
matrix.

    kernel_sum(x, y)  S = sum_ij sum_s w_s k_s(|x_i - y_j|^2)             (y None: the self-sum over x)
    mmd2(x, y)        MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y), biased (V-statistic) or unbiased (U-statistic)
    mmd_test(x, y)    the unbiased MMD^2 and its permutation p-value

Kernels (csrc/include/fastgan/pair_kernels.h is the one table; s = bandwidth):
    gaussian  exp(-r2 / (2 s^2))       rq  (1 + r2 / (2 a))^(-a)  (bandwidths are the a's)       imq  s^2 / (s^2 + r2)
    laplacian exp(-|a - b|_2 / s)      laplacian_l1  exp(-|a - b|_1 / s)   (first order only: not twice
              differentiable at zero distance, where their gradient is defined as 0)
    poly      (g a.b + c)^p: a polynomial of the dot product, not of the distance (the bandwidths are the scales g,
              default 1 / d; degree p = 3 and offset c = 1 by default: KID's kernel). Smooth everywhere:
              dk/da = p g (g a.b + c)^(p-1) b, d2k/da db' = p (p-1) g^2 (g a.b + c)^(p-2) b a' + p g (...)^(p-1) I.

fastgan::kernel_sum walks the pairs in tiles (C++: a GEMM per tile for the dot products, one vectorised pass for the
kernel values of every bandwidth from the same distance, two more GEMMs for the gradients) and returns the sum and,
in the same pass, its gradients: one walk over the pairs serves forward and backward. Its autograd multiplies the
saved gradients by the incoming scalar; second derivatives (a gradient penalty through an MMD, MMD-GAN's penalty on
the witness) go through fastgan::kernel_sum_backward2, one more tiled walk (Hessian-vector products with k''), whose
own derivative (third order) raises NotImplementedError.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from .. import _checks
from . import reference
from .registry import declare

__all__ = ["kernel_sum", "mmd2", "mmd_test", "median_bandwidth", "median_distance", "MMDTestResult", "KERNELS", "OP"]

KERNELS = ("gaussian", "rq", "imq", "laplacian", "laplacian_l1", "poly")
SMOOTH_KERNELS = ("gaussian", "rq", "imq", "poly")  # twice differentiable: gradient penalties through them work
DEFAULT_BANDWIDTHS = (1.0, 2.0, 4.0, 8.0, 16.0)  # bandwidths=None: these, or for poly the one scale 1 / d
POLY_DEGREE, POLY_OFFSET = 3, 1.0  # the poly kernel's defaults (KID: Binkowski et al. 2018)
MAX_POLY_DEGREE = 64  # (csrc/include/fastgan/pair_kernels.h check_poly_params)
MEDIAN_SAMPLES = 1024
MAX_BANDWIDTHS = 16  # every backend (csrc/include/fastgan/pair_math.h kMaxPairBandwidths: the CUDA kernel arguments)


def _check_points(t, arg: str, like: torch.Tensor | None = None) -> torch.Tensor:
    if like is None:
        _checks.tensor(t, arg)
    else:
        _checks.like(t, arg, like, "x")
    if t.dim() != 2:
        raise ValueError(f"{arg}: expected a 2-d tensor of shape (n, d) (flatten samples first), got shape "
                         f"{tuple(t.shape)}")
    if like is not None and t.shape[1] != like.shape[1]:
        raise ValueError(f"{arg}: expected {like.shape[1]} features like x, got shape {tuple(t.shape)}")
    return t


def _check_kernel(kernel, bandwidths, weights) -> tuple[str, list[float], list[float]]:
    if kernel not in KERNELS:
        raise ValueError(f"kernel: expected one of {', '.join(map(repr, KERNELS))}, got {kernel!r}")
    if isinstance(bandwidths, (int, float)) and not isinstance(bandwidths, bool):
        bandwidths = (bandwidths,)
    if not isinstance(bandwidths, Sequence) or isinstance(bandwidths, str) or len(bandwidths) == 0:
        raise ValueError(f"bandwidths: expected a non-empty sequence of numbers > 0, got {bandwidths!r}")
    bw = [_checks.finite(b, "bandwidths") for b in bandwidths]
    if len(bw) > MAX_BANDWIDTHS:
        raise ValueError(f"bandwidths: expected at most {MAX_BANDWIDTHS} bandwidths, got {len(bw)}")
    if any(b <= 0 for b in bw):
        raise ValueError(f"bandwidths: expected numbers > 0, got {bw}")
    if weights is None:
        ws = [1.0] * len(bw)
    else:
        ws = [_checks.finite(w, "weights") for w in weights]
        if len(ws) != len(bw):
            raise ValueError(f"weights: expected {len(bw)} weights (one per bandwidth), got {len(ws)}")
    return kernel, bw, ws


def _check_poly(kernel: str, degree, offset) -> tuple[int, float]:
    """The poly kernel's (degree, offset), checked; the schema's defaults for the other kernels, which refuse them."""
    if kernel != "poly":
        for v, arg in ((degree, "degree"), (offset, "offset")):
            if v is not None:
                raise ValueError(f"{arg}: only the 'poly' kernel takes a {arg}, got kernel={kernel!r}")
        return POLY_DEGREE, POLY_OFFSET
    degree = POLY_DEGREE if degree is None else degree
    if isinstance(degree, bool) or not isinstance(degree, int):
        raise TypeError(f"degree: expected an int, got {type(degree).__name__}")
    if not 1 <= degree <= MAX_POLY_DEGREE:
        raise ValueError(f"degree: expected an int in [1, {MAX_POLY_DEGREE}], got {degree}")
    offset = POLY_OFFSET if offset is None else _checks.finite(offset, "offset")
    if offset < 0:
        raise ValueError(f"offset: expected a number >= 0 (a positive definite kernel), got {offset}")
    return degree, offset


def _default_bandwidths(kernel: str, bandwidths, d: int):
    if bandwidths is None:
        return (1.0 / max(d, 1),) if kernel == "poly" else DEFAULT_BANDWIDTHS
    if kernel == "poly" and isinstance(bandwidths, str):
        raise ValueError(f"bandwidths={bandwidths!r}: the poly kernel's parameters are scales of the dot product, "
                         "not length scales; pass them explicitly or leave the default (1 / d)")
    return bandwidths


def kernel_sum(x: torch.Tensor, y: torch.Tensor | None = None, kernel: str = "gaussian",
               bandwidths=None, weights=None, diagonal: bool = True,
               impl: str | None = None, *, degree: int | None = None, offset: float | None = None) -> torch.Tensor:
    """sum_i sum_j sum_s weights[s] k_s(x_i, y_j) for x (n, d), y (m, d); y None: the self-sum over pairs of rows of
    x (diagonal=False leaves out the pairs (i, i)). A scalar of x's dtype (fp32 for fp16 / bf16 x: the sum of n m
    kernel values overflows fp16), differentiable twice in x and y (the smooth kernels; the laplacians once).
    Memory O((n + m) d): the kernel matrix is never formed. Under autocast, x and y of different float dtypes are
    promoted to the wider one. bandwidths None: DEFAULT_BANDWIDTHS, or for poly the scale 1 / d; degree (default 3)
    and offset (default 1): the poly kernel's (g x.y + offset)^degree only."""
    x, y = _checks.autocast_promote(x, y)
    _check_points(x, "x")
    if y is not None:
        _check_points(y, "y", x)
    degree, offset = _check_poly(kernel, degree, offset)
    kernel, bw, ws = _check_kernel(kernel, _default_bandwidths(kernel, bandwidths, x.shape[1]), weights)
    grad = torch.is_grad_enabled()
    gx = grad and x.requires_grad
    gy = grad and y is not None and y.requires_grad
    return OP.run(impl, x.device, x, y, kernel, bw, ws, bool(diagonal), gx, gy, degree, offset)[0]


def median_distance(x: torch.Tensor, y: torch.Tensor | None = None, max_samples: int = MEDIAN_SAMPLES,
                    norm: int = 2) -> torch.Tensor:
    """The median distance (euclidean, or l1 with norm=1) between distinct points of x and y pooled, as a 0-d tensor
    on their device (no host sync: usable inside a training step, e.g. to rescale features so that fixed relative
    bandwidths follow them). Above max_samples pooled points: the median over a uniform random subsample of
    max_samples points (without replacement, a generator seeded with 0, so the same data give the same value), which
    keeps it O(max_samples^2). Computed in float64 without gradient; the result has x's dtype."""
    if norm not in (1, 2):
        raise ValueError(f"norm: expected 1 or 2, got {norm!r}")
    with torch.no_grad():
        z = x if y is None else torch.cat([x, y])
        z = z.detach().reshape(z.shape[0], -1)
        if z.shape[0] > max_samples:
            idx = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(0))[:max_samples]
            z = z[idx.to(z.device)]
        if z.shape[0] < 2:
            raise ValueError(f"bandwidths='median': needs at least 2 points, got {z.shape[0]}")
        zf = z.double()
        return torch.pdist(zf, p=float(norm)).median().to(x.dtype)


def median_bandwidth(x: torch.Tensor, y: torch.Tensor | None = None, max_samples: int = MEDIAN_SAMPLES,
                     norm: int = 2) -> float:
    """The median heuristic as a Python float (median_distance, read back once): for bandwidths fixed before
    training or per call outside a hot loop."""
    med = float(median_distance(x, y, max_samples, norm).double())
    if not med > 0:
        raise ValueError("bandwidths='median': the median pairwise distance is 0 (more than half the points "
                         "coincide); pass bandwidths explicitly")
    return med


def _resolve_bandwidths(x, y, kernel, bandwidths):
    bandwidths = _default_bandwidths(kernel, bandwidths, x.shape[1])
    if isinstance(bandwidths, str):
        if bandwidths != "median":
            raise ValueError(f"bandwidths: expected a sequence of numbers or 'median', got {bandwidths!r}")
        if kernel == "rq":
            raise ValueError("bandwidths='median': the rq kernel's parameters are shape exponents, not length "
                             "scales; pass them explicitly")
        return (median_bandwidth(x, y, norm=1 if kernel == "laplacian_l1" else 2),)
    return bandwidths


def mmd2(x: torch.Tensor, y: torch.Tensor, kernel: str = "gaussian", bandwidths=None, weights=None,
         estimator: str = "biased", impl: str | None = None, *, degree: int | None = None,
         offset: float | None = None) -> torch.Tensor:
    """The squared maximum mean discrepancy between the samples x (n, d) and y (m, d) (n != m allowed).

    estimator 'biased': the V-statistic (all pairs; >= 0); 'unbiased': the U-statistic (no pairs (i, i); n, m >= 2;
    can be negative). bandwidths: a sequence, None (kernel_sum's default) or 'median' (median_bandwidth of x and y
    pooled; not for rq, poly). degree, offset: the poly kernel's (kernel_sum). Differentiable twice in x and y. fp32
    for fp16 / bf16 inputs (a small difference of large sums: computed and returned in fp32).
    Under autocast, x and y of different float dtypes are promoted to the wider one."""
    x, y = _checks.autocast_promote(x, y)
    _check_points(x, "x")
    _check_points(y, "y", x)
    if estimator not in ("biased", "unbiased"):
        raise ValueError(f"estimator: expected 'biased' or 'unbiased', got {estimator!r}")
    n, m = x.shape[0], y.shape[0]
    need = 2 if estimator == "unbiased" else 1
    for t, name in ((n, "x"), (m, "y")):
        if t < need:
            raise ValueError(f"{name}: the {estimator} estimator needs at least {need} samples, got {t}")
    bandwidths = _resolve_bandwidths(x, y, kernel, bandwidths)
    diag = estimator == "biased"
    kw = dict(kernel=kernel, bandwidths=bandwidths, weights=weights, impl=impl, degree=degree, offset=offset)
    kxx = kernel_sum(x, None, diagonal=diag, **kw)
    kyy = kernel_sum(y, None, diagonal=diag, **kw)
    kxy = kernel_sum(x, y, **kw)
    px, py = (n * n, m * m) if diag else (n * (n - 1), m * (m - 1))
    return kxx / px + kyy / py - kxy * (2.0 / (n * m))


class MMDTestResult(NamedTuple):
    statistic: float  # the unbiased MMD^2 of the samples
    p_value: float  # (1 + #{permutations with a statistic >= it}) / (1 + permutations)
    permutations: int


def mmd_test(x: torch.Tensor, y: torch.Tensor, permutations: int = 200, kernel: str = "gaussian",
             bandwidths="median", weights=None, generator: torch.Generator | None = None,
             impl: str | None = None, *, degree: int | None = None, offset: float | None = None) -> MMDTestResult:
    """Two-sample permutation test of H0: x and y come from the same distribution, with the unbiased MMD^2 as the
    statistic. The bandwidths ('median' by default) are fixed once from the pooled sample, so every permutation uses
    the same kernel. generator: for the permutations (default: a CPU generator seeded with 0)."""
    _check_points(x, "x")
    _check_points(y, "y", x)
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 1:
        raise ValueError(f"permutations: expected an int >= 1, got {permutations!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    with torch.no_grad():
        bandwidths = _resolve_bandwidths(x, y, kernel, bandwidths)
        kw = dict(kernel=kernel, bandwidths=bandwidths, weights=weights, estimator="unbiased", impl=impl,
                  degree=degree, offset=offset)
        stat = mmd2(x, y, **kw).item()
        z, n = torch.cat([x, y]), x.shape[0]
        hits = 0
        for _ in range(permutations):
            p = torch.randperm(z.shape[0], generator=gen).to(z.device)
            hits += mmd2(z[p[:n]], z[p[n:]], **kw).item() >= stat
    return MMDTestResult(stat, (1 + hits) / (1 + permutations), permutations)


def _fake_grads(x, y, grad_x, grad_y):
    return (torch.empty_like(x) if grad_x else x.new_empty([0]),
            torch.empty_like(y) if (grad_y and y is not None) else x.new_empty([0]))


def _fake_sum(x, y, kernel, bandwidths, weights, diagonal, grad_x, grad_y, degree=POLY_DEGREE, offset=POLY_OFFSET):
    half = x.dtype in (torch.float16, torch.bfloat16)
    return (x.new_empty([], dtype=torch.float32 if half else x.dtype), *_fake_grads(x, y, grad_x, grad_y))


def _reference(x, y, kernel, bandwidths, weights, diagonal, grad_x, grad_y, degree=POLY_DEGREE,
               offset=POLY_OFFSET):  # the kernel's arguments: (S,)
    return (reference.kernel_sum(x, y, kernel, bandwidths, weights, diagonal, degree, offset),)


def _autograd(ns, ns_name: str) -> None:
    ns_q = f"{ns_name}::kernel_sum"

    def setup(ctx, inputs, output):
        x, y, kernel, bandwidths, weights, diagonal, grad_x, grad_y, degree, offset = inputs
        ctx.set_materialize_grads(False)  # None, not zeros, for the gradient outputs nobody used: see backward
        ctx.args = (kernel, bandwidths, weights)
        ctx.extra = (diagonal, degree, offset)
        ctx.flags = (grad_x, grad_y and y is not None)
        ctx.save_for_backward(x, y, output[1], output[2])

    def backward(ctx, gv, ggx, ggy):
        x, y, sx, sy = ctx.saved_tensors
        need_x, need_y = ctx.needs_input_grad[:2]
        need_y = need_y and y is not None
        dx = dy = None
        if gv is not None:  # d(gv * S): the gradients computed in the forward pass, scaled
            if (need_x and not ctx.flags[0]) or (need_y and not ctx.flags[1]):
                raise RuntimeError("fastgan::kernel_sum: a gradient was requested for an input whose grad_x / grad_y "
                                   "flag was False; call fastgan.kernel_sum, which sets the flags")
            dx = (gv * sx).to(sx.dtype) if need_x else None  # (gv is fp32 for half inputs)
            dy = (gv * sy).to(sy.dtype) if need_y else None
        if (ggx is not None or ggy is not None) and (need_x or need_y):  # through the gradient outputs: 2nd order
            u = ggx if ggx is not None else torch.zeros_like(x)
            hx, hy = ns.kernel_sum_backward2(x, y, u, ggy if y is not None else None, *ctx.args, need_x, need_y,
                                             *ctx.extra)
            if need_x:
                dx = hx if dx is None else dx + hx
            if need_y:
                dy = hy if dy is None else dy + hy
        return dx, dy, None, None, None, None, None, None, None, None

    torch.library.register_autograd(ns_q, backward, setup_context=setup)


def _triton() -> dict:
    # bare names: torch finds the kernels behind a triton_op (for its compile-cache keys) only through them
    from .._triton.kernel_sum import kernel_sum as tk_sum
    from .._triton.kernel_sum import kernel_sum_backward2 as tk_backward2

    # (the schema's defaults: the dispatcher leaves out trailing arguments equal to them)
    def fwd(x, y, kernel, bandwidths, weights, diagonal, grad_x, grad_y, degree=POLY_DEGREE, offset=POLY_OFFSET):
        return tk_sum(x, y, kernel, bandwidths, weights, diagonal, grad_x, grad_y, degree, offset)

    def bwd2(x, y, u, v, kernel, bandwidths, weights, grad_x, grad_y, diagonal=True, degree=POLY_DEGREE,
             offset=POLY_OFFSET):
        return tk_backward2(x, y, u, v, kernel, bandwidths, weights, grad_x, grad_y, diagonal, degree, offset)

    return {"kernel_sum": fwd, "kernel_sum_backward2": bwd2}


OP = declare("kernel_sum", kernels=("kernel_sum", "kernel_sum_backward2"),
             backends=("reference", "cpp", "cuda", "triton"), reference=_reference,
             fakes={"kernel_sum": _fake_sum,
                    "kernel_sum_backward2": lambda x, y, u, v, kernel, bandwidths, weights, grad_x, grad_y,
                    diagonal=True, degree=POLY_DEGREE, offset=POLY_OFFSET: _fake_grads(x, y, grad_x, grad_y)},
             autograd=_autograd, triton=_triton, last="kernel_sum_backward2")
