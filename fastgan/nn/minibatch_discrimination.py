from __future__ import annotations

import torch
from torch import nn

from .._checks import positive_int
from ..ops.minibatch_discrimination import minibatch_discrimination


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. (2016): features f (B, in_features) -> [f, o] (B, in_features + kernels) with
    M = f T reshaped to (B, kernels, kernel_dim) and o[i, k] = sum_j exp(-|M[i, k] - M[j, k]|_1), through the fused
    op (no B x B x K x C tensor). T: (in_features, kernels * kernel_dim), initialised N(0, 0.05^2) as in the paper's
    code. exclude_self: leave out j = i (which adds exp(0) = 1 to every o[i, k] otherwise).

    global_batch: under torch.distributed (an initialised process group), o also sums over the other ranks' rows
    (all_gather with gradient: each rank's M receives the gradients of every rank's o), so the layer sees the global
    batch as a single-process run would; without a process group it is the local batch.
    forward(f, reference=None): a reference batch of features (R, in_features), for the "reference batch" variant,
    in which o sums over the reference rows instead of the batch's own."""

    def __init__(self, in_features: int, kernels: int = 100, kernel_dim: int = 5, exclude_self: bool = False,
                 global_batch: bool = False, impl: str | None = None):
        super().__init__()
        self.in_features = positive_int(in_features, "in_features")
        self.kernels = positive_int(kernels, "kernels")
        self.kernel_dim = positive_int(kernel_dim, "kernel_dim")
        self.exclude_self, self.global_batch, self.impl = bool(exclude_self), bool(global_batch), impl
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * 0.05)

    def _project(self, f: torch.Tensor, arg: str) -> torch.Tensor:
        if f.dim() != 2 or f.shape[1] != self.in_features:
            raise ValueError(f"{arg}: expected a 2-d tensor of shape (batch, {self.in_features}), got shape "
                             f"{tuple(f.shape)}")
        return (f @ self.T).view(f.shape[0], self.kernels, self.kernel_dim)

    def forward(self, f: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        m = self._project(f, "f")
        if reference is not None:
            o = minibatch_discrimination(m, self._project(reference, "reference"), impl=self.impl)
        else:
            o = minibatch_discrimination(m, None, self.exclude_self, impl=self.impl)
            if self.global_batch and torch.distributed.is_available() and torch.distributed.is_initialized():
                o = o + self._other_ranks(m)
        return torch.cat([f, o.to(f.dtype)], 1)

    @staticmethod
    def _other_ranks(m: torch.Tensor) -> torch.Tensor:
        """sum over the rows of the other ranks' M (gathered with gradient)."""
        import torch.distributed as dist
        from torch.distributed.nn.functional import all_gather

        rank, world = dist.get_rank(), dist.get_world_size()
        if world == 1:
            return torch.zeros(m.shape[:2], dtype=m.dtype, device=m.device)
        sizes = [torch.zeros(1, dtype=torch.int64, device=m.device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([m.shape[0]], dtype=torch.int64, device=m.device))
        sizes = [int(t.item()) for t in sizes]
        if len(set(sizes)) != 1:  # every rank sees the same list, so every rank raises (no hang)
            raise ValueError(f"f: global_batch needs the same batch size on every rank, got {sizes} (drop the last "
                             "uneven batch, e.g. DistributedSampler with drop_last=True)")
        parts = all_gather(m.contiguous())
        others = torch.cat([p for r, p in enumerate(parts) if r != rank])
        return minibatch_discrimination(m, others)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, kernels={self.kernels}, kernel_dim={self.kernel_dim}, "
                f"exclude_self={self.exclude_self}, global_batch={self.global_batch}")


class MinibatchStdDev(nn.Module):
    """ProGAN / StyleGAN's minibatch standard deviation layer: x (N, C, *spatial) -> (N, C + num_channels, *spatial).
    The batch is split into groups of G = min(group_size, N) samples; per group, the standard deviation of each
    feature over the group's samples (sqrt(var + 1e-8), population variance) is averaged over the features of each of
    num_channels channel slices and over space, and appended as constant channels. A batch not divisible by G raises
    ValueError (StyleGAN's choice: groups of unequal size would give the samples of the last group a statistic of
    different variance); use a divisible batch or group_size=N."""

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size = positive_int(group_size, "group_size")
        self.num_channels = positive_int(num_channels, "num_channels")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"x: expected a tensor of shape (N, C, ...), got shape {tuple(x.shape)}")
        n, c = x.shape[:2]
        g = min(self.group_size, n)
        f = self.num_channels
        if n % g:
            raise ValueError(f"x: batch size {n} is not divisible by the group size {g} (group_size="
                             f"{self.group_size}); use a batch that is a multiple of it, or group_size={n}")
        if c % f:
            raise ValueError(f"x: {c} channels are not divisible by num_channels={f}")
        spatial = x.shape[2:]
        y = x.reshape(g, n // g, f, c // f, *spatial).float()
        y = (y - y.mean(0)).square().mean(0)        # (n/g, f, c/f, *spatial): variance over the group
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2] + [3 + i for i in range(len(spatial))])  # (n/g, f)
        y = y.reshape(-1, f, *([1] * len(spatial))).repeat(g, 1, *spatial)  # (n, f, *spatial)
        return torch.cat([x, y.to(x.dtype)], 1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
