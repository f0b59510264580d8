"""Scores that compare two sets of features as distributions: the kernel inception distance (KID) and the improved
precision and recall of k-NN manifolds.

    kid(feats_a, feats_b)                      Binkowski et al. 2018: the unbiased MMD^2 with the cubic polynomial
                                               kernel (a.b / d + 1)^3, averaged over random subsets -> (mean, std)
    precision_recall(real_feats, fake_feats)   Kynkaenniemi et al. 2019: the share of fakes inside the real k-NN
                                               manifold, and of reals inside the fake one

KID goes through the fused kernel sum (fastgan.mmd2, kernel 'poly', float64): no subset_size^2 kernel matrix.
Precision / recall take their distances from torch.cdist in row chunks (memory O(chunk x n), never n x n), in float64
and with direct differences (not the |a|^2 + |b|^2 - 2 a.b GEMM form), so that a point that lies exactly on a ball's
boundary (e.g. a sample that is some real point's k-th neighbour) is inside it, as in exact arithmetic.
"""
from __future__ import annotations

import numbers

import torch

from ..ops.kernel_sum import mmd2
from ._inputs import _matrix, _one_thread

__all__ = ["kid", "precision_recall", "knn_radii"]

_CHUNK_ELEMS = 1 << 22  # distances per cdist chunk: 32 MiB of float64


def _pair(a, b, name_a: str, name_b: str, min_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = _matrix(a, name_a, torch.float64, min_rows=min_rows)
    y = _matrix(b, name_b, torch.float64, min_rows=min_rows)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{name_b}: expected {x.shape[1]} features like {name_a}, got shape {tuple(y.shape)}")
    return x, y


def _positive_int(v, arg: str, low: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{arg}: expected an int, got {type(v).__name__}")
    if v < low:
        raise ValueError(f"{arg}: expected an int >= {low}, got {v}")
    return int(v)


def kid(feats_a, feats_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        impl: str | None = None) -> tuple[float, float]:
    """The kernel inception distance between two feature sets (N_a, d) and (N_b, d), as (mean, std) over `subsets`
    random subsets (Binkowski et al. 2018, "Demystifying MMD GANs", and their reference code).

    Each subset draws m = min(subset_size, N_a, N_b) rows of each set without replacement (a CPU generator seeded
    with `seed`) and computes the unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3; the result is the mean of the
    `subsets` values and their standard deviation (population, ddof 0, as the reference code's numpy std). float64,
    on the CPU, through fastgan.mmd2 (impl: its backend, default auto). The unbiased estimate can be slightly
    negative for sets from one distribution. Runs on one intra-op thread (restored afterwards): many small kernel
    sums, where threads cost more than they save."""
    x, y = _pair(feats_a, feats_b, "feats_a", "feats_b", min_rows=2)
    subsets = _positive_int(subsets, "subsets")
    subset_size = _positive_int(subset_size, "subset_size", low=2)
    m = min(subset_size, x.shape[0], y.shape[0])
    gen = torch.Generator().manual_seed(int(seed))
    vals = torch.empty(subsets, dtype=torch.float64)
    with torch.no_grad(), _one_thread():
        for s in range(subsets):
            ia = torch.randperm(x.shape[0], generator=gen)[:m]
            ib = torch.randperm(y.shape[0], generator=gen)[:m]
            vals[s] = mmd2(x[ia], y[ib], kernel="poly", estimator="unbiased", impl=impl)
    return float(vals.mean()), float(vals.std(correction=0))


def _cdist_chunks(q: torch.Tensor, ref: torch.Tensor):
    """(start, distances of q[start:start + c] to every row of ref), in chunks of at most _CHUNK_ELEMS distances."""
    step = max(1, _CHUNK_ELEMS // max(ref.shape[0], 1))
    for i in range(0, q.shape[0], step):
        yield i, torch.cdist(q[i:i + step], ref, compute_mode="donot_use_mm_for_euclid_dist")


def knn_radii(feats, k: int = 3) -> torch.Tensor:
    """The distance from each row of feats (n, d) to its k-th nearest other row (float64): the radii of the k-NN
    balls whose union estimates the set's manifold. A duplicate row counts as a neighbour at distance 0."""
    x = _matrix(feats, "feats", torch.float64)
    k = _positive_int(k, "k")
    if x.shape[0] <= k:
        raise ValueError(f"k: expected k < the number of rows ({x.shape[0]}), got {k}")
    out = torch.empty(x.shape[0], dtype=torch.float64)
    for i, dist in _cdist_chunks(x, x):
        # the (k + 1)-th smallest distance counts the row itself (0): the k-th nearest other row
        out[i:i + dist.shape[0]] = dist.kthvalue(k + 1, dim=1).values
    return out


def _coverage(query: torch.Tensor, ref: torch.Tensor, radii: torch.Tensor) -> float:
    """The share of query rows within radii[j] of some row j of ref (boundary included)."""
    inside = torch.zeros(query.shape[0], dtype=torch.bool)
    for i, dist in _cdist_chunks(query, ref):
        inside[i:i + dist.shape[0]] = (dist <= radii[None, :]).any(1)
    return float(inside.double().mean())


def precision_recall(real_feats, fake_feats, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of fake features against real ones, (n, d) and
    (m, d): each set's manifold is the union of the balls around its rows with radius the distance to the k-th
    nearest other row of the same set (knn_radii). precision = the share of fake rows inside the real manifold,
    recall = the share of real rows inside the fake manifold. Euclidean, float64; k < n and k < m."""
    x, y = _pair(real_feats, fake_feats, "real_feats", "fake_feats", min_rows=1)
    k = _positive_int(k, "k")
    for t, name in ((x, "real_feats"), (y, "fake_feats")):
        if t.shape[0] <= k:
            raise ValueError(f"k: expected k < the number of rows of {name} ({t.shape[0]}), got {k}")
    precision = _coverage(y, x, knn_radii(x, k))
    recall = _coverage(x, y, knn_radii(y, k))
    return precision, recall
