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

import torch
import torch.nn.functional as F

from .. import _checks, losses
from ..nn import (
    BiGANDiscriminator,
    BiGANEncoder,
    BiGANGenerator,
    GANDiscriminator,
    LinearAct,
    MinibatchDiscrimination,
    MLPCritic,
)
from ..ops.mmd import median_bandwidth, median_distance, mmd2
from ..ops.weight_grads import input_grads
from ..penalties import gradient_penalty, wgan_critic_loss
from .distributed import all_reduce_mean_

__all__ = ["RECIPES", "Recipe"]


ENCODER_OUT = "linear"  # E's output activation (cfg.extra['encoder_out']): 'linear' (the paper's) or 'tanh'
# The R1 weight on the cross-entropy D of gan / bigan / lr / jlr on mnist5k (4,000 training images): without it D
# overfits and wins on some seeds (alternating updates, 5000 steps: bigan seed 2 FD 1383, gan seed 1 FD 1075);
# bigan seed 2 with gamma 1: FD 14.7, 1NN 87.3 %; gamma 10: FD 20.5, 1NN 87.5 %
MNIST_R1 = 1.0
_MNIST_R1_DEFAULTS = {"mnist5k": dict(extra={"r1": MNIST_R1})}  # data_defaults of gan / bigan / lr / jlr


def default_hidden(split) -> int:
    """The hidden width when cfg.hidden is None: the paper's 1024 for MNIST-sized inputs (>= 784), 512 for smaller
    images (digits: a 1024-wide BiGAN diverged there in 3000 steps, classifier FD 336; 512 reached 8.1 in 6000), 128 for
    2-D mixtures."""
    if split.image_shape is None:
        return 128
    return 1024 if split.dim >= 784 else 512


