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

Networks: the paper's permutation-invariant MNIST MLPs (fastgan.nn.BiGANGenerator / BiGANEncoder /
BiGANDiscriminator, and GANDiscriminator = the BiGAN D without z), hidden width cfg.hidden, G's output tanh for
images in [-1, 1] and linear for 2-D mixtures; fused (fastgan ops) or the eager twins (cfg.backend='eager'). The
paper's batch norm in hidden layer 2 is off for the 2-D mixtures by default (cfg.batch_norm): with it D normalises
each batch, so it barely sees where a whole batch of samples sits, and G drifted off the data (0/8 modes).

The generator-side gradient of an adversarial loss is taken in two stages: first the gradient w.r.t. the samples
fed to D (inside skip_weight_grads: fastgan's D layers then skip their weight gradients, as torch's own ops do when
autograd.grad does not ask for them), then the backward of G (and E) from there. D's own update is one
autograd.grad w.r.t. D's parameters. With update='simultaneous' (the default) all of it comes from one forward pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import losses
from ..nn import BiGANDiscriminator, BiGANEncoder, BiGANGenerator, GANDiscriminator
from ..penalties import skip_weight_grads

__all__ = ["RECIPES", "Recipe"]


def default_hidden(split) -> int:
    """The hidden width when cfg.hidden is None: the paper's 1024 for MNIST-sized inputs (>= 784), 512 for smaller
    images (digits: a 1024-wide BiGAN diverged there in 3000 steps, classifier FD 336; 512 reached 8.1 in 6000), 128 for
    2-D mixtures."""
    if split.image_shape is None:
        return 128
    return 1024 if split.dim >= 784 else 512


def _grads(loss, params, retain=False):
    return torch.autograd.grad(loss, params, retain_graph=retain)


class Recipe:
    """Base: nets (name -> module), groups (optimiser name -> the nets it updates)."""

    name = ""
    groups: dict[str, tuple[str, ...]] = {}
    adversarial = True

    def __init__(self, cfg, split, device):
        self.cfg, self.split, self.device = cfg, split, torch.device(device)
        self.hidden = cfg.hidden or default_hidden(split)
        eager = cfg.backend == "eager"
        impl = None if cfg.backend in ("fastgan", "eager") else cfg.backend
        bn = cfg.batch_norm if cfg.batch_norm is not None else split.image_shape is not None
        self.kw = dict(hidden=self.hidden, impl=impl, eager=eager, batch_norm=bn)
        self.out_act = "tanh" if split.image_shape is not None else "linear"
        self.nets = {k: v.to(self.device) for k, v in self.build(split.dim, cfg.z_dim).items()}
        self.opts: dict[str, torch.optim.Optimizer] = {}  # set by the trainer

    def build(self, x_dim: int, z_dim: int) -> dict:
        raise NotImplementedError

    def params(self, group: str) -> list:
        return [p for name in self.groups[group] for p in self.nets[name].parameters()]

    def latent(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """z ~ U(-1, 1)^z_dim (the paper's latent for permutation-invariant MNIST)."""
        return torch.rand(n, self.cfg.z_dim, generator=gen, device=self.device) * 2 - 1

    def apply(self, group: str, grads) -> None:
        """Set the group's gradients and step its optimiser."""
        for p, g in zip(self.params(group), grads):
            p.grad = g
        self.opts[group].step()

    def train(self, mode: bool = True) -> None:
        for net in self.nets.values():
            net.train(mode)

    def step(self, next_batch, gen) -> dict:
        """One training iteration; next_batch() -> a (B, D) batch on the device. Returns {name: detached scalar}."""
        raise NotImplementedError

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
    name = "gan"
    groups = {"D": ("D",), "G": ("G",)}

    def build(self, x_dim, z_dim):
        return {"G": BiGANGenerator(z_dim, x_dim, out_act=self.out_act, **self.kw),
                "D": GANDiscriminator(x_dim, **self.kw)}

    def _g_grads(self, g_loss, gz, retain=False, extra=None):
        """G's gradients of g_loss through D (input gradients only), plus extra losses that reach G directly."""
        with skip_weight_grads():
            (g_gz,) = torch.autograd.grad(g_loss, (gz,), retain_graph=True)
        if extra is None:
            return torch.autograd.grad(gz, self.params("G"), g_gz, retain_graph=retain)
        return torch.autograd.grad((gz, extra), self.params("G"), (g_gz, torch.ones_like(extra)),
                                   retain_graph=retain)

    def step(self, next_batch, gen):
        G, D, kind = self.nets["G"], self.nets["D"], self.cfg.g_loss
        if self.cfg.update == "simultaneous":
            x = next_batch()
            gz = G(self.latent(x.shape[0], gen))
            l_real, l_fake = D(x), D(gz)
            d_loss = losses.gan_d_loss(l_real, l_fake)
            g_loss = losses.gan_g_loss(l_fake, kind)
            g_d = _grads(d_loss, self.params("D"), retain=True)
            self.apply("G", self._g_grads(g_loss, gz))  # every gradient before any update: they share D's graph
            self.apply("D", g_d)
        else:
            for _ in range(self.cfg.n_critic):
                x = next_batch()
                with torch.no_grad():
                    gz = G(self.latent(x.shape[0], gen))
                d_loss = losses.gan_d_loss(D(x), D(gz))
                self.apply("D", _grads(d_loss, self.params("D")))
            gz = G(self.latent(x.shape[0], gen))
            g_loss = losses.gan_g_loss(D(gz), kind)
            self.apply("G", self._g_grads(g_loss, gz))
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach()}

    @torch.no_grad()
    def features(self, x):
        return self.nets["D"].features(x)


