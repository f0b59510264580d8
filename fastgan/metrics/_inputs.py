"""Input coercion shared by the metrics: torch tensors (detached, on the CPU) or numpy arrays."""
from __future__ import annotations

import contextlib

import numpy as np
import torch


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


@contextlib.contextmanager
def _one_thread():
    """One intra-op thread inside (the setting restored afterwards): for many small reductions, a parallel region per
    call costs more than it saves, and on a loaded machine a descheduled OpenMP thread stalls every one of them
    (kid's 300 kernel sums of 100 rows: 5 s on two threads of a busy 2-core machine, 0.13 s on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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
