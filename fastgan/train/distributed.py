"""Data-parallel training on torch.distributed (launched with `torchrun --nproc_per_node N -m fastgan train ...`).

Every rank holds the whole model and the same random generators; per iteration each rank takes its slice of the
*global* batch (the same BatchSampler indices and the same global latent draw on every rank, sliced by rank), so a
run on N ranks sees exactly the batches of a one-process run with the same batch size — and a checkpoint (global
sampler and generator states) resumes on any world size that divides the batch. Gradients are averaged across ranks
(one flattened all_reduce per optimiser group) before each optimiser step: what DistributedDataParallel's reducer
does, done explicitly because the recipes take gradients with torch.autograd.grad (DDP's hooks fire only on
.backward()). Batch norm uses global batch statistics (GlobalBatchNorm1d: differentiable all_reduce of the sums;
torch's SyncBatchNorm runs only on GPUs), so the forward pass matches the one-process run too. Rank 0 writes the
checkpoints, metrics (averaged across ranks) and pictures.

Per-rank, not global: MMD^2 in gmmn / mmdgan is computed on each rank's slice (a U/V-statistic of the local batch),
and the 'improved' recipe's minibatch discrimination and feature-matching target use the local batch
(nn.MinibatchDiscrimination(global_batch=True) exists for the all-gathered version).
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["GlobalBatchNorm1d", "all_reduce_mean_", "collective_timeout", "convert_batch_norm", "init_from_env",
           "world"]


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: str) -> str:
    """Initialise the process group from torchrun's environment (WORLD_SIZE > 1): nccl for CUDA devices (each rank on
    cuda:LOCAL_RANK), gloo for the CPU. Returns the device this rank trains on."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return device
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=collective_timeout())
    return device


def collective_timeout() -> datetime.timedelta:
    """How long a collective waits for a rank that does not come (issue 31: a dead rank must stop the others, not
    hang them): FASTGAN_DIST_TIMEOUT seconds, default 300 (torch's default is 30 minutes). Under torchrun a rank that
    dies is noticed sooner: the agent stops the others and exits non-zero."""
    text = os.environ.get("FASTGAN_DIST_TIMEOUT", "300")
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not (seconds > 0 and seconds < float("inf")):
        raise ValueError(f"FASTGAN_DIST_TIMEOUT: expected a positive number of seconds, got {text!r}")
    return datetime.timedelta(seconds=seconds)


def all_reduce_mean_(tensors: list) -> None:
    """Average the tensors across ranks in place (one flattened all_reduce)."""
    _, size = world()
    if size == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= size
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training-mode statistics are those of the global batch (all ranks), with gradients through
    the reduction; identical to BatchNorm1d without a process group. Running statistics as BatchNorm1d's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, size = world()
        if not self.training or size == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        n = torch.tensor([x.shape[0]], dtype=x.dtype, device=x.device)
        sums = all_reduce(torch.cat([x.sum(0), n]))  # two passes (mean, then squared deviations): no cancellation
        total = sums[-1]
        mean = sums[:-1] / total
        var = all_reduce((x - mean).square().sum(0)) / total
        with torch.no_grad():
            if self.track_running_stats:
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * total / (total - 1).clamp_min(1), m)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight + self.bias if self.affine else y


def convert_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d in `module` by a GlobalBatchNorm1d with the same state (in place)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm1d:
            new = GlobalBatchNorm1d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            if child.running_mean is not None:
                new = new.to(child.running_mean)  # device and dtype
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            convert_batch_norm(child)
    return module
