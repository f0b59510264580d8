"""The autoencoders: E -> G trained on reconstruction, alone (ae-l2, ae-l1: the BiGAN paper's Table-1 baselines) or
with the codes pushed towards the prior N(0, I) (the encoder family, issue 18; an adversary, where there is one,
judges codes, not data).

    ae-l2     E -> G, the l2 reconstruction loss on the BiGAN paper's networks (its latent U(-1, 1), z_dim 50)
    ae-l1     the same with the l1 loss

    vae       Kingma & Welling 2014: Gaussian encoder q(z|x) = N(mu(x), diag exp(log_var(x))), the
              reparameterisation z = mu + exp(log_var / 2) * eps, decoder p(x|z) Bernoulli on images (logits from
              G; the targets (x + 1) / 2 of data in [-1, 1]) or Gaussian on 2-D data (mean from G, a learned
              per-dimension log-variance); loss: the negative ELBO, E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)),
              summed over dimensions and averaged over the batch
    beta-vae  Higgins et al. 2017: the same with the KL term weighted by beta (cfg.extra['beta'])
    aae       Makhzani et al. 2016: deterministic E, decoder G, two phases per iteration: reconstruction (MSE,
              G and E), then regularisation (a latent adversary D_z tells N(0, I) draws from E(x); E is then
              trained to fool it, non-saturating)
    wae-mmd   Tolstikhin et al. 2018: |x - G(E(x))|^2 (summed over dimensions, batch mean) + lambda MMD^2(E(x), z)
              with z ~ N(0, I), the unbiased estimator and the inverse multiquadratic kernel C / (C + r^2) summed
              over C = 2 z_dim s, s in WAE_SCALES, through the fused fastgan mmd2 (cfg.extra['lambda'])
    wae-gan   the same reconstruction cost + lambda times a latent adversary's non-saturating loss;
              D_z trained with the cross-entropy before each G / E step

Every network comes from the Recipe's builders (generator / encoder), so an architecture switch there applies
here; the latent adversary is an MLP on z without batch norm (GANDiscriminator): normalising each batch would hide
from it where a batch of codes sits, the one thing it has to see. features(x) is the code: the posterior mean for
the VAEs, E(x) otherwise. Why each default: docs/defaults.md; measured figures: docs/models/autoencoding.md.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ... import losses
from ...nn import GANDiscriminator
from ...ops.kernel_sum import median_bandwidth, mmd2
from .base import ENCODER_OUT_OPTION, Recipe
from .options import POSITIVE, number

__all__ = ["AAE", "BetaVAE", "VAE", "WAEGAN", "WAEMMD", "WAE_SCALES", "codes_mmd2"]

WAE_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # the WAE paper's kernel scales s (C = 2 z_dim sigma_z^2 s)
IMAGE_Z_DIM = 8  # the codes' size on images (the WAE paper's MNIST); 2 on the 2-D mixtures
_MIXTURES = ("gmm8", "gmm25")



def kl_to_standard_normal(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag exp(log_var)) || N(0, I)) per row, in nats."""
    return 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(1)


