"""The critic family: a batch-norm-free critic with wgan, wgan-gp, lsgan, hinge and the f-GANs."""
from __future__ import annotations

import torch

from ... import _checks, losses
from ...nn import (
    MLPCritic,
)
from ...penalties import wgan_critic_loss
from .discriminator import R1_OPTIONS, PenalisedD
from .options import POSITIVE, number


class CriticGAN(PenalisedD):
    """G and a batch-norm-free critic trained on one objective, alternating (n_critic critic steps, then G)."""

    groups = {"D": ("D",), "G": ("G",)}
    defaults = dict(update="alternating")
    alternating_only = True
    data_defaults = {k: dict(lr=2e-3, batch_size=512) for k in ("gmm8", "gmm25")}  # measured: docs/defaults.md

    def build(self, x_dim, z_dim):
        return {"G": self.generator(z_dim, x_dim), "D": self.critic(x_dim)}

    def critic(self, x_dim):
        """The batch-norm-free critic: an MLPCritic, or under --arch dcgan the DCGAN D without batch norm (whatever
        cfg.batch_norm says: a gradient penalty and weight clipping are per-sample constraints that batch statistics
        would couple across the batch; the WGAN-GP critic's penalty then takes the generic double backward)."""
        if self.convolutional(x_dim):
            return self.conv_net("D", batch_norm=False)
        return MLPCritic(x_dim, hidden=(self.hidden, self.hidden), eager=self.kw["eager"])

    def objective(self, v_real, v_fake):
        """(critic loss, generator loss)."""
        raise NotImplementedError

    def d(self, x):
        """The critic's outputs on x."""
        return self.nets["D"](x)

    def critic_loss(self, ctx, x, gz, gen, i=0):
        """The critic's loss on its step i of this iteration; with the R1 penalty (the recipes whose options include
        'r1') from the same forward over the real batch (PenalisedD.real_logits)."""
        v_real, r1 = self.real_logits(ctx, (x,), i, critic=self.d)
        return self.plus(self.objective(v_real, self.d(gz))[0], r1)

    def generator_loss(self, x, gz):
        return self.objective(self.d(x).detach(), self.d(gz))[1]

    def after_critic_step(self):
        pass

    def iteration(self, ctx, next_batch, gen):
        G = self.nets["G"]
        for i in range(self.cfg.n_critic):
            x = next_batch()
            with torch.no_grad():
                gz = G(self.latent(ctx, x.shape[0], gen))
            d_loss = self.critic_loss(ctx, x, gz, gen, i)
            self.apply(ctx, "D", self.grads(ctx, d_loss, self.params("D")))
            self.after_critic_step()
        gz = G(self.latent(ctx, x.shape[0], gen))
        g_loss = self.generator_loss(x, gz)
        self.apply(ctx, "G", self.through_d(ctx, g_loss, (gz,), self.params("G")))
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach()}

    @torch.no_grad()
    def features(self, x):
        return None


class _Clipped:
    """Weight clipping of the critic to [-c, c] after each critic step (c = cfg.extra['clip'], default 0.01).

    Under mixed precision the clipped critic runs in fp32 (autocast off inside it; G stays in half precision): with
    weights of 0.01 its gradient is a small difference of real and fake terms that bf16 / fp16 GEMMs do not resolve
    (measured on the tiny test nets: cosine 0.3-0.6 to the fp32 gradient)."""

    options = (number("clip", 0.01, "the critic's weights are clamped to [-clip, clip] after each step", POSITIVE),)

    def d(self, x):
        if _checks.autocast_dtype(x) is None:
            return self.nets["D"](x)
        with torch.autocast(x.device.type, enabled=False):
            return self.nets["D"](x.float())

    def after_critic_step(self):
        c = self.opt("clip")
        with torch.no_grad():
            for p in self.params("D"):
                p.clamp_(-c, c)


class WGAN(_Clipped, CriticGAN):
    name = "wgan"
    defaults = dict(update="alternating", optimizer="rmsprop", lr=5e-5, n_critic=5, batch_size=64)
    data_defaults: dict = {}  # the paper's on the mixtures too (measured: docs/defaults.md)

    def objective(self, v_real, v_fake):
        return losses.wasserstein_losses(v_real, v_fake)


class WGANGP(CriticGAN):
    name = "wgan-gp"
    options = (number("gp_weight", 10.0, "the gradient penalty's weight lambda"),)
    defaults = dict(update="alternating", lr=1e-4, beta1=0.0, beta2=0.9, n_critic=5)
    data_defaults = {k: dict(lr=1e-3, batch_size=512) for k in ("gmm8", "gmm25")}  # docs/defaults.md

    def objective(self, v_real, v_fake):
        return losses.wasserstein_losses(v_real, v_fake)

    def critic_loss(self, ctx, x, gz, gen, i=0):
        # the interpolation draws come from the trainer's generator too (one seed sets everything)
        weight = self.opt("gp_weight")
        fused = False if self.kw["eager"] else None  # the eager twin: the textbook double backward
        eps = self.uniform(ctx, x.shape[0], 1, gen)[:, 0]  # this rank's slice of the global batch's draw
        return wgan_critic_loss(self.nets["D"], x, gz, weight=weight, eps=eps, fused=fused, scaler=ctx.scaler).loss


class LSGAN(CriticGAN):
    name = "lsgan"
    options = R1_OPTIONS  # R1 on the critic's real inputs (PenalisedD.real_logits), off unless set

    def objective(self, v_real, v_fake):
        return losses.least_squares_losses(v_real, v_fake)


class HingeGAN(CriticGAN):
    name = "hinge"
    options = R1_OPTIONS

    def objective(self, v_real, v_fake):
        return losses.hinge_losses(v_real, v_fake)


def _fgan(div: str):
    class FGAN(CriticGAN):
        name = f"fgan-{div}"
        divergence = div
        options = R1_OPTIONS

        def objective(self, v_real, v_fake):
            return losses.f_divergence_losses(v_real, v_fake, self.divergence)

    FGAN.__name__ = FGAN.__qualname__ = f"FGAN_{div}"
    return FGAN