class Recipe:
    """Base: nets (name -> module), groups (optimiser name -> the nets it updates)."""

    name = ""
    groups: dict[str, tuple[str, ...]] = {}
    adversarial = True
    defaults: dict = {}  # TrainConfig fields this model trains with unless the user sets them
    data_defaults: dict = {}  # ... and on top of those on particular data: {data spec: {field: value}}
    alternating_only = False
    options: tuple[str, ...] = ()  # the cfg.extra keys this class reads (a recipe takes those of its bases too)

    @classmethod
    def known_options(cls) -> list[str]:
        return sorted({k for c in cls.__mro__ for k in vars(c).get("options", ())})

    def __init__(self, cfg, split, device):
        self.cfg, self.split, self.device = cfg, split, torch.device(device)
        unknown = sorted(set(cfg.extra) - set(self.known_options()))
        if unknown:
            raise ValueError(f"extra: {self.name} takes no option {', '.join(map(repr, unknown))} (its options: "
                             f"{', '.join(map(repr, self.known_options())) or 'none'})")
        self.hidden = cfg.hidden or default_hidden(split)
        eager = cfg.backend == "eager"
        impl = None if cfg.backend in ("fastgan", "eager") else cfg.backend
        bn = cfg.batch_norm if cfg.batch_norm is not None else split.image_shape is not None
        self.kw = dict(hidden=self.hidden, impl=impl, eager=eager, batch_norm=bn)
        # fastgan ops used outside the networks (MMD, minibatch discrimination): their pure-PyTorch reference in the
        # eager twin, so that a like-for-like comparison has no fastgan kernel on the eager side
        self.op_impl = "reference" if eager else impl
        self.out_act = "tanh" if split.image_shape is not None else "linear"
        self.encoder_out = cfg.extra.get("encoder_out", ENCODER_OUT)
        if self.encoder_out not in ("linear", "tanh"):
            raise ValueError(f"extra['encoder_out']: expected 'linear' or 'tanh', got {self.encoder_out!r}")
        self.nets = {k: v.to(self.device) for k, v in self.build(split.dim, cfg.z_dim).items()}
        self.opts: dict[str, torch.optim.Optimizer] = {}  # set by the trainer
        self.shard = (0, 1)  # (rank, world size): set by the trainer under torch.distributed
        self.scaler = None  # the fp16 GradScaler (cfg.precision='fp16'): set by the trainer

    @classmethod
    def defaults_for(cls, data: str) -> dict:
        """The TrainConfig fields this recipe trains with on `data` unless the user sets them."""
        on_data = cls.data_defaults.get(str(data).lower(), {})
        extra = {**cls.defaults.get("extra", {}), **on_data.get("extra", {})}
        return {**cls.defaults, **on_data, **({"extra": extra} if extra else {})}

    def build(self, x_dim: int, z_dim: int) -> dict:
        raise NotImplementedError

    # ---- gradients (scaled by the fp16 GradScaler when there is one) ----
    def scaled(self, loss):
        return loss if self.scaler is None else self.scaler.scale(loss.float())  # 2^16 x an fp16 loss overflows

    def grads(self, loss, params, retain=False):
        return torch.autograd.grad(self.scaled(loss), params, retain_graph=retain)

    def through_d(self, loss, samples: tuple, params, extra=None):
        """The gradients of `loss` w.r.t. `params` of the networks that made `samples` (the tensors fed to D), in two
        stages: d loss / d samples through input_grads (D's fastgan layers skip their weight GEMMs), then the
        backward of the generating networks from there; `extra`, a scalar loss reaching the params directly, is
        added."""
        g = input_grads(self.scaled(loss), samples, retain_graph=True)
        if extra is not None:
            samples, g = (*samples, extra), (*g, self.scaled(torch.ones_like(extra)))
        return torch.autograd.grad(samples, params, g)

    def params(self, group: str) -> list:
        return [p for name in self.groups[group] for p in self.nets[name].parameters()]

    def latent(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """z ~ U(-1, 1)^z_dim (the paper's latent for permutation-invariant MNIST). Under torch.distributed: this
        rank's slice of the global batch's draw (the same draw on every rank), as a one-process run would see it."""
        return self.uniform(n, self.cfg.z_dim, gen) * 2 - 1

    def uniform(self, n: int, dim: int, gen: torch.Generator) -> torch.Tensor:
        """U(0, 1) of shape (n, dim): under torch.distributed this rank's slice of the global batch's draw."""
        rank, size = self.shard
        u = torch.rand(n * size, dim, generator=gen, device=self.device)
        return u[rank * n:(rank + 1) * n] if size > 1 else u

    def apply(self, group: str, grads) -> None:
        """Set the group's gradients (averaged across ranks under torch.distributed) and step its optimiser."""
        if self.shard[1] > 1:
            grads = [g.clone() for g in grads]
            all_reduce_mean_(grads)
        for p, g in zip(self.params(group), grads):
            p.grad = g
        if self.scaler is None:
            self.opts[group].step()
            return
        # unscales, skips the step if a gradient is not finite; the scale is updated once every gradient computed
        # with it has been applied: after each step when updates alternate, at the end of the iteration
        # (end_iteration) when every gradient comes from one forward pass
        self.scaler.step(self.opts[group])
        if self.cfg.update == "alternating":
            self.scaler.update()

    def end_iteration(self) -> None:
        """Called by the trainer after each step(): the fp16 scale update of a simultaneous iteration."""
        if self.scaler is not None and self.cfg.update == "simultaneous":
            self.scaler.update()

    def train(self, mode: bool = True) -> None:
        for net in self.nets.values():
            net.train(mode)

    def step(self, next_batch, gen) -> dict:
        """One training iteration; next_batch() -> a (B, D) batch on the device. Returns {name: detached scalar}."""
        raise NotImplementedError

    # ---- the discriminator's side of an adversarial recipe (D: cross-entropy on real vs fake inputs) ----
    def d_inputs(self, x: torch.Tensor, gen: torch.Generator) -> tuple[tuple, tuple]:
        """D's real and fake inputs for the data batch x: ((x,), (G(z),)) for a GAN, ((x, E(x)), (G(z), z)) for a
        BiGAN."""
        raise NotImplementedError

    def with_r1(self, d_loss, real: tuple):
        """d_loss + the R1 penalty gamma / 2 E|grad D(real)|^2 on D's real inputs (Mescheder et al. 2018; for a
        BiGAN the joint (x, E(x))) when cfg.extra['r1'] = gamma > 0; the eager twin takes the generic double
        backward."""
        gamma = float(self.cfg.extra.get("r1", 0.0))
        if gamma <= 0:
            return d_loss
        return d_loss + gradient_penalty(self.nets["D"], real if len(real) > 1 else real[0], kind="r1", weight=gamma,
                                         scaler=self.scaler, fused=False if self.kw["eager"] else None)

    def d_steps(self, next_batch, gen):
        """cfg.n_critic steps of D on fresh batches against the generating networks' inputs (no graph into them);
        returns the last batch, D's loss and its logits on real and fake."""
        D = self.nets["D"]
        for _ in range(self.cfg.n_critic):
            x = next_batch()
            with torch.no_grad():
                real, fake = self.d_inputs(x, gen)
            l_real, l_fake = D(*real), D(*fake)
            d_loss = losses.gan_d_loss(l_real, l_fake)
            self.apply("D", self.grads(self.with_r1(d_loss, real), self.params("D")))
        return x, d_loss, l_real, l_fake

    # ---- what evaluation reads (eval mode, no grad) ----
    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        return self.nets["G"](z)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor | None:
        """The learned representation of x for the 1NN protocol: E(x) (None if the model has no encoder)."""
        return self.nets["E"](x) if "E" in self.nets else None

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor | None:
        return self.nets["G"](self.nets["E"](x)) if "E" in self.nets else None


class GAN(Recipe):
    """On the 2-D mixtures (data_defaults) the paper's image settings drop modes (5000 steps: 0/8; 20-30k: 6-7/8):
    there it trains with lr 2e-3, batch 512, alternating updates and the R1 penalty (gamma 0.1) on D, for 10000 steps
    on gmm8 and 20000 on gmm25 (measured: gmm8 8/8 modes for seeds 0-2; gmm25 at 10000 steps 25, 25, 21 of 25 for
    seeds 0-2, at 20000 25 for seed 2). cfg.extra['r1'] = gamma turns R1 on anywhere; on mnist5k it is on (gamma 1,
    MNIST_R1) for every recipe with a cross-entropy D."""
    name = "gan"
    groups = {"D": ("D",), "G": ("G",)}
    options = ("r1",)
    _mixture = dict(lr=2e-3, batch_size=512, extra={"r1": 0.1})
    data_defaults = {"gmm8": dict(_mixture, steps=10000), "gmm25": dict(_mixture, steps=20000),
                     **_MNIST_R1_DEFAULTS}

    def build(self, x_dim, z_dim):
        return {"G": BiGANGenerator(z_dim, x_dim, out_act=self.out_act, **self.kw),
                "D": GANDiscriminator(x_dim, **self.kw)}

    def step(self, next_batch, gen):
        G, D, kind = self.nets["G"], self.nets["D"], self.cfg.g_loss
        if self.cfg.update == "simultaneous":
            x = next_batch()
            gz = G(self.latent(x.shape[0], gen))
            l_real, l_fake = D(x), D(gz)
            d_loss = losses.gan_d_loss(l_real, l_fake)
            g_loss = losses.gan_g_loss(l_fake, kind)
            g_d = self.grads(self.with_r1(d_loss, (x,)), self.params("D"), retain=True)
            # every gradient before any update: they share D's graph
            self.apply("G", self.through_d(g_loss, (gz,), self.params("G")))
            self.apply("D", g_d)
        else:
            x, d_loss, l_real, l_fake = self.d_steps(next_batch, gen)
            gz = G(self.latent(x.shape[0], gen))
            g_loss = losses.gan_g_loss(D(gz), kind)
            self.apply("G", self.through_d(g_loss, (gz,), self.params("G")))
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach(), **losses.d_accuracy(l_real, l_fake)}

    def d_inputs(self, x, gen):
        return (x,), (self.nets["G"](self.latent(x.shape[0], gen)),)

    @torch.no_grad()
    def features(self, x):
        return self.nets["D"].features(x)


