"""An exponential moving average of G's parameters (TrainConfig.ema, `--ema KIMG`): what samples and evaluation read
when it is on (Karras et al.'s G_ema; the schedule is StyleGAN2-ADA's).

    half-life   h = cfg.ema * 1000 images (StyleGAN2-ADA's ema_kimg), with the ramp-up
                h_t = min(h, cfg.ema_rampup * images seen so far)   (cfg.ema_rampup 0: no ramp-up)
    decay       beta_t = 0.5 ** (batch / h_t): the average halves its distance to G every h_t images
    update      after every iteration (one G step): p_ema <- p + beta_t (p_ema - p) for every parameter; buffers (batch
                norm running statistics) are copied from G, not averaged

"Images seen" is (iterations done) x cfg.batch_size: the images G's steps have been trained on (the global batch
under torch.distributed; n_critic does not count: D's extra batches are not G's). The update reads only G's
parameters and the step, so every rank of a data-parallel run, whose G is the same, holds the same average.

Only G is averaged: an encoder E (bigan, lr, jlr, the autoencoders, the encoder family) is evaluated as trained — its
features are the representation measured (1NN), and reconstructions G_ema(E(x)) pair the average with the E that G was
trained against. D, Q and the other networks are training-only.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """The moving average of `net` (a deep copy in eval mode, no gradients); half_life_images 0 < h, rampup >= 0,
    batch the images per iteration."""

    def __init__(self, net: nn.Module, half_life_images: float, rampup: float, batch: int):
        if not half_life_images > 0:
            raise ValueError(f"ema: expected a half-life > 0 images, got {half_life_images!r}")
        self.half_life, self.rampup, self.batch = float(half_life_images), float(rampup), int(batch)
        self.module = copy.deepcopy(net).eval().requires_grad_(False)

    def beta(self, step: int) -> float:
        """The decay of the update after `step` iterations (step >= 1: the images of those iterations seen)."""
        h = self.half_life
        if self.rampup > 0:
            h = min(h, self.rampup * step * self.batch)
        return 0.5 ** (self.batch / h) if h > 0 else 0.0

    @torch.no_grad()
    def update(self, net: nn.Module, step: int) -> None:
        """Move the average toward `net` (the trained G) after iteration `step` (1-based: iterations done)."""
        beta = self.beta(step)
        ours, theirs = list(self.module.parameters()), list(net.parameters())
        if len(ours) != len(theirs):
            raise RuntimeError(f"ema: the average has {len(ours)} parameters, G has {len(theirs)}")
        # p + beta (p_ema - p) = lerp(p_ema, p, 1 - beta), one foreach kernel over the tensors
        torch._foreach_lerp_(ours, theirs, 1.0 - beta)
        for b_ema, b in zip(self.module.buffers(), net.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)

    def swapped_into(self, nets: dict, name: str = "G"):
        """A context manager: nets[name] is the average while it runs (evaluation), the trained net again after."""
        return _Swap(nets, name, self.module)


class _Swap:
    def __init__(self, nets, name, module):
        self.nets, self.name, self.module = nets, name, module

    def __enter__(self):
        self.saved = self.nets[self.name]
        self.nets[self.name] = self.module

    def __exit__(self, *exc):
        self.nets[self.name] = self.saved
        self.module.eval()
        return False
