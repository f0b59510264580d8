"""Sample-quality and representation scores: 1-NN accuracy, the Frechet distance, the classifier score, mode
coverage on 2-D mixtures, MMD to held-out data, and all of them a split supports at once."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ..ops.kernel_sum import median_bandwidth, mmd2
from ._inputs import _flat, _labels, _matrix, _tensor
from .classifier import MMD_SCALES, FeatureClassifier
from .distribution import kid, precision_recall


def one_nn_accuracy(train_f, train_y, test_f, test_y) -> float:
    """The fraction of test rows whose nearest training row (Euclidean) carries the same label."""
    from sklearn.neighbors import KNeighborsClassifier

    xtr = _matrix(train_f, "train_f").numpy()
    xte = _matrix(test_f, "test_f").numpy()
    if xte.shape[1] != xtr.shape[1]:
        raise ValueError(f"test_f: expected {xtr.shape[1]} features like train_f, got shape {xte.shape}")
    ytr = _labels(train_y, "train_y", xtr.shape[0], "train_f")
    yte = _labels(test_y, "test_y", xte.shape[0], "test_f")
    knn = KNeighborsClassifier(n_neighbors=1).fit(xtr, ytr)
    return float(np.mean(knn.predict(xte) == yte))


def matched_accuracy(pred, labels) -> float:
    """The accuracy of cluster ids `pred` (N,) against class `labels` (N,) under the one-to-one pairing of cluster
    ids with labels that agrees on the most rows (the Hungarian algorithm, scipy's linear_sum_assignment, on their
    contingency table): an unsupervised classifier's accuracy, e.g. an InfoGAN's categorical code. Ids and labels
    are any integers; with unequal numbers of each, rows of an unpaired id or label count as wrong."""
    from scipy.optimize import linear_sum_assignment

    y = _labels(labels, "labels", len(labels), "labels")
    p = _labels(pred, "pred", y.shape[0], "labels")
    if y.shape[0] == 0:
        raise ValueError("labels: expected at least one row, got 0")
    ids, p = np.unique(p, return_inverse=True)
    classes, y = np.unique(y, return_inverse=True)
    table = np.zeros((ids.shape[0], classes.shape[0]), dtype=np.int64)
    np.add.at(table, (p, y), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / y.shape[0])


def _sqrtm_product(s1: np.ndarray, s2: np.ndarray, eps: float) -> np.ndarray:
    """The real part of sqrtm(s1 s2); a singular product (rank-deficient covariances) is regularised with eps I."""
    from scipy.linalg import LinAlgWarning, sqrtm

    with warnings.catch_warnings():
        warnings.simplefilter("error", LinAlgWarning)
        try:
            root = sqrtm(s1 @ s2)
        except (LinAlgWarning, np.linalg.LinAlgError):
            root = None
    if root is None or not np.isfinite(root).all():
        off = eps * np.eye(s1.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LinAlgWarning)
            root = sqrtm((s1 + off) @ (s2 + off))
    if np.iscomplexobj(root):
        imag = np.abs(root.imag).max()
        if imag > 1e-3 * max(1.0, np.abs(root.real).max()):
            warnings.warn(f"frechet_distance: sqrtm has an imaginary part of {imag:.3g} (ill-conditioned "
                          "covariances); using the real part", RuntimeWarning, stacklevel=3)
        root = root.real
    return root


def frechet_distance(f1, f2, eps: float = 1e-6) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)) for Gaussians fitted to the rows of f1 (N1, F) and f2 (N2, F)
    (the FID formula), in float64. eps: the ridge added to both covariances when their product is singular."""
    a = _matrix(f1, "f1", torch.float64, min_rows=2).numpy()
    b = _matrix(f2, "f2", torch.float64, min_rows=2).numpy()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"f2: expected {a.shape[1]} features like f1, got shape {b.shape}")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = _sqrtm_product(s1, s2, eps)
    d = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(root))
    return max(d, 0.0)  # rounding can leave a tiny negative value for (near-)identical sets


# ---------------------------------------------------------------------------------------------------- classifier


def classifier_score(probs) -> float:
    """exp(mean_i KL(p(y|x_i) || p(y))) with p(y) the mean of the rows of probs (N, C): between 1 (every row the
    same) and C (confident, class-balanced predictions). Logs are clamped at 1e-12 so zero probabilities are safe."""
    p = _matrix(probs, "probs", torch.float64)
    logp = p.clamp_min(1e-12).log()
    logpy = p.mean(0).clamp_min(1e-12).log()
    kl = (p * (logp - logpy)).sum(1)
    return float(kl.mean().exp())


