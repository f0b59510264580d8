from __future__ import annotations

import torch
from torch import nn

from ..ops.mmd import DEFAULT_BANDWIDTHS, _check_kernel, mmd2


class MMDLoss(nn.Module):
    """The squared MMD between two batches (GMMN's loss; MMD-GAN's on learned features): samples of any shape are
    flattened to (batch, features). No parameters. bandwidths: a sequence, or 'median' (recomputed per call)."""

    def __init__(self, kernel: str = "gaussian", bandwidths=DEFAULT_BANDWIDTHS, weights=None,
                 estimator: str = "biased", impl: str | None = None):
        super().__init__()
        if not (isinstance(bandwidths, str) and bandwidths == "median"):
            kernel, bandwidths, weights = _check_kernel(kernel, bandwidths, weights)
        if estimator not in ("biased", "unbiased"):
            raise ValueError(f"estimator: expected 'biased' or 'unbiased', got {estimator!r}")
        self.kernel, self.bandwidths, self.weights = kernel, bandwidths, weights
        self.estimator, self.impl = estimator, impl

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return mmd2(x.flatten(1), y.flatten(1), self.kernel, self.bandwidths, self.weights, self.estimator, self.impl)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel!r}, bandwidths={self.bandwidths}, estimator={self.estimator!r}"
