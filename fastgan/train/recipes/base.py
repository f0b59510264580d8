"""The recipe base class (networks, optimiser groups, the two-stage gradients, R1, sharding), the step context the
trainer hands it, and the defaults and checks a recipe applies to a TrainConfig (docs/defaults.md: why each value)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ... import losses
from ...nn import (
    BiGANDiscriminator,
    BiGANEncoder,
    BiGANGenerator,
    DCGANDiscriminator,
    DCGANEncoder,
    DCGANFeatures,
    DCGANGenerator,
    FlatImageAdapter,
    GANDiscriminator,
    image_geometry,
)
from ...ops.weight_grads import input_grads
from ...penalties import r1_from_outputs
from ..config import ARCHS
from ..distributed import all_reduce_mean_
from .options import NON_NEGATIVE, POSITIVE, Option, choice, integer, number  # noqa: F401  (re-exported)

ENCODER_OUT = "linear"  # E's output activation (cfg.extra['encoder_out']): 'linear' (the paper's) or 'tanh'
DEFAULT_STEPS = 5000  # a run's length when neither the user nor the recipe's data_defaults set steps or epochs
# The R1 weight on the cross-entropy D of gan / bigan / lr / jlr on mnist5k (measured: docs/defaults.md)
MNIST_R1 = 1.0
_MNIST_R1_DEFAULTS = {"mnist5k": dict(extra={"r1": MNIST_R1})}  # data_defaults of gan / bigan / lr / jlr
# the options of a recipe that takes the R1 penalty on its D: gamma, and K of lazy R1 (Recipe.r1_weight)
R1_OPTIONS = (
    number("r1", 0.0, "the R1 penalty weight gamma on D's real inputs (a BiGAN's: the joint (x, E(x)))", flag="--r1",
           metavar="GAMMA"),
    integer("r1_every", 1, "lazy R1 (StyleGAN2): the penalty, weighted K x GAMMA, on every K-th step of D only",
            check=(lambda v: v >= 1, "a positive int (--r1-every K: R1 on every K-th step of D)"), flag="--r1-every",
            metavar="K"),
)
# E's output activation, an option of the recipes with an encoder
ENCODER_OUT_OPTION = choice("encoder_out", ENCODER_OUT, ("linear", "tanh"),
                            "E's output activation: linear (the paper's) or tanh (codes in (-1, 1), the uniform "
                            "prior's support)")
# --arch dcgan: the conv nets' base width (channels of D's first conv, G's last hidden deconv; widths base, 2 base,
# 4 base on 32 x 32, up to 8 base on 64 x 64: fastgan.nn.dcgan) when cfg.hidden is None; cfg.hidden, when given, is
# the base. 32 (not DCGAN's 64): a 2-core CPU trains it in minutes (docs/models/dcgan.md)
DCGAN_BASE = 32


@dataclass(frozen=True)
class StepContext:
    """What the trainer hands a recipe with every iteration (Recipe.step and the helpers it calls): the run's
    optimisers, fp16 loss scaler and data-parallel shard. The recipe's own state is its configuration (cfg) and its
    networks; nothing else is set on it from outside."""

    opts: Mapping[str, torch.optim.Optimizer]  # one optimiser per recipe group (Recipe.groups)
    scaler: torch.amp.GradScaler | None = None  # the fp16 GradScaler (cfg.precision='fp16'), else None
    shard: tuple[int, int] = (0, 1)  # (rank, world size) under torch.distributed
    step: int = 0  # the iteration's index in the run (0-based): lazy R1 counts D's steps from it


def default_hidden(split) -> int:
    """The hidden width when cfg.hidden is None: the paper's 1024 for MNIST-sized inputs (>= 784), 512 for smaller
    images (digits; measured: docs/defaults.md), 128 for 2-D mixtures."""
    if split.image_shape is None:
        return 128
    return 1024 if split.dim >= 784 else 512


class GaussianEncoder(torch.nn.Module):
    """An encoder net with 2 z_dim outputs read as a diagonal Gaussian: moments(x) -> (mean, log-variance);
    forward(x) -> the mean (the code evaluation reads)."""

    def __init__(self, net: torch.nn.Module, z_dim: int):
        super().__init__()
        self.net, self.z_dim = net, z_dim

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x)
        return h[:, :self.z_dim], h[:, self.z_dim:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moments(x)[0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The net's last hidden layer (what its output layer reads, the mean and the log-variance alike)."""
        return self.net.features(x)


