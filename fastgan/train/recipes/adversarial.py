"""The cross-entropy GAN family: gan, bigan and the Table-1 baselines lr, jlr (D: cross-entropy on the data)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ... import losses
from .base import ENCODER_OUT_OPTION
from .discriminator import MNIST_R1_DEFAULTS, R1_OPTIONS, CrossEntropyD
from .options import POSITIVE, number, switch


class GAN(CrossEntropyD):
    """On the 2-D mixtures (data_defaults) it trains with lr 2e-3, batch 512, alternating updates and the R1 penalty
    (gamma 0.1) on D, for 10000 steps on gmm8 and 20000 on gmm25 (measured: docs/defaults.md). cfg.extra['r1'] =
    gamma turns R1 on anywhere (cfg.extra['r1_every'] = K: lazy, K * gamma on every K-th step of D); on mnist5k it is
    on (gamma 1, MNIST_R1) for every recipe with a cross-entropy D."""
    name = "gan"
    groups = {"D": ("D",), "G": ("G",)}
    options = R1_OPTIONS
    _mixture = dict(lr=2e-3, batch_size=512, extra={"r1": 0.1})
    data_defaults = {"gmm8": dict(_mixture, steps=10000), "gmm25": dict(_mixture, steps=20000),
                     **MNIST_R1_DEFAULTS}

    def build(self, x_dim, z_dim):
        return {"G": self.generator(z_dim, x_dim), "D": self.discriminator(x_dim)}

    def iteration(self, ctx, next_batch, gen):
        G, D, kind = self.nets["G"], self.nets["D"], self.cfg.g_loss
        if self.cfg.update == "simultaneous":
            x = next_batch()
            gz = G(self.latent(ctx, x.shape[0], gen))
            l_real, r1 = self.real_logits(ctx, (x,))
            l_fake = D(gz)
            d_loss = losses.gan_d_loss(l_real, l_fake)
            g_loss = losses.gan_g_loss(l_fake, kind)
            g_d = self.grads(ctx, self.plus(d_loss, r1), self.params("D"), retain=True)
            # every gradient before any update: they share D's graph
            self.apply(ctx, "G", self.through_d(ctx, g_loss, (gz,), self.params("G")))
            self.apply(ctx, "D", g_d)
        else:
            x, d_loss, l_real, l_fake = self.d_steps(ctx, next_batch, gen)
            gz = G(self.latent(ctx, x.shape[0], gen))
            g_loss = losses.gan_g_loss(D(gz), kind)
            self.apply(ctx, "G", self.through_d(ctx, g_loss, (gz,), self.params("G")))
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach(), **losses.d_accuracy(l_real, l_fake)}

    def d_inputs(self, ctx, x, gen):
        return (x,), (self.nets["G"](self.latent(ctx, x.shape[0], gen)),)

    @torch.no_grad()
    def features(self, x):
        return self.nets["D"].features(x)


class BiGAN(CrossEntropyD):
    """On mnist5k D takes the R1 penalty on its real pairs (x, E(x)), gamma 1 (MNIST_R1).

    Variants (issue 30; measured in docs/results.md, off by default): cfg.extra['e_lr'] = s runs E's learning rate at
    s x the schedule's (G's stays 1); cfg.extra['stochastic_encoder'] = True makes E a diagonal Gaussian q(z | x)
    whose sample mean + exp(log_var / 2) eps D sees (ALI's stochastic encoder, Dumoulin et al. 2017); E(x) for
    evaluation is its mean."""

    name = "bigan"
    groups = {"D": ("D",), "GE": ("G", "E")}
    options = (*R1_OPTIONS, ENCODER_OUT_OPTION,
               number("e_lr", 1.0, "E's learning rate over G's (they share the optimiser group GE)", POSITIVE),
               switch("stochastic_encoder", False, "E a diagonal Gaussian q(z | x) whose draws D sees (ALI's)"))
    inverse_g_loss = True
    data_defaults = MNIST_R1_DEFAULTS

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        if cfg.extra.get("stochastic_encoder") and "encoder_out" in cfg.extra:
            raise ValueError("extra['encoder_out']: a stochastic encoder's mean and log-variance are linear outputs; "
                             "drop encoder_out or stochastic_encoder")

    def build(self, x_dim, z_dim):
        self.stochastic = self.opt("stochastic_encoder")
        return {"G": self.generator(z_dim, x_dim),
                "E": self.gaussian_encoder(x_dim, z_dim) if self.stochastic else self.encoder(x_dim, z_dim),
                "D": self.joint_discriminator(x_dim, z_dim)}

    def lr_scales(self):
        return {"E": self.opt("e_lr")}

    def encode(self, ctx, x, gen):
        """E's code for x in a training step: E(x), or a draw from q(z | x) for a stochastic encoder."""
        if not self.stochastic:
            return self.nets["E"](x)
        mean, log_var = self.nets["E"].moments(x)
        return mean + (0.5 * log_var).exp() * self.normal(ctx, x.shape[0], mean.shape[1], gen).to(mean.dtype)

    def d_inputs(self, ctx, x, gen):
        z = self.latent(ctx, x.shape[0], gen)
        return (x, self.encode(ctx, x, gen)), (self.nets["G"](z), z)

    def _ge_loss(self, l_real, l_fake):
        return losses.bigan_ge_loss(l_real, l_fake, "minimax" if self.cfg.g_loss == "minimax" else "inverse")

    def iteration(self, ctx, next_batch, gen):
        G, D = self.nets["G"], self.nets["D"]
        if self.cfg.update == "simultaneous":
            x = next_batch()
            z = self.latent(ctx, x.shape[0], gen)
            gz, ex = G(z), self.encode(ctx, x, gen)
            l_real, r1 = self.real_logits(ctx, (x, ex))  # the penalty w.r.t. the joint input (x, E(x)), as D sees it
            l_fake = D(gz, z)
            d_loss = losses.gan_d_loss(l_real, l_fake)
            ge_loss = self._ge_loss(l_real, l_fake)
            g_d = self.grads(ctx, self.plus(d_loss, r1), self.params("D"), retain=True)
            # every gradient before any update: they share D's graph
            self.apply(ctx, "GE", self.through_d(ctx, ge_loss, (gz, ex), self.params("GE")))
            self.apply(ctx, "D", g_d)
        else:
            x, d_loss, l_real, l_fake = self.d_steps(ctx, next_batch, gen)
            z = self.latent(ctx, x.shape[0], gen)
            gz, ex = G(z), self.encode(ctx, x, gen)
            ge_loss = self._ge_loss(D(x, ex), D(gz, z))
            self.apply(ctx, "GE", self.through_d(ctx, ge_loss, (gz, ex), self.params("GE")))
        return {"loss_d": d_loss.detach(), "loss_ge": ge_loss.detach(), **losses.d_accuracy(l_real, l_fake)}


class LatentRegressor(GAN):
    """A GAN plus an encoder E trained to regress z from G(z) (mean squared error); joint=True lets the regression
    loss (weight cfg.extra['reg_weight'], default 1) train G as well (the paper's JLR)."""

    name = "lr"
    data_defaults = MNIST_R1_DEFAULTS  # a Table-1 baseline: the same D as gan / bigan
    joint = False
    groups = {"D": ("D",), "G": ("G",), "E": ("E",)}
    options = (ENCODER_OUT_OPTION,)

    def build(self, x_dim, z_dim):
        return {**super().build(x_dim, z_dim), "E": self.encoder(x_dim, z_dim)}

    def iteration(self, ctx, next_batch, gen):
        G, D, E = self.nets["G"], self.nets["D"], self.nets["E"]
        if self.cfg.update == "alternating":
            x, d_loss, l_real, l_fake = self.d_steps(ctx, next_batch, gen)
        else:
            x = next_batch()
        z = self.latent(ctx, x.shape[0], gen)
        gz = G(z)
        if self.cfg.update == "simultaneous":  # D's loss and G's from one forward
            l_real, r1 = self.real_logits(ctx, (x,))
            l_fake = D(gz)
            d_loss, l_fake_g = losses.gan_d_loss(l_real, l_fake), l_fake
        else:
            l_fake_g = D(gz)
        g_loss = losses.gan_g_loss(l_fake_g, self.cfg.g_loss)
        reg = F.mse_loss(*losses.wide(E(gz if self.joint else gz.detach()), z))
        g_d = (self.grads(ctx, self.plus(d_loss, r1), self.params("D"), retain=True)
               if self.cfg.update == "simultaneous" else None)  # R1 as in GAN's step and d_steps
        g_e = self.grads(ctx, reg, self.params("E"), retain=True)
        weight = self.opt("reg_weight") if self.joint else 0.0
        self.apply(ctx, "G", self.through_d(ctx, g_loss, (gz,), self.params("G"),
                                            extra=weight * reg if self.joint else None))
        self.apply(ctx, "E", g_e)
        if g_d is not None:
            self.apply(ctx, "D", g_d)
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach(), "loss_reg": reg.detach(),
                **losses.d_accuracy(l_real, l_fake)}

    @torch.no_grad()
    def features(self, x):
        """E(x), the regressor's latent estimate: the representation the paper's LR / JLR rows measure (not D's
        hidden layer, which GAN.features returns for the 'D' row)."""
        return self.nets["E"](x)


class JointLatentRegressor(LatentRegressor):
    name = "jlr"
    joint = True
    options = (number("reg_weight", 1.0, "the regression loss's weight in G's objective"),)
