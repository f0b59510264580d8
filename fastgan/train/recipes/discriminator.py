"""The discriminator's side of the adversarial recipes: the R1 penalty on a D's real inputs (PenalisedD: gan, bigan,
lr, jlr, infogan, the critic family) and the cross-entropy D's steps (CrossEntropyD: gan, bigan, lr, jlr). The
recipes without a D (the autoencoders, gmmn, the VAEs) inherit neither."""
from __future__ import annotations

import torch

from ... import losses
from ...penalties import r1_from_outputs
from .base import Recipe
from .gradients import StepContext
from .options import integer, number

# The R1 weight on the cross-entropy D of gan / bigan / lr / jlr on mnist5k (measured: docs/defaults.md)
MNIST_R1 = 1.0
MNIST_R1_DEFAULTS = {"mnist5k": dict(extra={"r1": MNIST_R1})}  # data_defaults of gan / bigan / lr / jlr / infogan
# the options of a recipe that takes the R1 penalty on its D: gamma, and K of lazy R1 (PenalisedD.r1_weight)
R1_OPTIONS = (
    number("r1", 0.0, "the R1 penalty weight gamma on D's real inputs (a BiGAN's: the joint (x, E(x)))", flag="--r1",
           metavar="GAMMA"),
    integer("r1_every", 1, "lazy R1 (StyleGAN2): the penalty, weighted K x GAMMA, on every K-th step of D only",
            check=(lambda v: v >= 1, "a positive int (--r1-every K: R1 on every K-th step of D)"), flag="--r1-every",
            metavar="K"),
)


class PenalisedD(Recipe):
    """A recipe with a D that may take the R1 penalty (the option only where the recipe lists R1_OPTIONS; without it
    the penalty is off)."""

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        specs = cls.option_specs()
        if "r1" in specs:
            gamma, every = (specs[k].value(cfg.extra) for k in ("r1", "r1_every"))
            if every != 1 and gamma == 0:
                raise ValueError(f"extra['r1_every']: {every} without the R1 penalty (extra['r1'] is 0): set --r1 "
                                 f"GAMMA > 0 too")

    def r1_weight(self, ctx: StepContext, i: int = 0) -> float:
        """The R1 weight of D's step i (0-based) of this iteration: lazy R1 (StyleGAN2) with gamma = cfg.extra['r1']
        and K = cfg.extra['r1_every'] (default 1): K * gamma on D's steps k = ctx.step * n_critic + i with k % K == 0,
        0 on the others (and everywhere when gamma is 0)."""
        gamma, every = self._options.get("r1", 0.0), self._options.get("r1_every", 1)
        if gamma <= 0 or (ctx.step * self.cfg.n_critic + i) % every:
            return 0.0
        return every * gamma

    def real_logits(self, ctx: StepContext, real: tuple, i: int = 0, critic=None):
        """(critic(*real), the R1 penalty gamma / 2 E|grad D(real)|^2 or None) from ONE forward of the critic (default
        D) on its real inputs (Mescheder et al. 2018; for a BiGAN the joint (x, E(x))), the penalty on D's step i of
        this iteration with r1_weight's weight (None when 0). On a penalty step the inputs that do not require grad
        are replaced by detached copies that do (one that already does, E(x) in a simultaneous BiGAN step, is used
        as it is: the penalty's gradient is w.r.t. it, not through it); the logits serve the loss, the penalty is
        their input gradient (fastgan.penalties.r1_from_outputs: the double backward, fastgan's weight gradients
        skipped in the inner one, the fp16 scale applied and removed there). Fused nets and eager twins take the
        same path."""
        critic = self.nets["D"] if critic is None else critic
        gamma = self.r1_weight(ctx, i)
        if not gamma:
            return critic(*real), None
        real = tuple(t if t.requires_grad else t.detach().requires_grad_(True) for t in real)
        out = critic(*real)
        return out, r1_from_outputs(out, real, gamma, scaler=ctx.scaler)

    @staticmethod
    def plus(loss, penalty):
        """loss + penalty, or loss when there is no penalty (None)."""
        return loss if penalty is None else loss + penalty


class CrossEntropyD(PenalisedD):
    """A recipe whose D is trained by cross-entropy on real vs fake inputs (d_inputs), n_critic steps per iteration."""

    def d_inputs(self, ctx: StepContext, x: torch.Tensor, gen: torch.Generator) -> tuple[tuple, tuple]:
        """D's real and fake inputs for the data batch x: ((x,), (G(z),)) for a GAN, ((x, E(x)), (G(z), z)) for a
        BiGAN."""
        raise NotImplementedError

    def d_steps(self, ctx: StepContext, next_batch, gen):
        """cfg.n_critic steps of D on fresh batches against the generating networks' inputs (no graph into them);
        returns the last batch, D's loss and its logits on real and fake."""
        D = self.nets["D"]
        for i in range(self.cfg.n_critic):
            x = next_batch()
            with torch.no_grad():
                real, fake = self.d_inputs(ctx, x, gen)
            l_real, r1 = self.real_logits(ctx, real, i)
            l_fake = D(*fake)
            d_loss = losses.gan_d_loss(l_real, l_fake)
            self.apply(ctx, "D", self.grads(ctx, self.plus(d_loss, r1), self.params("D")))
        return x, d_loss, l_real, l_fake
