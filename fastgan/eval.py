"""Offline evaluation of trained GANs: sample-quality metrics, a small cached feature classifier, and image dumps.

    one_nn_accuracy(train_f, train_y, test_f, test_y)  1-NN classification accuracy of features (e.g. BiGAN codes)
    frechet_distance(f1, f2)                          FID-style distance of Gaussians fitted to two feature sets
    get_classifier(name, x, y)                        FeatureClassifier (MLP) trained once per data set, cached on disk
    classifier_score(probs)                           the Inception-score analogue, exp E KL(p(y|x) || p(y))
    mode_coverage(samples, modes, std)                modes covered / high-quality fraction on 2-D mixtures
    mmd_to_heldout(samples, heldout)                  biased MMD^2, multi-bandwidth Gaussian kernel (fastgan.mmd2)
    generation_metrics(samples, split, classifier)    all of the above that a data split supports, as one dict
    save_image_grid(x, image_shape, path)             a grid of grey images as a PNG
    save_scatter(samples, data, path)                 a 2-D scatter of samples over data as a PNG
    save_curves({label: read_metrics(path)}, png)     training curves (losses, D accuracy) of one or more runs

Everything runs on CPU. Inputs may be torch tensors (detached, moved to the CPU) or numpy arrays. scikit-learn,
scipy, matplotlib and pillow are imported only by the functions that use them.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .ops.mmd import median_bandwidth, mmd2

__all__ = [
    "one_nn_accuracy", "frechet_distance", "FeatureClassifier", "train_classifier", "get_classifier",
    "classifier_score", "mode_coverage", "mmd_to_heldout", "generation_metrics", "save_image_grid", "save_scatter",
    "read_metrics", "save_curves",
]

CACHE_FORMAT = 1  # bump when the classifier or the cache file layout changes: old files then miss the cache
HIDDEN = 256
LR = 1e-3
EPOCHS = 30
BATCH_SIZE = 128
MMD_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def _tensor(x, dtype=torch.float32) -> torch.Tensor:
    """A CPU tensor of the dtype, detached from any graph."""
    return torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else np.asarray(x)).to(dtype)


def _matrix(x, arg: str, dtype=torch.float32, min_rows: int = 1) -> torch.Tensor:
    t = _tensor(x, dtype)
    if t.dim() != 2:
        raise ValueError(f"{arg}: expected a 2-d array of shape (n, features), got shape {tuple(t.shape)}")
    if t.shape[0] < min_rows:
        raise ValueError(f"{arg}: expected at least {min_rows} rows, got {t.shape[0]}")
    return t


def _flat(x, dtype=torch.float32) -> torch.Tensor:
    """Samples of any shape (n, ...) as a (n, features) matrix."""
    t = _tensor(x, dtype)
    return t.reshape(t.shape[0], int(np.prod(t.shape[1:])))


def _labels(y, arg: str, n: int, n_arg: str) -> np.ndarray:
    a = _tensor(y, torch.int64).numpy()
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{arg}: expected a 1-d array of {n} labels (one per row of {n_arg}), got shape {a.shape}")
    return a


# ------------------------------------------------------------------------------------------------------ features
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
class FeatureClassifier(torch.nn.Module):
    """in_dim -> 256 -> 256 -> n_classes, ReLU. forward gives logits; features the last hidden layer (after ReLU),
    the embedding for frechet_distance; probs the softmax. Inputs of any shape (n, ...) are flattened."""

    def __init__(self, in_dim: int, n_classes: int, hidden: int = HIDDEN):
        super().__init__()
        self.in_dim, self.n_classes, self.hidden = int(in_dim), int(n_classes), int(hidden)
        self.body = torch.nn.Sequential(
            torch.nn.Linear(self.in_dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU())
        self.head = torch.nn.Linear(hidden, self.n_classes)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """torch.nn.Linear's default initialisation (uniform, bound 1/sqrt(fan_in)), drawn from `generator`."""
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, torch.nn.Linear):
                    bound = 1.0 / math.sqrt(m.in_features)
                    m.weight.uniform_(-bound, bound, generator=generator)
                    m.bias.uniform_(-bound, bound, generator=generator)

    def _input(self, x) -> torch.Tensor:
        w = self.head.weight
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        return t.reshape(t.shape[0], -1).to(device=w.device, dtype=w.dtype)

    def features(self, x) -> torch.Tensor:
        return self.body(self._input(x))

    def forward(self, x) -> torch.Tensor:
        return self.head(self.features(x))

    def probs(self, x) -> torch.Tensor:
        return torch.softmax(self(x), dim=1)