class BiGAN(Recipe):
    """On mnist5k D takes the R1 penalty on its real pairs (x, E(x)), gamma 1 (MNIST_R1)."""

    name = "bigan"
    groups = {"D": ("D",), "GE": ("G", "E")}
    options = ("r1", "encoder_out")
    data_defaults = _MNIST_R1_DEFAULTS

    def build(self, x_dim, z_dim):
        return {"G": BiGANGenerator(z_dim, x_dim, out_act=self.out_act, **self.kw),
                "E": BiGANEncoder(x_dim, z_dim, out_act=self.encoder_out, **self.kw),
                "D": BiGANDiscriminator(x_dim, z_dim, **self.kw)}

    def d_inputs(self, x, gen):
        z = self.latent(x.shape[0], gen)
        return (x, self.nets["E"](x)), (self.nets["G"](z), z)

    def _ge_loss(self, l_real, l_fake):
        return losses.bigan_ge_loss(l_real, l_fake, "minimax" if self.cfg.g_loss == "minimax" else "inverse")

    def step(self, next_batch, gen):
        G, E, D = self.nets["G"], self.nets["E"], self.nets["D"]
        if self.cfg.update == "simultaneous":
            x = next_batch()
            z = self.latent(x.shape[0], gen)
            gz, ex = G(z), E(x)
            l_real, l_fake = D(x, ex), D(gz, z)
            d_loss = losses.gan_d_loss(l_real, l_fake)
            ge_loss = self._ge_loss(l_real, l_fake)
            g_d = self.grads(self.with_r1(d_loss, (x, ex)), self.params("D"), retain=True)
            self.apply("GE", self.through_d(ge_loss, (gz, ex), self.params("GE")))  # every gradient before any update
            self.apply("D", g_d)
        else:
            x, d_loss, l_real, l_fake = self.d_steps(next_batch, gen)
            z = self.latent(x.shape[0], gen)
            gz, ex = G(z), E(x)
            ge_loss = self._ge_loss(D(x, ex), D(gz, z))
            self.apply("GE", self.through_d(ge_loss, (gz, ex), self.params("GE")))
        return {"loss_d": d_loss.detach(), "loss_ge": ge_loss.detach(), **losses.d_accuracy(l_real, l_fake)}


