from __future__ import annotations

import torch
from torch import nn

from ..ops.kernel_sum import KERNELS, _check_kernel, _check_poly, mmd2


class MMDLoss(nn.Module):
    """The squared MMD between two batches (GMMN's loss; MMD-GAN's on learned features): samples of any shape are
    flattened to (batch, features). No parameters. bandwidths: a sequence, None (fastgan.mmd2's default: 1, 2, 4, 8,
    16, or 1 / features for poly, resolved per call) or 'median' (recomputed per call); degree, offset: the poly
    kernel's."""

    def __init__(self, kernel: str = "gaussian", bandwidths=None, weights=None, estimator: str = "biased",
                 impl: str | None = None, *, degree: int | None = None, offset: float | None = None):
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel: expected one of {', '.join(map(repr, KERNELS))}, got {kernel!r}")
        _check_poly(kernel, degree, offset)
        if bandwidths is not None and not (isinstance(bandwidths, str) and bandwidths == "median"):
            kernel, bandwidths, weights = _check_kernel(kernel, bandwidths, weights)
        if estimator not in ("biased", "unbiased"):
            raise ValueError(f"estimator: expected 'biased' or 'unbiased', got {estimator!r}")
        self.kernel, self.bandwidths, self.weights = kernel, bandwidths, weights
        self.estimator, self.impl = estimator, impl
        self.degree, self.offset = degree, offset

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return mmd2(x.flatten(1), y.flatten(1), self.kernel, self.bandwidths, self.weights, self.estimator, self.impl,
                    degree=self.degree, offset=self.offset)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel!r}, bandwidths={self.bandwidths}, estimator={self.estimator!r}"
