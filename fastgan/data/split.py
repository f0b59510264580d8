"""DataSplit, what every loader of fastgan.data returns, and the seed helpers the loaders and the sampler share."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DataSplit", "check_seed", "derive_seed"]


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


def derive_seed(seed: int, tag: int) -> int:
    """A well-mixed 63-bit seed from (seed, tag), for streams that must not coincide with the seed's own."""
    words = np.random.SeedSequence([int(seed), int(tag)]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    return int(seed)
