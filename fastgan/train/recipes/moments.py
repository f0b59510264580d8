"""Moment matching: gmmn, mmdgan and mmdgan-clip (the fused MMD); improved (minibatch discrimination)."""
from __future__ import annotations

import torch

from ... import losses
from ...nn import (
    BiGANEncoder,
    LinearAct,
    MinibatchDiscrimination,
)
from ...ops.kernel_sum import kernel_sum, median_bandwidth, median_distance, mmd2
from ...penalties import penalty_from_outputs
from .base import Recipe
from .critic import CriticGAN, _Clipped
from .discriminator import R1_OPTIONS
from .options import custom, integer, number, switch


def _positive_numbers(factors, where) -> tuple[float, ...]:
    if not (isinstance(factors, (list, tuple)) and factors
            and all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in factors)):
        raise ValueError(f"{where}: expected a non-empty list of positive numbers, got {factors!r}")
    return tuple(float(f) for f in factors)


# Gaussian bandwidths relative to a median distance (the data's for gmmn, the features' for the MMD GANs)
BANDWIDTH_FACTORS = custom("bandwidth_factors", (0.25, 0.5, 1.0, 2.0, 4.0),
                           "the Gaussian kernel's bandwidths, relative to a median pairwise distance",
                           _positive_numbers, cli_type=None)


class GMMN(Recipe):
    """A generative moment-matching network (Li et al. 2015; Dziugaite et al. 2015): G minimises the biased MMD^2
    between its batch and the data batch, Gaussian kernel with bandwidths (0.25, 0.5, 1, 2, 4) x the data's median
    pairwise distance (fixed from the training split at build time; other factors: cfg.extra['bandwidth_factors'])."""

    name = "gmmn"
    groups = {"G": ("G",)}
    options = (BANDWIDTH_FACTORS,)
    adversarial = False
    defaults = dict(lr=1e-3, batch_size=256)
    # the mixtures' modes are ~100x narrower than the data's median distance: smaller factors (docs/defaults.md)
    data_defaults = {k: dict(batch_size=512, extra={"bandwidth_factors": [0.01, 0.03, 0.1, 0.3, 1.0]})
                     for k in ("gmm8", "gmm25")}

    def build(self, x_dim, z_dim):
        m = median_bandwidth(self.split.train_x[:2000])
        self.bandwidths = tuple(m * f for f in self.opt("bandwidth_factors"))
        return {"G": self.generator(z_dim, x_dim)}

    def iteration(self, ctx, next_batch, gen):
        x = next_batch()
        loss = mmd2(self.nets["G"](self.latent(ctx, x.shape[0], gen)), x, bandwidths=self.bandwidths)
        self.apply(ctx, "G", self.grads(ctx, loss, self.params("G")))
        return {"mmd2": loss.detach()}

    @torch.no_grad()
    def features(self, x):
        return None


class _MMDCritic(CriticGAN):
    """The MMD GANs' critic: a feature map f (an MLP encoder to cfg.extra['features'] = 16 units) and the MMD^2 of
    the features under a Gaussian kernel whose bandwidths follow them (the median heuristic, every step): the kernel
    runs on the features divided by their pooled median pairwise distance m (detached, a 0-d tensor: no host sync),
    with bandwidths cfg.extra['bandwidth_factors'] (0.25 ... 4) -- bandwidths factor x m on the raw features. G
    minimises the MMD^2, the critic maximises it."""

    options = (BANDWIDTH_FACTORS, integer("features", 16, "the critic's feature map's width"))
    data_defaults: dict = {}
    bandwidths_follow = True  # the MMD GANs without the option bandwidths_follow (mmdgan-clip)

    def critic(self, x_dim):
        """The feature map: an MLP encoder to cfg.extra['features'] (16) units, batch-norm-free; under --arch dcgan
        the DCGAN E (the MMD GAN paper's conv feature map), batch-norm-free too."""
        self.bandwidths = self.opt("bandwidth_factors")
        features = self.opt("features")
        if self.convolutional(x_dim):
            return self.conv_net("E", features, out_act="linear", batch_norm=False)
        return BiGANEncoder(x_dim, features, **{**self.kw, "batch_norm": False})

    def _scaled(self, x, gz):
        """f(x) / m, f(G(z)) / m: the features in units of their median distance m; with
        cfg.extra['bandwidths_follow'] False, the raw features (m = 1: the bandwidths are absolute)."""
        fx, fg = self.d(x), self.d(gz)
        if not self._options.get("bandwidths_follow", self.bandwidths_follow):
            return fx, fg, 1.0
        m = median_distance(fx, fg).clamp_min(torch.finfo(fx.dtype).tiny)
        return fx / m, fg / m, m

    def _mmd(self, x, gz):
        fx, fg, _ = self._scaled(x, gz)
        return mmd2(fx, fg, bandwidths=self.bandwidths)

    def critic_loss(self, ctx, x, gz, gen, i=0):
        return -self._mmd(x, gz)

    def generator_loss(self, x, gz):
        return self._mmd(x, gz)


class MMDGANClip(_Clipped, _MMDCritic):
    """MMD GAN as Li et al. 2017 train it, without its autoencoder term: the feature map's weights clipped to [-0.01,
    0.01]; RMSProp 5e-5, n_critic 5; the kernel on the features in units of their median distance (the paper's fixed
    bandwidths 1 ... 16 are ~100x wider than the spread of a feature map clipped to 0.01: docs/defaults.md). 0 / 8
    modes on gmm8 at these defaults (docs/results.md): `mmdgan` replaces the clipping by a gradient penalty."""

    name = "mmdgan-clip"
    defaults = dict(update="alternating", optimizer="rmsprop", lr=5e-5, n_critic=5, batch_size=64)


