"""Data of one's own: a DataSplit of (N, D) tensors or of a map-style torch Dataset."""
from __future__ import annotations

import torch

from .split import DataSplit, check_seed

__all__ = ["from_dataset", "from_tensors"]


def _features(t, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected a floating tensor, got dtype {t.dtype}")
    if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty 2-D tensor (N, D), got shape {tuple(t.shape)}")
    finite = torch.isfinite(t).all(1)
    if not finite.all():
        rows = (~finite).nonzero().flatten().tolist()
        shown = ", ".join(map(str, rows[:10])) + (f" ... ({len(rows)} rows)" if len(rows) > 10 else "")
        raise ValueError(f"{name}: holds NaN or infinite values in row(s) {shown}")
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
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(check_seed(seed))).to(x.device)
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