def _training_data(train_x, train_y) -> tuple[torch.Tensor, torch.Tensor]:
    x = _flat(train_x).contiguous()
    y = torch.from_numpy(_labels(train_y, "train_y", x.shape[0], "train_x")).contiguous()
    if x.shape[0] == 0:
        raise ValueError("train_x: expected at least 1 row, got 0")
    if y.min() < 0:
        raise ValueError(f"train_y: expected labels >= 0, got {int(y.min())}")
    return x, y


def train_classifier(train_x, train_y, seed: int = 0, epochs: int = EPOCHS,
                     batch_size: int = BATCH_SIZE) -> FeatureClassifier:
    """Train a FeatureClassifier (cross-entropy, Adam lr 1e-3, shuffled minibatches) on CPU. One torch.Generator
    seeded with `seed` draws the initial weights and the shuffles, so the same data and seed give bit-identical
    weights. Runs on one intra-op thread (restored afterwards): for matrices this small, threads cost far more than
    they save (and thrash on a loaded machine), and one thread keeps the weights independent of the machine's thread
    count. n_classes = max(train_y) + 1. Returns the model in eval mode."""
    x, y = _training_data(train_x, train_y)
    gen = torch.Generator().manual_seed(int(seed))
    model = FeatureClassifier(x.shape[1], int(y.max()) + 1)
    model.reset_parameters(gen)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            for _ in range(epochs):
                for idx in torch.randperm(x.shape[0], generator=gen).split(batch_size):
                    loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def _cache_key(x: torch.Tensor, y: torch.Tensor, seed: int) -> str:
    h = hashlib.sha256()
    h.update(repr((CACHE_FORMAT, tuple(x.shape), str(x.dtype), tuple(y.shape), int(seed), EPOCHS, BATCH_SIZE,
                   LR, HIDDEN)).encode())
    h.update(x.numpy().tobytes())
    h.update(y.numpy().tobytes())
    return h.hexdigest()[:16]