class LatentRegressor(GAN):
    """A GAN plus an encoder E trained to regress z from G(z) (mean squared error); joint=True lets the regression
    loss (weight cfg.extra['reg_weight'], default 1) train G as well (the paper's JLR)."""

    name = "lr"
    data_defaults = _MNIST_R1_DEFAULTS  # a Table-1 baseline: the same D as gan / bigan
    joint = False
    groups = {"D": ("D",), "G": ("G",), "E": ("E",)}
    options = ("encoder_out",)

    def build(self, x_dim, z_dim):
        return {**super().build(x_dim, z_dim),
                "E": BiGANEncoder(x_dim, z_dim, out_act=self.encoder_out, **self.kw)}

    def step(self, next_batch, gen):
        G, D, E = self.nets["G"], self.nets["D"], self.nets["E"]
        if self.cfg.update == "alternating":
            x, d_loss, l_real, l_fake = self.d_steps(next_batch, gen)
        else:
            x = next_batch()
        z = self.latent(x.shape[0], gen)
        gz = G(z)
        if self.cfg.update == "simultaneous":  # D's loss and G's from one forward
            l_real, l_fake = D(x), D(gz)
            d_loss, l_fake_g = losses.gan_d_loss(l_real, l_fake), l_fake
        else:
            l_fake_g = D(gz)
        g_loss = losses.gan_g_loss(l_fake_g, self.cfg.g_loss)
        reg = F.mse_loss(E(gz if self.joint else gz.detach()).float(), z.float())
        g_d = (self.grads(self.with_r1(d_loss, (x,)), self.params("D"), retain=True)
               if self.cfg.update == "simultaneous" else None)  # R1 as in GAN's step and d_steps
        g_e = self.grads(reg, self.params("E"), retain=True)
        weight = float(self.cfg.extra.get("reg_weight", 1.0))
        self.apply("G", self.through_d(g_loss, (gz,), self.params("G"), extra=weight * reg if self.joint else None))
        self.apply("E", g_e)
        if g_d is not None:
            self.apply("D", g_d)
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
    options = ("reg_weight",)  # the regression loss's weight in G's objective


class AutoEncoder(Recipe):
    """E -> G trained on reconstruction (the l2 or l1 loss); no discriminator."""

    name = "ae-l2"
    groups = {"GE": ("G", "E")}
    options = ("encoder_out",)
    adversarial = False
    p = 2

    def build(self, x_dim, z_dim):
        return {"G": BiGANGenerator(z_dim, x_dim, out_act=self.out_act, **self.kw),
                "E": BiGANEncoder(x_dim, z_dim, out_act=self.encoder_out, **self.kw)}

    def step(self, next_batch, gen):
        x = next_batch()
        rec = self.nets["G"](self.nets["E"](x))
        rec = rec.float()  # the reconstruction loss in fp32 under autocast
        loss = F.mse_loss(rec, x) if self.p == 2 else F.l1_loss(rec, x)
        self.apply("GE", self.grads(loss, self.params("GE")))
        return {"loss_rec": loss.detach()}