class Recipe:
    """Base: nets (name -> module), groups (optimiser name -> the nets it updates)."""

    name = ""
    groups: dict[str, tuple[str, ...]] = {}
    adversarial = True
    defaults: dict = {}  # TrainConfig fields this model trains with unless the user sets them
    data_defaults: dict = {}  # ... and on top of those on particular data: {data spec: {field: value}}
    alternating_only = False  # refuses update='simultaneous'
    inverse_g_loss = False  # takes g_loss='inverse' (BiGAN's objective Lambda)
    options: tuple[Option, ...] = ()  # the cfg.extra keys this class reads (options.py; with those of its bases)
    archs: tuple[str, ...] = ARCHS  # the cfg.arch values it takes: a recipe that cannot take 'dcgan' says ("mlp",)
    arch_note = ""  # ... and why, for the error
    metric_labels: dict[str, tuple[str, str]] = {}  # its own evaluation's metrics (evaluation.METRIC_LABELS' form)

    @classmethod
    def option_specs(cls) -> dict[str, Option]:
        """Every option this recipe reads, by name: its classes' `options`, a subclass's declaration of a name
        replacing its base's (e.g. another default)."""
        specs: dict[str, Option] = {}
        for c in reversed(cls.__mro__):
            for o in vars(c).get("options", ()):
                specs[o.name] = o
        return specs

    @classmethod
    def labels(cls) -> dict[str, tuple[str, str]]:
        """The labels of this recipe's own metrics (`evaluation()`'s keys), its classes' metric_labels merged."""
        return {k: v for c in reversed(cls.__mro__) for k, v in vars(c).get("metric_labels", {}).items()}

    @classmethod
    def known_options(cls) -> list[str]:
        return sorted(cls.option_specs())

    @classmethod
    def defaults_for(cls, data: str) -> dict:
        """The TrainConfig fields this recipe trains with on `data` unless the user sets them (steps: the data's,
        else DEFAULT_STEPS)."""
        on_data = cls.data_defaults.get(str(data).lower(), {})
        extra = {**cls.defaults.get("extra", {}), **on_data.get("extra", {})}
        return {"steps": DEFAULT_STEPS, **cls.defaults, **on_data, **({"extra": extra} if extra else {})}

    @classmethod
    def check_config(cls, cfg) -> None:
        """What this recipe requires of a configuration: the update scheme, the generator loss and the cfg.extra
        options it takes. recipes.validate runs it before the values' own checks (TrainConfig.validate), so that the
        recipe's requirement is the message (wgan with update='simultaneous' fails on the update, not on the
        n_critic 5 it brings)."""
        if cfg.update == "simultaneous" and cls.alternating_only:
            raise ValueError(f"update: the {cls.name!r} recipe trains with update='alternating'")
        if cfg.g_loss == "inverse" and not cls.inverse_g_loss:
            raise ValueError("g_loss: 'inverse' is the BiGAN objective Lambda; GAN generators take 'ns' or 'minimax'")
        if not isinstance(cfg.extra, dict):
            raise TypeError(f"extra: expected a dict, got {type(cfg.extra).__name__}")
        unknown = sorted(set(cfg.extra) - set(cls.known_options()))
        if unknown:
            raise ValueError(f"extra: {cls.name} takes no option {', '.join(map(repr, unknown))} (its options: "
                             f"{', '.join(map(repr, cls.known_options())) or 'none'})")
        values = {name: spec.value(cfg.extra) for name, spec in cls.option_specs().items()}
        if "r1" in values:
            gamma, every = values["r1"], values["r1_every"]
            if every != 1 and gamma == 0:
                raise ValueError(f"extra['r1_every']: {every} without the R1 penalty (extra['r1'] is 0): set --r1 "
                                 f"GAMMA > 0 too")
        if cfg.arch in ARCHS and cfg.arch not in cls.archs:  # an unknown arch: TrainConfig.validate's message
            raise ValueError(f"arch: the {cls.name!r} recipe takes arch {' or '.join(map(repr, cls.archs))}, not "
                             f"{cfg.arch!r}" + (f" ({cls.arch_note})" if cls.arch_note else ""))

    def __init__(self, cfg, split, device):
        self.check_config(cfg)
        self.cfg, self.split, self.device = cfg, split, torch.device(device)
        self.hidden = cfg.hidden or default_hidden(split)
        eager = cfg.backend == "eager"
        impl = None if cfg.backend in ("fastgan", "eager") else cfg.backend
        bn = cfg.batch_norm if cfg.batch_norm is not None else split.image_shape is not None
        self.kw = dict(hidden=self.hidden, impl=impl, eager=eager, batch_norm=bn)
        # fastgan ops used outside the networks (MMD, minibatch discrimination): their pure-PyTorch reference in the
        # eager twin, so that a like-for-like comparison has no fastgan kernel on the eager side
        self.op_impl = "reference" if eager else impl
        self.out_act = "tanh" if split.image_shape is not None else "linear"
        self._options = {name: spec.value(cfg.extra) for name, spec in self.option_specs().items()}
        self.encoder_out = self._options.get("encoder_out", ENCODER_OUT)
        self.image = None  # --arch dcgan: ((C, H, W), S) of the data's images (nn.image_geometry)
        if cfg.arch == "dcgan":
            if split.image_shape is None:
                raise ValueError(f"arch: 'dcgan' builds conv nets for images; data {cfg.data!r} has none (rows of "
                                 f"{split.dim} values, no image shape): use arch 'mlp'")
            try:
                self.image = image_geometry(split.image_shape, split.dim)
            except ValueError as e:
                raise ValueError(f"arch: 'dcgan' on data {cfg.data!r}: {e}") from None
        self.base = cfg.hidden or DCGAN_BASE  # the conv nets' width (DCGAN_BASE)
        self.conv_kw = dict(base=self.base, impl=impl, eager=eager, batch_norm=bn)
        self.nets = {k: v.to(self.device) for k, v in self.build(split.dim, cfg.z_dim).items()}

    def build(self, x_dim: int, z_dim: int) -> dict:
        raise NotImplementedError

    def opt(self, name: str):
        """The value of option `name` in this run (checked when the recipe was made; its default when not set)."""
        return self._options[name]

    # ---- the networks a recipe builds (fused, or the eager twins under cfg.backend='eager'; self.kw) ----
    # cfg.arch 'mlp': the paper's MLPs (self.kw). 'dcgan': a net whose input or output is the data (x_dim = the
    # data's row length) is a DCGAN-style conv net on the flat rows (conv_net); any other (e.g. an adversary on
    # latent codes) stays an MLP.
    def generator(self, z_dim: int, x_dim: int, out_act: str | None = None) -> torch.nn.Module:
        """G: z (N, z_dim) -> x (N, x_dim); out_act defaults to the data's (tanh for images, linear for 2-D)."""
        if self.convolutional(x_dim):
            return self.conv_net("G", z_dim, out_act=out_act or self.out_act)
        return BiGANGenerator(z_dim, x_dim, out_act=out_act or self.out_act, **self.kw)

    def encoder(self, x_dim: int, z_dim: int, out_act: str | None = None) -> torch.nn.Module:
        """E: x (N, x_dim) -> (N, z_dim); out_act defaults to cfg.extra['encoder_out'] (ENCODER_OUT)."""
        if self.convolutional(x_dim):
            return self.conv_net("E", z_dim, out_act=out_act or self.encoder_out)
        return BiGANEncoder(x_dim, z_dim, out_act=out_act or self.encoder_out, **self.kw)

    def gaussian_encoder(self, x_dim: int, z_dim: int) -> GaussianEncoder:
        """E: x -> a diagonal Gaussian over codes (GaussianEncoder on an encoder of 2 z_dim linear outputs)."""
        return GaussianEncoder(self.encoder(x_dim, 2 * z_dim, out_act="linear"), z_dim)

    def discriminator(self, x_dim: int) -> torch.nn.Module:
        """D: x (N, x_dim) -> one logit per row (N,); D.features(x) its last hidden layer (for the conv D: its last
        conv layer, flattened)."""
        if self.convolutional(x_dim):
            return self.conv_net("D")
        return GANDiscriminator(x_dim, **self.kw)

    def joint_discriminator(self, x_dim: int, z_dim: int) -> torch.nn.Module:
        """A BiGAN's D(x, z) -> one logit per row (N,): z injected at every layer of the MLP; in the conv D, z meets
        the conv features in one joint hidden layer (DCGANDiscriminator's joint mode)."""
        if self.convolutional(x_dim):
            return self.conv_net("D", z_dim)
        return BiGANDiscriminator(x_dim, z_dim, **self.kw)

    def convolutional(self, x_dim: int) -> bool:
        """Whether the net on the data side of width x_dim is a conv net (cfg.arch 'dcgan', x_dim the data's)."""
        return self.image is not None and x_dim == self.split.dim

    def conv_net(self, kind: str, z_dim: int | None = None, out_act: str | None = None,
                 batch_norm: bool | None = None) -> torch.nn.Module:
        """A DCGAN-style net (fastgan.nn.dcgan, width self.base) on the data's flat image rows (FlatImageAdapter:
        padded to S x S with -1, G's output cropped back): kind 'G' z (N, z_dim) -> rows, 'E' rows -> (N, z_dim),
        'D' rows -> logits (z_dim given: a joint D(x, z)), 'features' rows -> the conv trunk's features.
        out_act: G's (default tanh) or E's (default linear); batch_norm: None = the run's (cfg.batch_norm; on for
        images by default), False for a critic that must be batch-norm-free."""
        if self.image is None:
            raise ValueError(f"arch: conv nets need arch 'dcgan' on image data, got arch {self.cfg.arch!r}")
        (c, _, _), size = self.image
        kw = {**self.conv_kw, **({} if batch_norm is None else {"batch_norm": bool(batch_norm)})}
        if kind == "G":
            net = DCGANGenerator(z_dim, c, size, out_act=out_act or "tanh", **kw)
        elif kind == "E":
            net = DCGANEncoder(c, size, z_dim, out_act=out_act or "linear", **kw)
        elif kind == "D":
            net = DCGANDiscriminator(c, size, z_dim=z_dim, **kw)
        elif kind == "features":
            net = DCGANFeatures(c, size, **kw)
        else:
            raise ValueError(f"kind: expected 'G', 'E', 'D' or 'features', got {kind!r}")
        return FlatImageAdapter(net, self.split.image_shape)

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

    def latent(self, ctx: StepContext, n: int, gen: torch.Generator) -> torch.Tensor:
        """z ~ U(-1, 1)^z_dim (the paper's latent for permutation-invariant MNIST) for a training step. Under
        torch.distributed: this rank's slice (ctx.shard) of the global batch's draw (the same draw on every rank), as
        a one-process run would see it."""
        return self._uniform(n, self.cfg.z_dim, gen, ctx.shard) * 2 - 1

    def prior(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n draws of z ~ U(-1, 1)^z_dim outside a training step (evaluation): the whole draw, on any rank."""
        return self._uniform(n, self.cfg.z_dim, gen, (0, 1)) * 2 - 1

    def uniform(self, ctx: StepContext, n: int, dim: int, gen: torch.Generator) -> torch.Tensor:
        """U(0, 1) of shape (n, dim): under torch.distributed this rank's slice of the global batch's draw."""
        return self._uniform(n, dim, gen, ctx.shard)

    def normal(self, ctx: StepContext, n: int, dim: int, gen: torch.Generator) -> torch.Tensor:
        """N(0, 1) of shape (n, dim): under torch.distributed this rank's slice of the global batch's draw."""
        return self._normal(n, dim, gen, ctx.shard)

    def _normal(self, n: int, dim: int, gen: torch.Generator, shard: tuple[int, int]) -> torch.Tensor:
        rank, size = shard
        e = torch.randn(n * size, dim, generator=gen, device=self.device)
        return e[rank * n:(rank + 1) * n] if size > 1 else e

    def _uniform(self, n: int, dim: int, gen: torch.Generator, shard: tuple[int, int]) -> torch.Tensor:
        rank, size = shard
        u = torch.rand(n * size, dim, generator=gen, device=self.device)
        return u[rank * n:(rank + 1) * n] if size > 1 else u

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

    def train(self, mode: bool = True) -> None:
        for net in self.nets.values():
            net.train(mode)

    def step(self, ctx: StepContext, next_batch, gen) -> dict:
        """One training iteration; next_batch() -> a (B, D) batch on the device, gen: the latents' generator.
        Returns {name: detached scalar}."""
        raise NotImplementedError

    # ---- the discriminator's side of an adversarial recipe (D: cross-entropy on real vs fake inputs) ----
    def d_inputs(self, ctx: StepContext, x: torch.Tensor, gen: torch.Generator) -> tuple[tuple, tuple]:
        """D's real and fake inputs for the data batch x: ((x,), (G(z),)) for a GAN, ((x, E(x)), (G(z), z)) for a
        BiGAN."""
        raise NotImplementedError

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

    # ---- what evaluation reads (eval mode, no grad) ----
    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        return self.nets["G"](z)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor | None:
        """The learned representation of x for the 1NN protocol: E(x) (None if the model has no encoder)."""
        return self.nets["E"](x) if "E" in self.nets else None

    @torch.no_grad()
    def hidden_features(self, x: torch.Tensor) -> torch.Tensor | None:
        """E's last hidden layer, the input of its output layer: the representation of the BiGAN paper's Table 1 (its
        released code's NNC_e-, `f_encoder.feats(X)`); None for a model without an encoder E. Each encoder net
        family defines `features` once (the MLPs: fastgan.nn.bigan; the conv nets: fastgan.nn.dcgan's adapter; a
        Gaussian encoder: its net's)."""
        return self.nets["E"].features(x) if "E" in self.nets else None

    def evaluation(self, split, features, out) -> dict:
        """Metrics (and pictures into `out`, a Path or None) that only this recipe has, added to evaluate()'s
        results; `features(fn, x)` applies fn to x in chunks on the recipe's device (CPU results). Networks are in
        eval mode and gradients off while it runs."""
        return {}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor | None:
        return self.nets["G"](self.nets["E"](x)) if "E" in self.nets else None
