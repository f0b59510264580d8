"""MNIST from local files: the four IDX files (optionally .gz) or an .npz archive, every field checked (fastgan.data's
docstring has the format and the checks)."""
from __future__ import annotations

import gzip
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from .split import DataSplit

__all__ = ["mnist"]


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