def squared_error(rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """|x - rec|^2 summed over dimensions, averaged over the batch (the WAE cost c)."""
    return (losses.wide(rec) - x).square().sum(1).mean()


def codes_mmd2(codes: torch.Tensor, seed: int = 0) -> float:
    """The unbiased MMD^2 between codes (N, d) and as many N(0, I) draws (a CPU generator seeded with `seed`), in
    float64, Gaussian kernel whose bandwidth is the median distance of the prior draws (it depends on d alone, so
    models with codes of one size are compared under one kernel)."""
    codes = codes.detach().cpu().double()
    z = torch.randn(codes.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    return float(mmd2(codes, z, bandwidths=(median_bandwidth(z),), estimator="unbiased"))


class AutoEncoder(Recipe):
    """E -> G trained on reconstruction (the l2 or l1 loss); no discriminator."""

    name = "ae-l2"
    groups = {"GE": ("G", "E")}
    options = (ENCODER_OUT_OPTION,)
    adversarial = False
    p = 2

    def build(self, x_dim, z_dim):
        return {"G": self.generator(z_dim, x_dim), "E": self.encoder(x_dim, z_dim)}

    def iteration(self, ctx, next_batch, gen):
        x = next_batch()
        rec = self.nets["G"](self.nets["E"](x))
        rec, x = losses.wide(rec, x)  # the reconstruction loss in fp32 under autocast (an fp64 run stays fp64)
        loss = F.mse_loss(rec, x) if self.p == 2 else F.l1_loss(rec, x)
        self.apply(ctx, "GE", self.grads(ctx, loss, self.params("GE")))
        return {"loss_rec": loss.detach()}


class AutoEncoderL1(AutoEncoder):
    name = "ae-l1"
    p = 1


class DecoderLogVar(nn.Module):
    """The Gaussian decoder's log-variance, one learned value per data dimension (initially 0: unit variance)."""

    def __init__(self, dim: int):
        super().__init__()
        self.log_var = nn.Parameter(torch.zeros(dim))


class _Encoding(Recipe):
    """What the encoder family shares: the prior N(0, I), the codes' size, the reconstruction error on test."""

    adversarial = False
    defaults = dict(z_dim=IMAGE_Z_DIM)
    data_defaults = {k: dict(z_dim=2) for k in _MIXTURES}

    # ---- the prior N(0, I) (training steps: this rank's slice of the global batch's draw, as _uniform does) ----
    def latent(self, ctx, n, gen):
        return self._normal(n, self.cfg.z_dim, gen, ctx.shard)

    def prior(self, n, gen):
        return self._normal(n, self.cfg.z_dim, gen, (0, 1))

    metric_labels = {"rec_mse": ("reconstruction error on test (MSE per dimension)", "")}

    def evaluation(self, split, features, out):
        x = split.test_x
        rec = features(self.reconstruct, x)
        return {"rec_mse": float((rec.double() - x.double()).square().mean())}


class VAE(_Encoding):
    """Trains with Adam's own lr 1e-3 and beta1 0.9 (measured on digits: docs/defaults.md)."""

    name = "vae"
    groups = {"GE": ("G", "E")}  # + the decoder's log-variance ("noise") on 2-D data (build)
    defaults = dict(_Encoding.defaults, lr=1e-3, beta1=0.9)

    @property
    def beta(self) -> float:
        return 1.0

    def build(self, x_dim, z_dim):
        self.bernoulli = self.split.image_shape is not None
        nets = {"G": self.generator(z_dim, x_dim, out_act="linear"),
                "E": self.gaussian_encoder(x_dim, z_dim)}
        if not self.bernoulli:
            nets["noise"] = DecoderLogVar(x_dim)
            self.groups = {"GE": ("G", "E", "noise")}
        return nets

    def nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | z) per row for the decoder's output `out` (Bernoulli logits, or the Gaussian mean)."""
        out = losses.wide(out)
        if self.bernoulli:
            return F.binary_cross_entropy_with_logits(out, (x + 1) / 2, reduction="none").sum(1)
        log_var = self.nets["noise"].log_var
        return 0.5 * ((x - out).square() * (-log_var).exp() + log_var + math.log(2 * math.pi)).sum(1)

    def terms(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(-log p(x | z), KL(q(z | x) || p(z))) per row, z = mean + exp(log_var / 2) eps."""
        mean, log_var = (losses.wide(t) for t in self.nets["E"].moments(x))
        z = mean + (0.5 * log_var).exp() * eps
        return self.nll(self.nets["G"](z), x), kl_to_standard_normal(mean, log_var)

    def iteration(self, ctx, next_batch, gen):
        x = next_batch()
        rec, kl = self.terms(x, self.normal(ctx, x.shape[0], self.cfg.z_dim, gen))
        rec, kl = rec.mean(), kl.mean()
        loss = rec + self.beta * kl
        self.apply(ctx, "GE", self.grads(ctx, loss, self.params("GE")))
        return {"loss": loss.detach(), "rec_nll": rec.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def sample(self, z):
        """Images: the decoder's Bernoulli means mapped to [-1, 1]; 2-D data: the Gaussian decoder's mean."""
        out = self.nets["G"](z)
        return 2 * torch.sigmoid(out) - 1 if self.bernoulli else out

    @torch.no_grad()
    def reconstruct(self, x):
        return self.sample(self.nets["E"](x))

    metric_labels = {"test_elbo": ("test ELBO (nats per image)", ""), "test_kl": ("  its KL term", ""),
                     "test_rec_nll": ("  its reconstruction term", "")}

    def evaluation(self, split, features, out):
        """+ the test negative ELBO's terms in nats per image (one posterior draw per image, a generator seeded
        with cfg.seed): test_elbo = -(test_rec_nll + test_kl)."""
        res = super().evaluation(split, features, out)
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed)

        def per_row(x):
            eps = torch.randn(x.shape[0], self.cfg.z_dim, generator=gen, device=x.device, dtype=x.dtype)
            return torch.stack(self.terms(x, eps), 1)

        rec, kl = features(per_row, split.test_x).double().mean(0).tolist()
        return {**res, "test_elbo": -(rec + kl), "test_kl": kl, "test_rec_nll": rec}


class BetaVAE(VAE):
    name = "beta-vae"
    options = (number("beta", 4.0, "the weight of the KL term (Higgins et al.'s value)", POSITIVE, flag="--beta"),)
    defaults = dict(VAE.defaults, extra={"beta": options[0].default})  # recorded in the run's config

    @property
    def beta(self) -> float:
        return self.opt("beta")


class _LatentAdversary(_Encoding):
    """A deterministic encoder E, a decoder G and a latent adversary D_z (real: N(0, I) draws, fake: E(x))."""

    adversarial = True
    alternating_only = True

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        if cfg.n_critic != 1:
            raise ValueError(f"n_critic: the {cls.name!r} recipe takes one step of its latent adversary per "
                             f"iteration, got {cfg.n_critic}")

    def build(self, x_dim, z_dim):
        return {"G": self.generator(z_dim, x_dim), "E": self.encoder(x_dim, z_dim, out_act="linear"),
                "D": GANDiscriminator(z_dim, hidden=self.kw["hidden"], eager=self.kw["eager"],
                                      batch_norm=False)}

    def d_step(self, ctx, x, gen) -> tuple:
        """One cross-entropy step of D_z: prior draws against the codes of x (no graph into E)."""
        D = self.nets["D"]
        with torch.no_grad():
            ex = self.nets["E"](x)
        l_real, l_fake = D(self.latent(ctx, x.shape[0], gen)), D(ex)
        d_loss = losses.gan_d_loss(l_real, l_fake)
        self.apply(ctx, "D", self.grads(ctx, d_loss, self.params("D")))
        return d_loss, l_real, l_fake

    metric_labels = {"mmd2_prior": ("MMD^2 of the test codes vs N(0, I)", "")}

    def evaluation(self, split, features, out):
        """+ mmd2_prior: codes_mmd2 of the test codes."""
        res = super().evaluation(split, features, out)
        return {**res, "mmd2_prior": codes_mmd2(features(self.features, split.test_x), self.cfg.seed)}


class AAE(_LatentAdversary):
    """The reconstruction phase updates G and E (optimiser "GE"), the regularisation phase D_z ("D") and then E
    alone ("E", its own optimiser state, as the paper's separate phases)."""

    name = "aae"
    groups = {"GE": ("G", "E"), "D": ("D",), "E": ("E",)}

    def iteration(self, ctx, next_batch, gen):
        G, E, D = self.nets["G"], self.nets["E"], self.nets["D"]
        x = next_batch()
        rec = F.mse_loss(losses.wide(G(E(x))), x)
        self.apply(ctx, "GE", self.grads(ctx, rec, self.params("GE")))
        d_loss, l_real, l_fake = self.d_step(ctx, x, gen)
        ex = E(x)
        e_loss = losses.gan_g_loss(D(ex), self.cfg.g_loss)
        self.apply(ctx, "E", self.through_d(ctx, e_loss, (ex,), self.params("E")))
        return {"loss_rec": rec.detach(), "loss_d": d_loss.detach(), "loss_e": e_loss.detach(),
                **losses.d_accuracy(l_real, l_fake)}


def _lambda(default: float):
    """The WAEs' weight lambda of the latent term: cfg.extra['lambda'] (> 0)."""
    return number("lambda", default, "the weight of the latent penalty", POSITIVE, flag="--lambda", metavar="LAMBDA")


class _Lambda:
    """self.lam: the WAE's option lambda."""

    @property
    def lam(self) -> float:
        return self.opt("lambda")


class WAEGAN(_Lambda, _LatentAdversary):
    """Tolstikhin et al.'s algorithm 2: D_z's step, then G and E on c(x, G(E(x))) + lambda * (-log D_z(E(x))).
    D_z's cross-entropy is not scaled by lambda (Adam's steps do not depend on the loss's scale)."""

    name = "wae-gan"
    groups = {"D": ("D",), "GE": ("G", "E")}
    options = (_lambda(1.0),)
    defaults = dict(_Encoding.defaults, extra={"lambda": options[0].default})  # recorded in the run's config

    def iteration(self, ctx, next_batch, gen):
        G, E, D = self.nets["G"], self.nets["E"], self.nets["D"]
        x = next_batch()
        d_loss, l_real, l_fake = self.d_step(ctx, x, gen)
        ex = E(x)
        rec = squared_error(G(ex), x)
        adv = losses.gan_g_loss(D(ex), self.cfg.g_loss)
        lam = self.lam
        self.apply(ctx, "GE", self.through_d(ctx, lam * adv, (ex,), self.params("GE"), extra=rec))
        return {"loss_rec": rec.detach(), "loss_d": d_loss.detach(), "loss_e": adv.detach(),
                **losses.d_accuracy(l_real, l_fake)}


class WAEMMD(_Lambda, _Encoding):
    name = "wae-mmd"
    groups = {"GE": ("G", "E")}
    options = (_lambda(10.0),)
    defaults = dict(_Encoding.defaults, extra={"lambda": options[0].default})  # recorded in the run's config

    def build(self, x_dim, z_dim):
        # the IMQ kernel of fastgan.mmd2 is s^2 / (s^2 + r^2): s = sqrt(C) gives the paper's C / (C + r^2)
        self.bandwidths = tuple(math.sqrt(2.0 * z_dim * s) for s in WAE_SCALES)
        return {"G": self.generator(z_dim, x_dim), "E": self.encoder(x_dim, z_dim, out_act="linear")}

    def penalty(self, codes: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The unbiased MMD^2 between codes and prior draws, IMQ kernel over the paper's scales."""
        return mmd2(codes, z, kernel="imq", bandwidths=self.bandwidths, estimator="unbiased")

    def iteration(self, ctx, next_batch, gen):
        x = next_batch()
        ex = self.nets["E"](x)
        rec = squared_error(self.nets["G"](ex), x)
        mmd = self.penalty(ex, self.latent(ctx, x.shape[0], gen))
        loss = rec + self.lam * mmd
        self.apply(ctx, "GE", self.grads(ctx, loss, self.params("GE")))
        return {"loss": loss.detach(), "loss_rec": rec.detach(), "mmd2": mmd.detach()}

    metric_labels = {"mmd2_prior": ("MMD^2 of the test codes vs N(0, I)", "")}

    def evaluation(self, split, features, out):
        res = super().evaluation(split, features, out)
        return {**res, "mmd2_prior": codes_mmd2(features(self.features, split.test_x), self.cfg.seed)}
