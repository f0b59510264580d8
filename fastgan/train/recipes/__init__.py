"""The models the trainer runs, one recipe each: its networks, which optimiser updates which of them, one training
iteration, and what evaluation reads from it (samples, encoder features, reconstructions).

    gan      G(z), D(x); D: cross-entropy, G: non-saturating (g_loss='ns') or minimax
    bigan    G(z), E(x), D(x, z) with z injected at every layer (Donahue et al. 2017); D: cross-entropy on
             (x, E(x)) vs (G(z), z); G and E: the inverse objective Lambda (g_loss='ns' / 'inverse') or minimax
    lr       the paper's latent regressor baseline: a GAN, plus E trained to regress z from G(z) (G's samples
             detached: E does not shape G)
    jlr      the joint latent regressor: the same regression loss also trains G
  the autoencoders (autoencoding.py), the Table-1 baselines first:
    ae-l2    an autoencoder E -> G of the same networks, l2 reconstruction loss
    ae-l1    the same with the l1 loss
  the objective family (issue 8), G and a batch-norm-free critic D (fastgan.nn.MLPCritic), alternating updates:
    wgan         Wasserstein critic with weight clipping (c = 0.01), RMSProp 5e-5, n_critic 5, batch 64
    wgan-gp      the same loss with the gradient penalty (lambda = 10) through fastgan.wgan_critic_loss (the fused
                 MLP-critic pass), Adam (1e-4, 0, 0.9), n_critic 5
    lsgan, hinge least squares (a=0, b=c=1) and hinge losses
    fgan-<div>   f-GAN with div in KL, RKL, Pearson, Hellinger, JS, GAN (losses.f_divergence_losses)
    gmmn         no critic: G minimises the fused MMD^2 (Gaussian, 5 bandwidths around the data's median distance)
    mmdgan       min_G max_f MMD^2(f(x), f(G(z))) with the witness function's gradient penalty (Binkowski et al. 2018):
                 f an MLP feature map, fused MMD on its raw features through kernel_sum's second derivative
    mmdgan-clip  the same with a weight-clipped f (Li et al. 2017), bandwidths relative to the features' median
    improved     the fused minibatch-discrimination layer in D, G non-saturating (or feature matching: a flag)
  the energy family (energy.py): D an autoencoder, its reconstruction error the energy
    ebgan        D: mean squared error of real + margin hinge on fake; G: fake energy + the pull-away term (0.1)
    began        D: l1 loss of real - k_t x l1 loss of fake, k_t by proportional control (gamma 0.5); M_global logged
  info.py:
    infogan      G(z, c) with categorical and continuous codes c (--codes, default cat:10,cont:2), a head Q on D's
                 trunk; D + Q and G each minimise their GAN loss + the mutual-information term L_I (Chen et al. 2016)
  the encoder family (autoencoding.py): an encoder E, a decoder G, the prior N(0, I), z_dim 8 on images
    vae          Gaussian E (mean, log-variance), reparameterisation, Bernoulli decoder on images (Gaussian on 2-D),
                 the negative ELBO (Kingma & Welling 2014)
    beta-vae     the same with the KL term weighted by beta (--beta; Higgins et al. 2017)
    aae          reconstruction phase (MSE), then a latent adversary D_z: N(0, I) vs E(x) (Makhzani et al. 2016)
    wae-mmd      squared l2 cost + lambda (--lambda) x the fused unbiased MMD^2 of E(x) vs N(0, I), IMQ kernel
                 over the paper's scales (Tolstikhin et al. 2018)
    wae-gan      the same cost + lambda x a latent adversary's non-saturating loss
R1 on D's real inputs (cfg.extra['r1'] = gamma, lazily every K-th step of D with cfg.extra['r1_every'] = K; one
forward of D over the real batch serves the loss and the penalty: PenalisedD.real_logits) in gan, bigan, lr, jlr,
infogan, improved, lsgan, hinge and the f-GANs; the other recipes refuse the option.
Defaults: each written once, in the recipe (its options, defaults, data_defaults); `fastgan train --help` shows them.
Each recipe's defaults (Recipe.defaults, data_defaults) and the checks it makes of a configuration
(Recipe.check_config) live here, not in fastgan.train.config (which holds the values): config_for(model, ...)
puts the user's explicit settings over them, validate(cfg) checks a configuration for its recipe. Why each default
value: docs/defaults.md.

Networks: the paper's permutation-invariant MNIST MLPs (fastgan.nn.BiGANGenerator / BiGANEncoder /
BiGANDiscriminator, and GANDiscriminator = the BiGAN D without z), hidden width cfg.hidden, G's output tanh for
images in [-1, 1] and linear for 2-D mixtures; fused (fastgan ops) or the eager twins (cfg.backend='eager'). The
paper's batch norm in hidden layer 2 is off for the 2-D mixtures by default (cfg.batch_norm; docs/defaults.md).
cfg.arch='dcgan' (images only): the nets on the data side are fastgan.nn.dcgan's conv nets on the flat rows
(Recipe.conv_net, FlatImageAdapter: padded to 32x32), base width cfg.hidden or DCGAN_BASE; critics batch-norm-free.

The generator-side gradient of an adversarial loss is taken in two stages: first the gradient w.r.t. the samples
fed to D (through ops.input_grads: fastgan's D layers then skip their weight gradients, as torch's own ops do when
autograd.grad does not ask for them), then the backward of G (and E) from there. D's own update is one
autograd.grad w.r.t. D's parameters. update='alternating' (the default): D's steps first, then G's (and E's) from a
fresh forward through the updated D; update='simultaneous': all of it from one forward pass.
"""

