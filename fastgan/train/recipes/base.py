"""The recipe base class: what every model the trainer runs declares (nets, optimiser groups, options, defaults, the
checks it makes of a TrainConfig; docs/defaults.md: why each value) and the latent draws of a step. Its other jobs
live beside it: the net builders (nets.py: NetBuilder), the gradient plumbing with the step context (gradients.py:
Gradients, StepContext), a D's R1 penalty and the cross-entropy D's steps (discriminator.py: PenalisedD,
CrossEntropyD), the options' declarations (options.py)."""
from __future__ import annotations

import torch

from ...backend import use_backend
from ..config import ARCHS
from .gradients import Gradients, StepContext
from .nets import ENCODER_OUT, NetBuilder
from .options import Option, choice

DEFAULT_STEPS = 5000  # a run's length when neither the user nor the recipe's data_defaults set steps or epochs
# E's output activation, an option of the recipes with an encoder
ENCODER_OUT_OPTION = choice("encoder_out", ENCODER_OUT, ("linear", "tanh"),
                            "E's output activation: linear (the paper's) or tanh (codes in (-1, 1), the uniform "
                            "prior's support)")


class Recipe(NetBuilder, Gradients):
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
        for spec in cls.option_specs().values():
            spec.value(cfg.extra)
        if cfg.arch in ARCHS and cfg.arch not in cls.archs:  # an unknown arch: TrainConfig.validate's message
            raise ValueError(f"arch: the {cls.name!r} recipe takes arch {' or '.join(map(repr, cls.archs))}, not "
                             f"{cfg.arch!r}" + (f" ({cls.arch_note})" if cls.arch_note else ""))

    def __init__(self, cfg, split, device):
        self.check_config(cfg)
        self.cfg, self.split, self.device = cfg, split, torch.device(device)
        self._options = {name: spec.value(cfg.extra) for name, spec in self.option_specs().items()}
        self.set_up_nets(cfg, split, self._options.get("encoder_out", ENCODER_OUT))
        self.nets = {k: v.to(self.device) for k, v in self.build(split.dim, cfg.z_dim).items()}

    def build(self, x_dim: int, z_dim: int) -> dict:
        raise NotImplementedError

    def opt(self, name: str):
        """The value of option `name` in this run (checked when the recipe was made; its default when not set)."""
        return self._options[name]

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

    def train(self, mode: bool = True) -> None:
        for net in self.nets.values():
            net.train(mode)

    def step(self, ctx: StepContext, next_batch, gen) -> dict:
        """One training iteration (the recipe's `iteration`) with every fastgan op on this run's backend
        (self.backend, set once from cfg.backend: docs/design.md, "Backends"); next_batch() -> a (B, D) batch on the
        device, gen: the latents' generator. Returns {name: detached scalar}."""
        with use_backend(self.backend):
            return self.iteration(ctx, next_batch, gen)

    def iteration(self, ctx: StepContext, next_batch, gen) -> dict:
        """What a recipe defines: one training iteration (step() runs it in the run's backend scope)."""
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
