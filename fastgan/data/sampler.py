"""BatchSampler: endless seeded minibatches of row indices, exactly resumable from a few ints."""
from __future__ import annotations

import torch

from .split import check_seed, derive_seed

__all__ = ["BatchSampler"]


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
        self._n, self._batch_size, self._seed = n, batch_size, check_seed(seed)
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
            self._gen.manual_seed(derive_seed(self._seed, self._epoch))
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
