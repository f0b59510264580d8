"""The pure-PyTorch specification of every fastgan op: readable, obviously correct, differentiable to any order.

Fast implementations are tested against these functions. Arguments are the resolved ones (no defaults to look up);
half-precision inputs are computed in float32 and the result cast back, like the kernels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..activations import SELU_ALPHA, SELU_LAMBDA

_HALF = (torch.float16, torch.bfloat16)


def activation(s: torch.Tensor, act: str, alpha: float) -> torch.Tensor:
    if act == "linear":
        return s
    if act == "relu":
        return torch.relu(s)
    if act == "lrelu":
        return torch.where(s > 0, s, alpha * s)
    if act == "tanh":
        return torch.tanh(s)
    if act == "sigmoid":
        return torch.sigmoid(s)
    if act == "elu":
        return torch.where(s > 0, s, alpha * torch.expm1(torch.clamp(s, max=0)))
    if act == "selu":
        return SELU_LAMBDA * torch.where(s > 0, s, SELU_ALPHA * torch.expm1(torch.clamp(s, max=0)))
    if act == "softplus":
        return torch.logaddexp(s, torch.zeros_like(s))
    if act == "swish":
        return s * torch.sigmoid(s)
    raise ValueError(f"act: unknown activation {act!r}")


def bias_act(x: torch.Tensor, b: torch.Tensor | None, dim: int, act: str, alpha: float, gain: float,
             clamp: float) -> torch.Tensor:
    """y = clamp(act(x + b broadcast along dim) * gain, -clamp, clamp); clamp < 0: no clamp.

    The clamp's gradient is 1 strictly inside (-clamp, clamp) and 0 elsewhere, boundary included (torch.clamp passes
    it at the boundary; a kernel that sees only the clamped output cannot, so the spec says 0 there).
    """
    s = x.float() if x.dtype in _HALF else x
    if b is not None:
        shape = [1] * x.dim()
        shape[dim] = -1
        s = s + (b.float() if b.dtype in _HALF else b).reshape(shape)
    y = activation(s, act, alpha) * gain
    if clamp >= 0:
        # the gradient passes strictly inside (-clamp, clamp); at the boundary the clamp counts as active
        y = torch.where(y.abs() < clamp, y, torch.clamp(y, -clamp, clamp).detach())
    return y.to(x.dtype)


def bias_act_functional(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None):
    """The eager composition users write by hand (F.* ops, their default backward): the benchmark's baseline."""
    if b is not None:
        shape = [1] * x.dim()
        shape[dim] = -1
        x = x + b.reshape(shape)
    if act == "lrelu":
        x = F.leaky_relu(x, alpha)
    elif act != "linear":
        x = activation(x, act, alpha)
    x = x * gain
    if clamp is not None and clamp >= 0:
        x = torch.clamp(x, -clamp, clamp)
    return x


def joint_linear(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, z_weight: torch.Tensor,
                 bias: torch.Tensor | None, act: str, alpha: float, gain: float) -> torch.Tensor:
    """The BiGAN joint layer: act(x @ weight.T + z @ z_weight.T + bias) * gain (fp32 math for half inputs)."""
    half = x.dtype in _HALF
    up = (lambda t: t.float()) if half else (lambda t: t)
    s = up(x) @ up(weight).t() + up(z) @ up(z_weight).t()
    if bias is not None:
        s = s + up(bias)
    return (activation(s, act, alpha) * gain).to(x.dtype)


def pair_kernel(r2: torch.Tensor, kernel: str, bandwidths, weights) -> torch.Tensor:
    """sum_s w_s k_s(r2) of squared distances r2 (csrc/include/fastgan/pair_kernels.h)."""
    k = torch.zeros_like(r2)
    for s, w in zip(bandwidths, weights):
        if kernel == "gaussian":
            k = k + w * torch.exp(-r2 / (2 * s * s))
        elif kernel == "rq":
            k = k + w * (1 + r2 / (2 * s)) ** (-s)
        elif kernel == "imq":
            k = k + w * (s * s) / (s * s + r2)
        else:
            raise ValueError(f"kernel: unknown kernel {kernel!r}")
    return k


def laplacian_kernel(diff: torch.Tensor, kernel: str, bandwidths, weights) -> torch.Tensor:
    """sum_s w_s exp(-|a - b| / s) of differences diff (..., d): the euclidean norm ('laplacian') or the l1 norm
    ('laplacian_l1'). At zero distance the gradient is 0 (the least-norm subgradient), not NaN."""
    if kernel == "laplacian_l1":
        dist = diff.abs().sum(-1)
    else:
        r2 = diff.square().sum(-1)
        zero = r2 == 0  # (a NaN is not 0: it propagates)
        dist = torch.where(zero, torch.zeros_like(r2), torch.sqrt(torch.where(zero, torch.ones_like(r2), r2)))
    k = torch.zeros_like(dist)
    for s, w in zip(bandwidths, weights):
        k = k + w * torch.exp(-dist / s)
    return k