class AutoEncoderL1(AutoEncoder):
    name = "ae-l1"
    p = 1


class CriticGAN(Recipe):
    """G and a batch-norm-free critic trained on one objective, alternating (n_critic critic steps, then G)."""

    groups = {"D": ("D",), "G": ("G",)}
    defaults = dict(update="alternating")
    alternating_only = True
    # the 2-D mixtures: the paper's image settings (lr 2e-4, batch 128) left lsgan at 6/8 and the others at 0-2/8 in
    # 5000 steps; with lr 2e-3 and batch 512: lsgan 8, hinge 7, fgan KL / Pearson / JS / GAN 8 (measured, seed 0)
    data_defaults = {k: dict(lr=2e-3, batch_size=512) for k in ("gmm8", "gmm25")}

    def build(self, x_dim, z_dim):
        return {"G": BiGANGenerator(z_dim, x_dim, out_act=self.out_act, **self.kw), "D": self.critic(x_dim)}

    def critic(self, x_dim):
        return MLPCritic(x_dim, hidden=(self.hidden, self.hidden), impl=self.kw["impl"], eager=self.kw["eager"])

    def objective(self, v_real, v_fake):
        """(critic loss, generator loss)."""
        raise NotImplementedError

    def d(self, x):
        """The critic's outputs on x."""
        return self.nets["D"](x)

    def critic_loss(self, x, gz, gen):
        return self.objective(self.d(x), self.d(gz))[0]

    def generator_loss(self, x, gz):
        return self.objective(self.d(x).detach(), self.d(gz))[1]

    def after_critic_step(self):
        pass

    def step(self, next_batch, gen):
        G = self.nets["G"]
        for _ in range(self.cfg.n_critic):
            x = next_batch()
            with torch.no_grad():
                gz = G(self.latent(x.shape[0], gen))
            d_loss = self.critic_loss(x, gz, gen)
            self.apply("D", self.grads(d_loss, self.params("D")))
            self.after_critic_step()
        gz = G(self.latent(x.shape[0], gen))
        g_loss = self.generator_loss(x, gz)
        self.apply("G", self.through_d(g_loss, (gz,), self.params("G")))
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach()}

    @torch.no_grad()
    def features(self, x):
        return None


class _Clipped:
    """Weight clipping of the critic to [-c, c] after each critic step (c = cfg.extra['clip'], default 0.01).

    Under mixed precision the clipped critic runs in fp32 (autocast off inside it; G stays in half precision): with
    weights of 0.01 its gradient is a small difference of real and fake terms that bf16 / fp16 GEMMs do not resolve
    (measured on the tiny test nets: cosine 0.3-0.6 to the fp32 gradient)."""

    options = ("clip",)

    def d(self, x):
        if _checks.autocast_dtype(x) is None:
            return self.nets["D"](x)
        with torch.autocast(x.device.type, enabled=False):
            return self.nets["D"](x.float())

    def after_critic_step(self):
        c = float(self.cfg.extra.get("clip", 0.01))
        with torch.no_grad():
            for p in self.params("D"):
                p.clamp_(-c, c)


class WGAN(_Clipped, CriticGAN):
    name = "wgan"
    defaults = dict(update="alternating", optimizer="rmsprop", lr=5e-5, n_critic=5, batch_size=64)
    data_defaults: dict = {}  # the paper's on the mixtures too: lr 5e-4 / batch 512 did no better (0/8; see issue 8)

    def objective(self, v_real, v_fake):
        return losses.wasserstein_losses(v_real, v_fake)