# ------------------------------------------------------------------------------------------------ sample quality
def mode_coverage(samples, modes, std, n_sigma: float = 3.0) -> dict:
    """Mode coverage on a Gaussian mixture (the VEEGAN / unrolled-GAN protocol). Each sample goes to its nearest mode
    and is "high quality" (HQ) when it lies within n_sigma * std of it (std: a number, or one per mode). A mode is
    covered when at least max(1, 0.05 * n_samples / n_modes) HQ samples went to it (5% of a uniform share).

    Returns {"modes_covered": int, "n_modes": int, "high_quality": the HQ fraction of all samples,
    "per_mode": list of the HQ counts per mode}."""
    x = _matrix(samples, "samples", torch.float64)
    m = _matrix(modes, "modes", torch.float64)
    if m.shape[1] != x.shape[1]:
        raise ValueError(f"modes: expected {x.shape[1]} coordinates like samples, got shape {tuple(m.shape)}")
    s = _tensor(std, torch.float64)
    if s.dim() not in (0, 1) or (s.dim() == 1 and s.shape[0] != m.shape[0]):
        raise ValueError(f"std: expected a number or one per mode ({m.shape[0]}), got shape {tuple(s.shape)}")
    n, k = x.shape[0], m.shape[0]
    dist, nearest = torch.cdist(x, m).min(dim=1)
    hq = dist <= n_sigma * (s if s.dim() == 0 else s[nearest])
    per_mode = torch.bincount(nearest[hq], minlength=k)
    need = max(1.0, 0.05 * n / k)
    return {"modes_covered": int((per_mode >= need).sum()), "n_modes": k,
            "high_quality": float(hq.double().mean()), "per_mode": per_mode.tolist()}


def mmd_to_heldout(samples, heldout, n_max: int = 2000, seed: int = 0) -> float:
    """Biased MMD^2 between samples and held-out data with a sum of Gaussian kernels exp(-r^2 / (2 s^2)),
    s = m * (0.25, 0.5, 1, 2, 4), m the median pairwise distance of the held-out rows (fastgan.median_bandwidth). The
    kernel depends on the held-out data only, so values for successive checkpoints are comparable. Each side is first
    subsampled (without replacement, a generator seeded with `seed`) to at most n_max rows. float64."""
    gen = torch.Generator().manual_seed(int(seed))

    def take(t):
        t = _flat(t, torch.float64)
        if t.shape[0] > n_max:
            t = t[torch.randperm(t.shape[0], generator=gen)[:n_max]]
        return t

    x, y = take(samples), take(heldout)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"heldout: expected {x.shape[1]} features like samples, got {y.shape[1]}")
    with torch.no_grad():
        med = median_bandwidth(y)
        return float(mmd2(x, y, bandwidths=[med * c for c in MMD_SCALES], kernel="gaussian"))


KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # generation_metrics' KID (Binkowski et al.'s defaults)


def generation_metrics(samples, split, classifier: FeatureClassifier | None = None) -> dict:
    """The metrics a data split supports, for generated samples (N, ...) and a fastgan.data.DataSplit (duck-typed:
    train_x, train_y, test_x, modes, mode_std):

    - always "mmd2": mmd_to_heldout(samples, split.test_x);
    - when split.modes is not None: mode_coverage's keys (with split.mode_std);
    - when split.train_y is not None and a classifier is given: "fd" (frechet_distance of the classifier's features
      of the samples vs split.test_x), "classifier_score" (of its probabilities on the samples) and "fd_real" (the
      test vs the training split: the floor that a perfect generator would reach, up to sampling noise); in the
      same features "kid", "kid_std" (kid of the samples vs split.test_x: KID_SUBSETS subsets of at most
      KID_SUBSET_SIZE rows) and "precision", "recall" (precision_recall, k = 3, the test split as the real set; the
      larger of the two sets is first subsampled, seed 0, to the size of the smaller: k-NN radii depend on the number
      of points, so both manifolds are estimated from as many)."""
    x = _flat(samples)
    out = {"mmd2": mmd_to_heldout(x, split.test_x)}
    if getattr(split, "modes", None) is not None:
        out.update(mode_coverage(x, split.modes, split.mode_std))
    if getattr(split, "train_y", None) is not None and classifier is not None:
        with torch.no_grad():
            f_gen = classifier.features(x)
            f_test = classifier.features(_flat(split.test_x))
            f_train = classifier.features(_flat(split.train_x))
            out["fd"] = frechet_distance(f_gen, f_test)
            out["classifier_score"] = classifier_score(classifier.probs(x))
            out["fd_real"] = frechet_distance(f_test, f_train)
            out["kid"], out["kid_std"] = kid(f_gen, f_test, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE)
            n = min(f_test.shape[0], f_gen.shape[0])
            gen = torch.Generator().manual_seed(0)
            real = f_test[torch.randperm(f_test.shape[0], generator=gen)[:n]] if f_test.shape[0] > n else f_test
            fake = f_gen[torch.randperm(f_gen.shape[0], generator=gen)[:n]] if f_gen.shape[0] > n else f_gen
            out["precision"], out["recall"] = precision_recall(real, fake, k=3)
    return out


# ---------------------------------------------------------------------------------------------------------- plots