class BiGAN(Recipe):
    name = "bigan"
    groups = {"D": ("D",), "GE": ("G", "E")}

    def build(self, x_dim, z_dim):
        return {"G": BiGANGenerator(z_dim, x_dim, out_act=self.out_act, **self.kw),
                "E": BiGANEncoder(x_dim, z_dim, **self.kw),
                "D": BiGANDiscriminator(x_dim, z_dim, **self.kw)}

    def _ge_loss(self, l_real, l_fake):
        return losses.bigan_ge_loss(l_real, l_fake, "minimax" if self.cfg.g_loss == "minimax" else "inverse")

    def _ge_grads(self, ge_loss, ex, gz):
        with skip_weight_grads():
            g_ex, g_gz = torch.autograd.grad(ge_loss, (ex, gz), retain_graph=True)
        return torch.autograd.grad((gz, ex), self.params("GE"), (g_gz, g_ex))

    def step(self, next_batch, gen):
        G, E, D = self.nets["G"], self.nets["E"], self.nets["D"]
        if self.cfg.update == "simultaneous":
            x = next_batch()
            z = self.latent(x.shape[0], gen)
            gz, ex = G(z), E(x)
            l_real, l_fake = D(x, ex), D(gz, z)
            d_loss = losses.gan_d_loss(l_real, l_fake)
            ge_loss = self._ge_loss(l_real, l_fake)
            g_d = _grads(d_loss, self.params("D"), retain=True)
            self.apply("GE", self._ge_grads(ge_loss, ex, gz))  # every gradient before any update
            self.apply("D", g_d)
        else:
            for _ in range(self.cfg.n_critic):
                x = next_batch()
                z = self.latent(x.shape[0], gen)
                with torch.no_grad():
                    gz, ex = G(z), E(x)
                d_loss = losses.gan_d_loss(D(x, ex), D(gz, z))
                self.apply("D", _grads(d_loss, self.params("D")))
            z = self.latent(x.shape[0], gen)
            gz, ex = G(z), E(x)
            ge_loss = self._ge_loss(D(x, ex), D(gz, z))
            self.apply("GE", self._ge_grads(ge_loss, ex, gz))
        return {"loss_d": d_loss.detach(), "loss_ge": ge_loss.detach()}


class LatentRegressor(GAN):
    """A GAN plus an encoder E trained to regress z from G(z) (mean squared error); joint=True lets the regression
    loss (weight cfg.extra['reg_weight'], default 1) train G as well (the paper's JLR)."""

    name = "lr"
    joint = False
    groups = {"D": ("D",), "G": ("G",), "E": ("E",)}

    def build(self, x_dim, z_dim):
        return {**super().build(x_dim, z_dim), "E": BiGANEncoder(x_dim, z_dim, **self.kw)}

    def step(self, next_batch, gen):
        if self.cfg.update != "simultaneous":
            raise ValueError(f"update: the {self.name!r} baseline runs simultaneous updates only")
        G, D, E = self.nets["G"], self.nets["D"], self.nets["E"]
        x = next_batch()
        z = self.latent(x.shape[0], gen)
        gz = G(z)
        l_real, l_fake = D(x), D(gz)
        d_loss = losses.gan_d_loss(l_real, l_fake)
        g_loss = losses.gan_g_loss(l_fake, self.cfg.g_loss)
        reg = F.mse_loss(E(gz if self.joint else gz.detach()), z)
        g_d = _grads(d_loss, self.params("D"), retain=True)
        g_e = _grads(reg, self.params("E"), retain=True)
        weight = float(self.cfg.extra.get("reg_weight", 1.0))
        self.apply("G", self._g_grads(g_loss, gz, extra=weight * reg if self.joint else None))
        self.apply("E", g_e)
        self.apply("D", g_d)
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach(), "loss_reg": reg.detach()}


class JointLatentRegressor(LatentRegressor):
    name = "jlr"
    joint = True


class AutoEncoder(Recipe):
    """E -> G trained on reconstruction (the l2 or l1 loss); no discriminator."""

    name = "ae-l2"
    groups = {"GE": ("G", "E")}
    adversarial = False
    p = 2

    def build(self, x_dim, z_dim):
        return {"G": BiGANGenerator(z_dim, x_dim, out_act=self.out_act, **self.kw),
                "E": BiGANEncoder(x_dim, z_dim, **self.kw)}

    def step(self, next_batch, gen):
        x = next_batch()
        rec = self.nets["G"](self.nets["E"](x))
        loss = F.mse_loss(rec, x) if self.p == 2 else F.l1_loss(rec, x)
        self.apply("GE", _grads(loss, self.params("GE")))
        return {"loss_rec": loss.detach()}


class AutoEncoderL1(AutoEncoder):
    name = "ae-l1"
    p = 1


RECIPES = {r.name: r for r in (GAN, BiGAN, LatentRegressor, JointLatentRegressor, AutoEncoder, AutoEncoderL1)}
