"""What a recipe's step works with (Gradients, a base of Recipe): the step context the trainer hands it, the
gradients (scaled by the context's fp16 GradScaler when there is one; a generator's in two stages through D), the
optimiser step of a group (averaged across ranks under torch.distributed) and the per-net learning-rate scales."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ...ops.weight_grads import input_grads
from ..distributed import all_reduce_mean_


@dataclass(frozen=True)
class StepContext:
    """What the trainer hands a recipe with every iteration (Recipe.step and the helpers it calls): the run's
    optimisers, fp16 loss scaler and data-parallel shard. The recipe's own state is its configuration (cfg) and its
    networks; nothing else is set on it from outside."""

    opts: Mapping[str, torch.optim.Optimizer]  # one optimiser per recipe group (Recipe.groups)
    scaler: torch.amp.GradScaler | None = None  # the fp16 GradScaler (cfg.precision='fp16'), else None
    shard: tuple[int, int] = (0, 1)  # (rank, world size) under torch.distributed
    step: int = 0  # the iteration's index in the run (0-based): lazy R1 counts D's steps from it


class Gradients:
    """Gradient plumbing: reads the step context and the recipe's nets, groups and cfg.update, nothing else."""

    # ---- gradients (scaled by the step context's fp16 GradScaler when there is one) ----
    @staticmethod
    def scaled(ctx: StepContext, loss):
        return loss if ctx.scaler is None else ctx.scaler.scale(loss.float())  # 2^16 x an fp16 loss overflows

    def grads(self, ctx: StepContext, loss, params, retain=False):
        return torch.autograd.grad(self.scaled(ctx, loss), params, retain_graph=retain)

    def through_d(self, ctx: StepContext, loss, samples: tuple, params, extra=None):
        """The gradients of `loss` w.r.t. `params` of the networks that made `samples` (the tensors fed to D), in two
        stages: d loss / d samples through input_grads (D's fastgan layers skip their weight GEMMs), then the
        backward of the generating networks from there; `extra`, a scalar loss reaching the params directly, is
        added."""
        g = input_grads(self.scaled(ctx, loss), samples, retain_graph=True)
        if extra is not None:
            samples, g = (*samples, extra), (*g, self.scaled(ctx, torch.ones_like(extra)))
        return torch.autograd.grad(samples, params, g)

    def lr_scales(self) -> dict[str, float]:
        """Net name -> the factor its learning rate runs at, relative to the schedule's (trainer.make_optimizers);
        nets not named run at 1."""
        return {}

    def params(self, group: str) -> list:
        return [p for name in self.groups[group] for p in self.nets[name].parameters()]

    def apply(self, ctx: StepContext, group: str, grads) -> None:
        """Set the group's gradients (averaged across ranks under torch.distributed) and step its optimiser."""
        if ctx.shard[1] > 1:
            grads = [g.clone() for g in grads]
            all_reduce_mean_(grads)
        for p, g in zip(self.params(group), grads):
            p.grad = g
        if ctx.scaler is None:
            ctx.opts[group].step()
            return
        # unscales, skips the step if a gradient is not finite; the scale is updated once every gradient computed
        # with it has been applied: after each step when updates alternate, at the end of the iteration
        # (end_iteration) when every gradient comes from one forward pass
        ctx.scaler.step(ctx.opts[group])
        if self.cfg.update == "alternating":
            ctx.scaler.update()

    def end_iteration(self, ctx: StepContext) -> None:
        """Called by the trainer after each step(): the fp16 scale update of a simultaneous iteration."""
        if ctx.scaler is not None and self.cfg.update == "simultaneous":
            ctx.scaler.update()