from __future__ import annotations

from ... import losses
from ..config import TrainConfig
from .adversarial import GAN, BiGAN, JointLatentRegressor, LatentRegressor
from .autoencoding import AAE, VAE, WAEGAN, WAEMMD, AutoEncoder, AutoEncoderL1, BetaVAE
from .base import DEFAULT_STEPS, Recipe, StepContext
from .critic import LSGAN, WGAN, WGANGP, HingeGAN, _fgan
from .discriminator import MNIST_R1
from .energy import BEGAN, EBGAN
from .info import InfoGAN
from .moments import GMMN, MMDGAN, Improved, MMDGANClip
from .nets import ENCODER_OUT, default_hidden

__all__ = ["DEFAULT_STEPS", "ENCODER_OUT", "MNIST_R1", "RECIPES", "Recipe", "StepContext", "config_for", "defaults_for",
           "default_hidden", "recipe_class", "validate"]

RECIPES = {r.name: r for r in (GAN, BiGAN, LatentRegressor, JointLatentRegressor, AutoEncoder, AutoEncoderL1,
                               WGAN, WGANGP, LSGAN, HingeGAN, *(_fgan(d) for d in losses.DIVERGENCES), GMMN, MMDGAN,
                               MMDGANClip, Improved, EBGAN, BEGAN, InfoGAN, VAE, BetaVAE, AAE, WAEMMD, WAEGAN)}


def recipe_class(model: str) -> type[Recipe]:
    """The recipe named `model` (RECIPES[model]), or the ValueError naming the known ones."""
    if model not in RECIPES:
        raise ValueError(f"model: expected one of {', '.join(sorted(RECIPES))}, got {model!r}")
    return RECIPES[model]


def defaults_for(model: str, data: str) -> dict:
    """The TrainConfig fields `model` trains with on `data` unless the user sets them (Recipe.defaults_for)."""
    return recipe_class(model).defaults_for(data)


def config_for(model: str, **overrides) -> TrainConfig:
    """A configuration for `model` with its recipe's defaults on the data (e.g. WGAN's RMSProp 5e-5, n_critic 5,
    batch 64), then `overrides` on top (TrainConfig.with_defaults: None values are not overrides, an `extra` dict is
    merged key by key, steps or epochs replace the recipe's steps). Not validated: validate(cfg) does that."""
    data = overrides.get("data")
    return TrainConfig.with_defaults(model, defaults_for(model, TrainConfig.data if data is None else data),
                                     **overrides)


def validate(cfg: TrainConfig) -> TrainConfig:
    """cfg checked for training: a known model, what its recipe requires (Recipe.check_config: the update scheme,
    the generator loss, its cfg.extra options), then the values' own checks (TrainConfig.validate). Returns cfg."""
    recipe_class(cfg.model).check_config(cfg)
    return cfg.validate()

