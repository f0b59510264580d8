"""The 2-D Gaussian mixtures of the mode-collapse benchmarks: 'gmm8' (a ring) and 'gmm25' (a grid)."""
from __future__ import annotations

import torch

from .split import DataSplit, check_seed, derive_seed

__all__ = ["gaussian_mixture"]


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
    seed = check_seed(seed)
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"gaussian_mixture: {name} must be a positive int, got {n!r}")

    def draw(n, s):
        gen = torch.Generator().manual_seed(s)
        labels = torch.randint(len(modes), (n,), generator=gen)
        return (modes[labels] + std * torch.randn(n, 2, generator=gen)).contiguous(), labels

    train_x, train_y = draw(n_train, seed)
    test_x, test_y = draw(n_test, derive_seed(seed, 1))
    return DataSplit(kind, train_x, train_y, test_x, test_y, modes=modes, mode_std=std)