def poly_kernel(t: torch.Tensor, bandwidths, weights, degree: int, offset: float) -> torch.Tensor:
    """sum_s w_s (g_s t + offset)^degree of dot products t (the 'bandwidths' are the scales g_s; KID: g = 1 / d,
    offset 1, degree 3). An integer power: defined and smooth for negative bases too."""
    k = torch.zeros_like(t)
    for g, w in zip(bandwidths, weights):
        k = k + w * (g * t + offset) ** int(degree)
    return k


def kernel_sum(x: torch.Tensor, y: torch.Tensor | None, kernel: str, bandwidths, weights,
               diagonal: bool, degree: int = 3, offset: float = 1.0) -> torch.Tensor:
    """sum_ij sum_s w_s k_s(x_i, y_j), y None: over pairs of rows of x (diagonal: with the pairs (i, i)); k_s of
    |x_i - y_j|, or for kernel 'poly' of x_i . y_j (degree, offset: poly only). Dense (n x m x d differences: small
    inputs only), differentiable to any order, also at zero distance."""
    half = x.dtype in _HALF
    a = x.float() if half else x
    b = a if y is None else (y.float() if half else y)
    if kernel == "poly":
        k = poly_kernel(a @ b.t(), bandwidths, weights, degree, offset)
        if y is None and not diagonal:
            k = k.masked_fill(torch.eye(k.shape[0], dtype=torch.bool, device=k.device), 0.0)
        return k.sum()
    diff = a[:, None, :] - b[None, :, :]
    if kernel in ("laplacian", "laplacian_l1"):
        k = laplacian_kernel(diff, kernel, bandwidths, weights)
    else:
        k = pair_kernel(diff.square().sum(-1), kernel, bandwidths, weights)
    if y is None and not diagonal:
        k = k.masked_fill(torch.eye(k.shape[0], dtype=torch.bool, device=k.device), 0.0)
    return k.sum()  # x's dtype, or fp32 for half x: a sum of n m terms overflows fp16


def mmd2_functional(x: torch.Tensor, y: torch.Tensor, kernel: str = "gaussian", bandwidths=(1.0, 2.0, 4.0, 8.0, 16.0),
                    weights=None, estimator: str = "biased", degree: int = 3, offset: float = 1.0) -> torch.Tensor:
    """MMD^2 the way eager code writes it (torch.cdist or a @ b.T, then the n x m kernel matrices): the benchmark's
    baseline."""
    weights = [1.0] * len(bandwidths) if weights is None else weights
    n, m = x.shape[0], y.shape[0]

    def k(a, b):
        if kernel == "poly":
            return poly_kernel(a @ b.t(), bandwidths, weights, degree, offset)
        if kernel == "laplacian_l1":
            return sum(w * torch.exp(-torch.cdist(a, b, p=1) / s) for s, w in zip(bandwidths, weights))
        if kernel == "laplacian":  # (cdist's GEMM formulation is inexact near zero distance, which sqrt amplifies)
            dist = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
            return sum(w * torch.exp(-dist / s) for s, w in zip(bandwidths, weights))
        return pair_kernel(torch.cdist(a, b).square(), kernel, bandwidths, weights)

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    if estimator == "biased":
        return kxx.mean() + kyy.mean() - 2 * kxy.mean()
    return ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
            - 2 * kxy.mean())


def minibatch_discrimination(m: torch.Tensor, ref: torch.Tensor | None, exclude_self: bool) -> torch.Tensor:
    """Minibatch discrimination (Salimans et al. 2016): o[i, k] = sum_j exp(-|m[i, k] - r[j, k]|_1), r = m or ref.
    Broadcasts the B x R x K x C difference tensor (small batches only); the gradient at a tie is 0 (sign(0))."""
    half = m.dtype in _HALF
    a = m.float() if half else m
    r = a if ref is None else (ref.float() if half else ref)
    e = torch.exp(-(a[:, None] - r[None, :]).abs().sum(-1))  # (B, R, K)
    if ref is None and exclude_self:
        e = e.masked_fill(torch.eye(a.shape[0], dtype=torch.bool, device=a.device)[:, :, None], 0.0)
    return e.sum(1).to(m.dtype)


def minibatch_discrimination_functional(f: torch.Tensor, T: torch.Tensor, kernels: int,
                                        kernel_dim: int) -> torch.Tensor:
    """The minibatch discrimination layer the way eager code writes it (the B x B x K x C broadcast): the baseline of
    the benchmark. [f, o] with o[i, k] = sum_j exp(-|M[i, k] - M[j, k]|_1), M = (f T).view(B, K, C)."""
    m = (f @ T).view(f.shape[0], kernels, kernel_dim)
    o = torch.exp(-(m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(3)).sum(0)
    return torch.cat([f, o], 1)
