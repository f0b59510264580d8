"""The models the trainer runs, one recipe each: its networks, which optimiser updates which of them, one training
iteration, and what evaluation reads from it (samples, encoder features, reconstructions).

    gan      G(z), D(x); D: cross-entropy, G: non-saturating (g_loss='ns') or minimax
    bigan    G(z), E(x), D(x, z) with z injected at every layer (Donahue et al. 2017); D: cross-entropy on
             (x, E(x)) vs (G(z), z); G and E: the inverse objective Lambda (g_loss='ns' / 'inverse') or minimax
    lr       the paper's latent regressor baseline: a GAN, plus E trained to regress z from G(z) (G's samples
             detached: E does not shape G)
    jlr      the joint latent regressor: the same regression loss also trains G
    ae-l2    an autoencoder E -> G of the same networks, l2 reconstruction loss
    ae-l1    the same with the l1 loss
  the objective family (issue 8), G and a batch-norm-free critic D (fastgan.nn.MLPCritic), alternating updates:
    wgan         Wasserstein critic with weight clipping (c = 0.01), RMSProp 5e-5, n_critic 5, batch 64
    wgan-gp      the same loss with the gradient penalty (lambda = 10) through fastgan.wgan_critic_loss (the fused
                 MLP-critic pass), Adam (1e-4, 0, 0.9), n_critic 5
    lsgan, hinge least squares (a=0, b=c=1) and hinge losses
    fgan-<div>   f-GAN with div in KL, RKL, Pearson, Hellinger, JS, GAN (losses.f_divergence_losses)
    gmmn         no critic: G minimises the fused MMD^2 (Gaussian, 5 bandwidths around the data's median distance)
    mmdgan       min_G max_f MMD^2(f(x), f(G(z))): f a weight-clipped MLP feature map (16-d), fused MMD on features,
                 bandwidths relative to the features' median distance (every step)
    improved     the fused minibatch-discrimination layer in D, G non-saturating (or feature matching: a flag)
Each recipe's defaults (Recipe.defaults) are applied by TrainConfig.for_model under the user's explicit settings.

Networks: the paper's permutation-invariant MNIST MLPs (fastgan.nn.BiGANGenerator / BiGANEncoder /
BiGANDiscriminator, and GANDiscriminator = the BiGAN D without z), hidden width cfg.hidden, G's output tanh for
images in [-1, 1] and linear for 2-D mixtures; fused (fastgan ops) or the eager twins (cfg.backend='eager'). The
paper's batch norm in hidden layer 2 is off for the 2-D mixtures by default (cfg.batch_norm): with it D normalises
each batch, so it barely sees where a whole batch of samples sits, and G drifted off the data (0/8 modes).

The generator-side gradient of an adversarial loss is taken in two stages: first the gradient w.r.t. the samples
fed to D (through ops.input_grads: fastgan's D layers then skip their weight gradients, as torch's own ops do when
autograd.grad does not ask for them), then the backward of G (and E) from there. D's own update is one
autograd.grad w.r.t. D's parameters. update='alternating' (the default): D's steps first, then G's (and E's) from a
fresh forward through the updated D; update='simultaneous': all of it from one forward pass.
"""

from __future__ import annotations

from ... import losses
from .adversarial import GAN, AutoEncoder, AutoEncoderL1, BiGAN, JointLatentRegressor, LatentRegressor
from .base import ENCODER_OUT, MNIST_R1, Recipe, default_hidden
from .critic import LSGAN, WGAN, WGANGP, HingeGAN, _fgan
from .moments import GMMN, MMDGAN, Improved

__all__ = ["ENCODER_OUT", "MNIST_R1", "RECIPES", "Recipe", "default_hidden"]

RECIPES = {r.name: r for r in (GAN, BiGAN, LatentRegressor, JointLatentRegressor, AutoEncoder, AutoEncoderL1,
                               WGAN, WGANGP, LSGAN, HingeGAN, *(_fgan(d) for d in losses.DIVERGENCES), GMMN, MMDGAN,
                               Improved)}