def _load_cached(path: Path, key: str) -> FeatureClassifier:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("format") != CACHE_FORMAT or blob.get("key") != key:
        raise ValueError(f"format/key mismatch (format {blob.get('format')!r}, key {blob.get('key')!r})")
    model = FeatureClassifier(blob["in_dim"], blob["n_classes"], blob["hidden"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def _save_atomic(model: FeatureClassifier, path: Path, key: str) -> None:
    blob = {"format": CACHE_FORMAT, "key": key, "in_dim": model.in_dim, "n_classes": model.n_classes,
            "hidden": model.hidden, "state_dict": model.state_dict()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(blob, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def get_classifier(name: str, train_x, train_y, cache_dir=None, seed: int = 0) -> FeatureClassifier:
    """train_classifier(train_x, train_y, seed), cached on disk as {cache_dir}/{name}-classifier-{key}.pt, key a
    short sha256 of the data, labels, hyperparameters and cache format. cache_dir defaults to $FASTGAN_CACHE, else
    ~/.cache/fastgan. A cache file that cannot be loaded is retrained and overwritten (with a warning)."""
    x, y = _training_data(train_x, train_y)
    root = Path(cache_dir if cache_dir is not None
                else os.environ.get("FASTGAN_CACHE") or Path.home() / ".cache" / "fastgan").expanduser()
    key = _cache_key(x, y, seed)
    path = root / f"{name}-classifier-{key}.pt"
    if path.exists():
        try:
            return _load_cached(path, key)
        except Exception as e:  # truncated, corrupt, or foreign file: rebuild it
            warnings.warn(f"fastgan.eval: the cached classifier {path} could not be loaded ({type(e).__name__}: "
                          f"{e}); retraining it and overwriting the file", RuntimeWarning, stacklevel=2)
    model = train_classifier(x, y, seed=seed)
    root.mkdir(parents=True, exist_ok=True)
    _save_atomic(model, path, key)
    return model


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


def generation_metrics(samples, split, classifier: FeatureClassifier | None = None) -> dict:
    """The metrics a data split supports, for generated samples (N, ...) and a fastgan.data.DataSplit (duck-typed:
    train_x, train_y, test_x, modes, mode_std):

    - always "mmd2": mmd_to_heldout(samples, split.test_x);
    - when split.modes is not None: mode_coverage's keys (with split.mode_std);
    - when split.train_y is not None and a classifier is given: "fd" (frechet_distance of the classifier's features
      of the samples vs split.test_x), "classifier_score" (of its probabilities on the samples) and "fd_real" (the
      test vs the training split: the floor that a perfect generator would reach, up to sampling noise)."""
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
    return out


# ---------------------------------------------------------------------------------------------------------- plots
def save_image_grid(x, image_shape, path, nrow: int = 16, scale: int = 4) -> Path:
    """Write images x (N, H*W) with values in [-1, 1] as one grey PNG: nrow images per row, each pixel a scale x scale
    block, 1-pixel mid-grey separators between and around the tiles (empty trailing cells are mid-grey too).
    image_shape: (H, W) or (1, H, W). Creates the parent directories; returns the path."""
    from PIL import Image

    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2:
        raise ValueError(f"image_shape: expected (H, W) or (1, H, W), got {tuple(image_shape)}")
    h, w = shape
    imgs = _flat(x)
    if imgs.shape[0] == 0 or imgs.shape[1] != h * w:
        raise ValueError(f"x: expected a non-empty (N, {h * w}) array for images of shape {shape}, "
                         f"got shape {tuple(imgs.shape)}")
    pix = ((imgs.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy().reshape(-1, h, w)
    pix = pix.repeat(scale, axis=1).repeat(scale, axis=2)
    n, th, tw = pix.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.full((rows * (th + 1) + 1, cols * (tw + 1) + 1), 128, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[1 + r * (th + 1):(r + 1) * (th + 1), 1 + c * (tw + 1):(c + 1) * (tw + 1)] = pix[i]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path, format="PNG")
    return path


def save_scatter(samples, data, path, modes=None) -> Path:
    """Scatter 2-D samples (orange) over data (blue), with the mixture's modes (black crosses) if given, to a PNG.
    Uses a standalone matplotlib Figure with the Agg canvas (no pyplot, no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    s = _matrix(samples, "samples").numpy()
    d = _matrix(data, "data").numpy()
    if s.shape[1] != 2 or d.shape[1] != 2:
        raise ValueError(f"save_scatter: expected 2-d points, got samples {s.shape} and data {d.shape}")
    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(d[:, 0], d[:, 1], s=3, alpha=0.3, color="tab:blue", label="data", linewidths=0)
    ax.scatter(s[:, 0], s[:, 1], s=3, alpha=0.5, color="tab:orange", label="samples", linewidths=0)
    if modes is not None:
        m = _matrix(modes, "modes").numpy()
        ax.scatter(m[:, 0], m[:, 1], s=30, color="black", marker="x", label="modes")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper right", markerscale=3, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def read_metrics(path) -> list[dict]:
    """The lines of a run's metrics.jsonl as dicts (a missing file: FileNotFoundError naming it)."""
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics: {path} not found (a run directory's metrics.jsonl)")
    return [json.loads(s) for s in path.read_text().splitlines() if s.strip()]


def save_curves(runs: dict, path, title: str | None = None) -> Path:
    """Training curves to a PNG: runs {label: metrics lines (read_metrics)}; one panel per logged quantity (losses,
    D's accuracy on real and fake, ...) against the step, one line per run. Quantities missing from a run are left
    out of its panel. Standalone matplotlib Figure with the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(runs, dict) or not runs:
        raise ValueError("runs: expected a non-empty {label: metrics lines} dict")
    keys = []
    for lines in runs.values():
        for line in lines:
            keys += [k for k, v in line.items() if k not in keys and k not in ("step", "time", "lr")
                     and isinstance(v, (int, float))]
    if not keys:
        raise ValueError("runs: no logged quantity to plot (the metrics lines hold only step / lr / time)")
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for i, k in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        for label, lines in runs.items():
            pts = [(line["step"], line[k]) for line in lines if k in line]
            if pts:
                ax.plot(*zip(*pts), label=label, linewidth=1.2)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(runs) > 1 and i == 0:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