class MMDGAN(_MMDCritic):
    """MMD GAN with the witness-function gradient penalty instead of weight clipping (Binkowski et al. 2018,
    "Demystifying MMD GANs"): the critic maximises MMD^2(f(x), f(G(z))) - gp_weight * E (|grad w(t)| - 1)^2 over
    random interpolates t of real and generated samples, where w(t) = mean_j k(f(t), f(x_j)) - mean_j k(f(t),
    f(G(z_j))) is the witness function of the kernel on the features (its gradient through kernel_sum's exact second
    derivative and the feature map's double backward). The kernel runs on the raw features with absolute bandwidths
    cfg.extra['bandwidth_factors'] (0.25 ... 4), as in that paper: the penalty then sets the features' scale
    (bandwidths_follow=True divides the features by their median distance instead, which leaves the penalty nothing
    to scale: 3 / 8 modes on gmm8 seed 1, docs/results.md). Adam 1e-4, betas (0.5, 0.9), n_critic 5, gp_weight 1
    (the paper's); on the 2-D mixtures lr 1e-3, batch 512 (wgan-gp's there)."""

    name = "mmdgan"
    options = (number("gp_weight", 1.0, "the witness function's gradient penalty weight"),
               switch("bandwidths_follow", False, "run the kernel on the features over their median distance"))
    defaults = dict(update="alternating", lr=1e-4, beta1=0.5, beta2=0.9, n_critic=5, batch_size=64)
    data_defaults = {k: dict(lr=1e-3, batch_size=512) for k in ("gmm8", "gmm25")}

    def critic_loss(self, ctx, x, gz, gen, i=0):
        fx, fg, m = self._scaled(x, gz)
        loss = -mmd2(fx, fg, bandwidths=self.bandwidths)
        eps = self.uniform(ctx, x.shape[0], 1, gen)  # this rank's slice of the global batch's draw
        t = (eps * x + (1 - eps) * gz.to(x.dtype)).detach().requires_grad_(True)
        ft = self.d(t) / m
        kw = dict(bandwidths=self.bandwidths)
        witness = kernel_sum(ft, fx, **kw) / fx.shape[0] - kernel_sum(ft, fg, **kw) / fg.shape[0]  # summed over t
        return loss + penalty_from_outputs(witness, t, "wgan-gp", 1.0, self.opt("gp_weight"),
                                           scaler=ctx.scaler)


class ImprovedDiscriminator(torch.nn.Module):
    """x -> lrelu hidden -> lrelu hidden (the features f) -> minibatch discrimination [f, o(f)] -> logit: the
    discriminator of the Improved-GAN techniques, on fastgan's fused layers. `trunk` (a module with features(x) and
    n_features, e.g. the DCGAN conv trunk on flat images) replaces the two hidden layers (hidden is then unused)."""

    def __init__(self, x_dim, hidden, eager=False, kernels=50, kernel_dim=5, trunk=None):
        super().__init__()
        self.trunk = trunk
        if trunk is None:
            self.fc1 = LinearAct(x_dim, hidden, act="lrelu", alpha=0.2, gain=1.0, eager=eager)
            self.fc2 = LinearAct(hidden, hidden, act="lrelu", alpha=0.2, gain=1.0, eager=eager)
        else:
            hidden = trunk.n_features
        self.mbd = MinibatchDiscrimination(hidden, kernels, kernel_dim)
        self.out = LinearAct(hidden + kernels, 1, eager=eager)

    def features(self, x):
        if self.trunk is not None:
            return self.trunk.features(x)
        return self.fc2(self.fc1(x))

    def forward(self, x):
        return self.out(self.mbd(self.features(x))).squeeze(1)


class Improved(CriticGAN):
    """Salimans et al. 2016: D with minibatch discrimination and the cross-entropy loss; G trained with the
    non-saturating loss (their recommendation for sample quality), or by feature matching with
    cfg.extra['feature_matching'] = True (--feature-matching): |E f(x) - E f(G(z))|^2 with f = D's last hidden layer
    (it suits semi-supervised learning, the paper's use of it; why it is not the default: docs/defaults.md).
    cfg.extra['r1'] = gamma: the R1 penalty on D, through the minibatch layer's second derivative
    (fastgan::minibatch_discrimination_backward2), lazy with cfg.extra['r1_every'] (CriticGAN)."""

    name = "improved"
    options = (switch("feature_matching", False, "train G by feature matching instead of the non-saturating loss",
                      flag="--feature-matching"), *R1_OPTIONS)
    # gmm8 only: gmm25 keeps the paper's settings (measured: docs/defaults.md)
    data_defaults = {"gmm8": dict(lr=1e-3, batch_size=256, extra={"r1": 0.1})}

    def critic(self, x_dim):
        """The MLP D, or under --arch dcgan the DCGAN conv trunk (batch-norm-free, like the MLP's layers) under the
        minibatch-discrimination head."""
        trunk = self.conv_net("features", batch_norm=False) if self.convolutional(x_dim) else None
        return ImprovedDiscriminator(x_dim, self.hidden, eager=self.kw["eager"], trunk=trunk)

    def objective(self, v_real, v_fake):
        return losses.gan_d_loss(v_real, v_fake), None  # G's loss: generator_loss

    def generator_loss(self, x, gz):
        D = self.nets["D"]
        if not self.opt("feature_matching"):
            return losses.gan_g_loss(D(gz), "ns")
        with torch.no_grad():
            target = D.features(x).mean(0)
        return (D.features(gz).float().mean(0) - target.float()).square().sum()

    @torch.no_grad()
    def features(self, x):
        return self.nets["D"].features(x)