class WGANGP(CriticGAN):
    name = "wgan-gp"
    options = ("gp_weight",)
    defaults = dict(update="alternating", lr=1e-4, beta1=0.0, beta2=0.9, n_critic=5)
    data_defaults = {k: dict(lr=1e-3, batch_size=512) for k in ("gmm8", "gmm25")}  # gmm8: 8/8 (5000 steps)

    def objective(self, v_real, v_fake):
        return losses.wasserstein_losses(v_real, v_fake)

    def critic_loss(self, x, gz, gen):
        # the interpolation draws come from the trainer's generator too (one seed sets everything)
        weight = float(self.cfg.extra.get("gp_weight", 10.0))
        fused = False if self.kw["eager"] else None  # the eager twin: the textbook double backward
        eps = self.uniform(x.shape[0], 1, gen)[:, 0]  # this rank's slice of the global batch's draw
        return wgan_critic_loss(self.nets["D"], x, gz, weight=weight, eps=eps, fused=fused, scaler=self.scaler).loss


class LSGAN(CriticGAN):
    name = "lsgan"

    def objective(self, v_real, v_fake):
        return losses.least_squares_losses(v_real, v_fake)


class HingeGAN(CriticGAN):
    name = "hinge"

    def objective(self, v_real, v_fake):
        return losses.hinge_losses(v_real, v_fake)


def _fgan(div: str):
    class FGAN(CriticGAN):
        name = f"fgan-{div}"
        divergence = div

        def objective(self, v_real, v_fake):
            return losses.f_divergence_losses(v_real, v_fake, self.divergence)

    FGAN.__name__ = FGAN.__qualname__ = f"FGAN_{div}"
    return FGAN


_BANDWIDTH_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


def _bandwidth_factors(cfg) -> tuple[float, ...]:
    """cfg.extra['bandwidth_factors'] (default 0.25 ... 4): Gaussian bandwidths relative to a median distance."""
    factors = cfg.extra.get("bandwidth_factors", _BANDWIDTH_FACTORS)
    if not (isinstance(factors, (list, tuple)) and factors
            and all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in factors)):
        raise ValueError(f"extra['bandwidth_factors']: expected a non-empty list of positive numbers, got {factors!r}")
    return tuple(float(f) for f in factors)


class GMMN(Recipe):
    """A generative moment-matching network (Li et al. 2015; Dziugaite et al. 2015): G minimises the biased MMD^2
    between its batch and the data batch, Gaussian kernel with bandwidths (0.25, 0.5, 1, 2, 4) x the data's median
    pairwise distance (fixed from the training split at build time; other factors: cfg.extra['bandwidth_factors'])."""

    name = "gmmn"
    groups = {"G": ("G",)}
    options = ("bandwidth_factors",)
    adversarial = False
    defaults = dict(lr=1e-3, batch_size=256)
    # the mixtures' modes (std 0.02-0.05) are ~100x narrower than the data's median distance: kernels that wide
    # cannot place samples on them (4/8 modes, 6 % high-quality); factors down to 0.01: 8/8, 68 % (gmm8, 5000 steps)
    data_defaults = {k: dict(batch_size=512, extra={"bandwidth_factors": [0.01, 0.03, 0.1, 0.3, 1.0]})
                     for k in ("gmm8", "gmm25")}

    def build(self, x_dim, z_dim):
        m = median_bandwidth(self.split.train_x[:2000])
        self.bandwidths = tuple(m * f for f in _bandwidth_factors(self.cfg))
        return {"G": BiGANGenerator(z_dim, x_dim, out_act=self.out_act, **self.kw)}

    def step(self, next_batch, gen):
        x = next_batch()
        loss = mmd2(self.nets["G"](self.latent(x.shape[0], gen)), x, bandwidths=self.bandwidths, impl=self.op_impl)
        self.apply("G", self.grads(loss, self.params("G")))
        return {"mmd2": loss.detach()}

    @torch.no_grad()
    def features(self, x):
        return None


