"""What the examples and bench/bench_byo.py share: a user's own plain-torch DCGAN (no fastgan in it), the WGAN-GP
penalty as it is usually written by hand, the bundled digits as 32 x 32 images, a side-by-side timer, a relative
difference of tensors and the examples' command line.

Nothing here imports fastgan's layers: these are the models `fastgan.fuse` is meant for, written the way they are
found in DCGAN / WGAN-GP code (Radford et al. 2016: 4 x 4 stride-2 convolutions, batch norm, ReLU in G, LeakyReLU 0.2
in D, Tanh out; Gulrajani et al. 2017: no batch norm in the critic).
"""
from __future__ import annotations

import argparse
import statistics
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fastgan.benchmarking import timeit
from fastgan.data import digits

__all__ = ["Discriminator", "dcgan_init", "digits_images", "generator", "hand_written_penalty", "relative_difference",
           "run_script", "side_by_side"]

SIZE = 32  # image side: 4 -> 8 -> 16 -> 32 in G, the reverse in D


def generator(z_dim: int = 64, base: int = 32, nc: int = 1, batch_norm: bool = True) -> nn.Sequential:
    """G(z) (N, z_dim) -> images (N, nc, 32, 32) in [-1, 1], as an nn.Sequential (the PyTorch DCGAN tutorial's way).

    With batch norm the layers before it have no bias (the norm's shift is one); the output layer keeps its bias."""
    widths = (z_dim, 4 * base, 2 * base, base)
    layers: list[nn.Module] = [nn.Unflatten(1, (z_dim, 1, 1))]
    for i in range(3):  # 1 -> 4 (kernel 4, stride 1, no padding), then 4 -> 8 -> 16
        stride, pad = (1, 0) if i == 0 else (2, 1)
        layers.append(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, stride, pad, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(widths[i + 1]))
        layers.append(nn.ReLU(inplace=True))
    layers += [nn.ConvTranspose2d(base, nc, 4, 2, 1), nn.Tanh()]  # 16 -> 32
    return dcgan_init(nn.Sequential(*layers))


class Discriminator(nn.Module):
    """D(x) (N, nc, 32, 32) -> logits (N,): three 4 x 4 stride-2 convolutions with LeakyReLU 0.2 (batch norm on the
    second and third, none on the first, as in DCGAN), then a 4 x 4 convolution to one logit. Activations are
    function calls in forward (fastgan.fuse finds them with torch.fx). batch_norm=False: the WGAN-GP critic (every
    convolution keeps its bias; norm2 / norm3 are nn.Identity). init 'dcgan' (dcgan_init) or 'torch' (the layers' own
    default initialisation, as WGAN-GP code keeps it)."""

    def __init__(self, base: int = 32, nc: int = 1, batch_norm: bool = True, init: str = "dcgan"):
        super().__init__()
        self.conv1 = nn.Conv2d(nc, base, 4, 2, 1)  # 32 -> 16
        self.conv2 = nn.Conv2d(base, 2 * base, 4, 2, 1, bias=not batch_norm)  # 16 -> 8
        self.norm2 = nn.BatchNorm2d(2 * base) if batch_norm else nn.Identity()
        self.conv3 = nn.Conv2d(2 * base, 4 * base, 4, 2, 1, bias=not batch_norm)  # 8 -> 4
        self.norm3 = nn.BatchNorm2d(4 * base) if batch_norm else nn.Identity()
        self.conv4 = nn.Conv2d(4 * base, 1, 4, 1, 0)  # 4 -> 1
        if init not in ("dcgan", "torch"):
            raise ValueError(f"init: expected 'dcgan' or 'torch', got {init!r}")
        if init == "dcgan":
            dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.norm2(self.conv2(h)), 0.2)
        h = F.leaky_relu(self.norm3(self.conv3(h)), 0.2)
        return self.conv4(h).flatten()


def dcgan_init(net: nn.Module) -> nn.Module:
    """DCGAN's initialisation: conv weights N(0, 0.02), batch-norm scales N(1, 0.02), biases and shifts 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return net


def hand_written_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor,
                         weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP's penalty as usually written: weight * E[(|grad D(x_hat)| - 1)^2], x_hat = eps real + (1 - eps) fake,
    the gradient taken with create_graph=True so that the penalty backpropagates into the critic's parameters."""
    e = eps.view(-1, *[1] * (real.dim() - 1))
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def digits_images(size: int = SIZE) -> torch.Tensor:
    """fastgan's bundled scikit-learn digits (the trainer's 'digits': 1437 training images of 8 x 8 in [-1, 1]) as
    (N, 1, size, size) images, bilinearly upsampled."""
    x = digits().train_x.view(-1, 1, 8, 8)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(-1.0, 1.0)


def side_by_side(fns: dict, reps: int, warmup: int = 1) -> dict:
    """{name: median seconds} of each callable, timed in alternating rounds (one call of each per round, after
    `warmup` calls of each), so that a machine whose speed drifts slows every candidate alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name] += timeit(fn, warmup=0, reps=1).times
    return {name: statistics.median(ts) for name, ts in times.items()}


def relative_difference(a, b) -> float:
    """The largest |a - b| of tensors a[i], b[i], each relative to the largest |a[i]| (pairs where a[i] is all zero:
    absolute): how far apart two computations of the same tensors are, on each tensor's own scale."""
    out = 0.0
    for x, y in zip(a, b, strict=True):
        scale = x.abs().max().item()
        out = max(out, (x - y).abs().max().item() / (scale if scale > 0 else 1.0))
    return out


def run_script(main: Callable[..., object], doc: str, quick: str) -> None:
    """An example's command line: --quick (main(small=True): `quick` says what that runs) and --threads N.

    One torch thread unless asked for more: the times then compare the two computations rather than the machine's
    scheduler. With torch's default of a thread per core, a machine whose cores other processes keep busy makes every
    small op wait for a descheduled thread (measured on a loaded 2-core VM: the critic step 19x slower with 2
    threads than with 1)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch's default, a thread "
                                                          "per core)")
    args = p.parse_args()
    if args.threads < 0:
        p.error(f"--threads: expected a number >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    main(small=args.quick)