class MMDGAN(_Clipped, CriticGAN):
    """MMD GAN (Li et al. 2017) without its autoencoder term: a feature map f (an MLP to 16 features, weights clipped
    to [-0.01, 0.01]) maximises MMD^2(f(x), f(G(z))), G minimises it; RMSProp 5e-5, n_critic 5.

    Bandwidths follow the features (the median heuristic, every step): the Gaussian kernel runs on the features
    divided by their pooled median pairwise distance m (detached, a 0-d tensor: no host sync), with bandwidths
    cfg.extra['bandwidth_factors'] (0.25 ... 4) — the same as bandwidths factor x m on the raw features. The paper's
    fixed bandwidths 1 ... 16 are ~100x wider than the spread of a feature map whose weights are clipped to 0.01:
    every kernel value was ~1, the MMD ~0 and its gradient noise (0/8 modes on gmm8)."""

    name = "mmdgan"
    options = ("bandwidth_factors", "features")
    defaults = dict(update="alternating", optimizer="rmsprop", lr=5e-5, n_critic=5, batch_size=64)
    data_defaults: dict = {}

    def critic(self, x_dim):
        self.bandwidths = _bandwidth_factors(self.cfg)
        return BiGANEncoder(x_dim, int(self.cfg.extra.get("features", 16)), **{**self.kw, "batch_norm": False})

    def _mmd(self, x, gz):
        fx, fg = self.d(x), self.d(gz)
        m = median_distance(fx, fg).clamp_min(torch.finfo(fx.dtype).tiny)
        return mmd2(fx / m, fg / m, bandwidths=self.bandwidths, impl=self.op_impl)

    def critic_loss(self, x, gz, gen):
        return -self._mmd(x, gz)

    def generator_loss(self, x, gz):
        return self._mmd(x, gz)


class ImprovedDiscriminator(torch.nn.Module):
    """x -> lrelu hidden -> lrelu hidden (the features f) -> minibatch discrimination [f, o(f)] -> logit: the
    discriminator of the Improved-GAN techniques, on fastgan's fused layers."""

    def __init__(self, x_dim, hidden, impl=None, eager=False, kernels=50, kernel_dim=5, mbd_impl=None):
        super().__init__()
        self.fc1 = LinearAct(x_dim, hidden, act="lrelu", alpha=0.2, gain=1.0, impl=impl, eager=eager)
        self.fc2 = LinearAct(hidden, hidden, act="lrelu", alpha=0.2, gain=1.0, impl=impl, eager=eager)
        self.mbd = MinibatchDiscrimination(hidden, kernels, kernel_dim, impl=mbd_impl)
        self.out = LinearAct(hidden + kernels, 1, impl=impl, eager=eager)

    def features(self, x):
        return self.fc2(self.fc1(x))

    def forward(self, x):
        return self.out(self.mbd(self.features(x))).squeeze(1)


class Improved(CriticGAN):
    """Salimans et al. 2016: D with minibatch discrimination and the cross-entropy loss; G trained with the
    non-saturating loss (their recommendation for sample quality), or by feature matching with
    cfg.extra['feature_matching'] = True (--feature-matching): |E f(x) - E f(G(z))|^2 with f = D's last hidden layer.
    Feature matching moves D's mean features, not the samples: 0/8 modes on gmm8 (it suits semi-supervised
    learning, the paper's use of it). cfg.extra['r1'] = gamma: the R1 penalty on D, through the minibatch layer's
    second derivative (fastgan::minibatch_disc_backward2)."""

    name = "improved"
    options = ("feature_matching", "r1")
    # gmm8: lr 1e-3, batch 256 and R1 (gamma 0.1) on D: 8/8 modes, 70 % high-quality (seed 0, 5000 steps); the
    # paper's settings gave 5/8 (6.8 %). gmm25 keeps the paper's (not measured with these)
    data_defaults = {"gmm8": dict(lr=1e-3, batch_size=256, extra={"r1": 0.1})}

    def critic(self, x_dim):
        return ImprovedDiscriminator(x_dim, self.hidden, impl=self.kw["impl"], eager=self.kw["eager"],
                                     mbd_impl=self.op_impl)

    def critic_loss(self, x, gz, gen):
        return self.with_r1(losses.gan_d_loss(self.nets["D"](x), self.nets["D"](gz)), (x,))

    def generator_loss(self, x, gz):
        D = self.nets["D"]
        if not self.cfg.extra.get("feature_matching", False):
            return losses.gan_g_loss(D(gz), "ns")
        with torch.no_grad():
            target = D.features(x).mean(0)
        return (D.features(gz).float().mean(0) - target.float()).square().sum()

    @torch.no_grad()
    def features(self, x):
        return self.nets["D"].features(x)


RECIPES = {r.name: r for r in (GAN, BiGAN, LatentRegressor, JointLatentRegressor, AutoEncoder, AutoEncoderL1,
                               WGAN, WGANGP, LSGAN, HingeGAN, *(_fgan(d) for d in losses.DIVERGENCES), GMMN, MMDGAN,
                               Improved)}
