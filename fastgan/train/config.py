"""A training run's configuration: one flat dataclass of plain values (it goes into every checkpoint as a dict and
must come back from torch.load(weights_only=True)), with the BiGAN paper's defaults (appendix C).

Values only: what each recipe trains with by default and what it requires of a configuration live with the recipes
(fastgan.train.recipes: config_for, validate), which this module does not import. Why each default value:
docs/defaults.md."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..backend import IMPLS

__all__ = ["ARCHS", "BACKENDS", "PRECISIONS", "TrainConfig", "lr_factor"]

# A run's backend, in the ops' vocabulary (fastgan.backend.IMPLS): the fused nets, every fastgan op of the run (the
# nets', the losses', the evaluation's) on 'auto' (the automatic kernel choice), 'reference', 'cpp', 'triton' or
# 'cuda' -- the recipe enters fastgan.use_backend(...) for its steps and its evaluation; plus 'eager': the nets' eager
# twins (plain torch ops, the same parameters) and the ops outside the nets on their pure-PyTorch reference, the
# like-for-like baseline
BACKENDS = (*IMPLS, "eager")
# names a saved config may carry from before (checkpoints, config files): the name each now has
FORMER_BACKENDS = {"fastgan": "auto"}
# the networks on the data side: the paper's MLPs, or DCGAN-style conv nets (images only; recipes/nets.py)
ARCHS = ("mlp", "dcgan")
# the training step's arithmetic: fp32; bf16 / fp16 autocast (GEMMs in half precision with fp32 accumulation, fastgan's
# pointwise ops in fp32 inside, parameters and optimiser states fp32); fp16 with one dynamic GradScaler
# 'auto': bf16 where the device has bf16 matrix units, else fp32 (train/precision.py; resolved when a Trainer is built)
PRECISIONS = ("fp32", "bf16", "fp16", "auto")

# fields that may differ between a run and its resumption (they do not change the trajectory)
RUNTIME_FIELDS = ("out", "ckpt_every", "log_every", "progress", "eval_at_end", "device", "precision_auto")


@dataclass
class TrainConfig:
    model: str = "bigan"            # a recipe name: fastgan.train.RECIPES
    data: str = "digits"            # fastgan.data.load spec: digits | mnist:PATH | gmm8 | gmm25
    steps: int | None = None        # training iterations (one update of every network each); or:
    epochs: int | None = None       # passes over the training split (steps = epochs * batches per epoch)
    batch_size: int = 128
    optimizer: str = "adam"         # adam | rmsprop (WGAN's)
    lr: float = 2e-4                # Adam, beta = (0.5, 0.999)
    beta1: float = 0.5
    beta2: float = 0.999
    final_lr: float = 2e-6          # exponential decay from lr to final_lr ...
    decay_start: float = 0.5        # ... starting at this fraction of the run
    weight_decay: float = 2.5e-5    # l2, on multiplicative weights (matrices) only
    z_dim: int = 50                 # latent U(-1, 1)^z_dim
    hidden: int | None = None       # hidden width of every net (None: recipes.default_hidden)
    batch_norm: bool | None = None  # the paper's BN in hidden layer 2 (None: on for images, off for 2-D mixtures)
    arch: str = "mlp"               # mlp | dcgan (conv G / D / E on image data; width: hidden = their base)
    backend: str = "auto"           # BACKENDS: the ops' backend for the whole run, or 'eager'
    precision: str = "fp32"         # fp32 | bf16 (autocast) | fp16 (autocast + one GradScaler) | auto
    precision_auto: str = ""        # with 'auto': what it chose and why (set by the Trainer, which sets precision)
    g_loss: str = "ns"              # GAN generator: ns | minimax; BiGAN G/E: inverse | minimax (ns means inverse)
    # a moving average of G for samples and evaluation (fastgan.train.ema): its half-life in thousands of images
    # (StyleGAN2-ADA's ema_kimg; 0: off), at most ema_rampup x the images seen so far (0: no ramp-up)
    ema: float = 0.0
    ema_rampup: float = 0.05
    # alternating (default): n_critic D steps, then G (and E) from a fresh forward through the updated D (Goodfellow
    # et al.'s Algorithm 1); simultaneous: D, G, E all updated from one forward (cheaper; why not the default:
    # docs/defaults.md)
    update: str = "alternating"
    n_critic: int = 1               # alternating: D updates per generator update
    seed: int = 0
    device: str = "cpu"
    out: str | None = None          # run directory: checkpoint.pt, metrics.jsonl, PNGs, results.json
    ckpt_every: int = 500           # steps between checkpoints (and one at the end)
    log_every: int = 50             # steps between metrics lines
    progress: bool = True           # tqdm bar
    eval_at_end: bool = True
    extra: dict = field(default_factory=dict)  # recipe options (e.g. table-1 baselines' regression weight)

    def validate(self) -> "TrainConfig":
        """The values' own checks (types, ranges, names); fastgan.train.recipes.validate checks what the model's recipe
        requires of them, then calls this."""

        def positive(name, v, allow_none=False):
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")

        if (self.steps is None) == (self.epochs is None):
            raise ValueError("steps / epochs: give exactly one of them")
        positive("steps", self.steps, True), positive("epochs", self.epochs, True)
        positive("batch_size", self.batch_size), positive("z_dim", self.z_dim), positive("hidden", self.hidden, True)
        positive("n_critic", self.n_critic), positive("ckpt_every", self.ckpt_every)
        positive("log_every", self.log_every)
        for name in ("lr", "final_lr"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a positive number, got {v!r}")
        if self.final_lr > self.lr:
            raise ValueError(f"final_lr: expected <= lr ({self.lr}), got {self.final_lr} (the schedule decays)")
        if not 0 <= self.decay_start <= 1:
            raise ValueError(f"decay_start: expected a fraction in [0, 1], got {self.decay_start!r}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"beta1 / beta2: expected values in [0, 1), got {self.beta1}, {self.beta2}")
        for name, what in (("ema", "--ema: G's EMA half-life in kimg, 0 = off"),
                           ("ema_rampup", "--ema-rampup: 0 = no ramp-up")):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name}: expected a finite number >= 0 ({what}), got {v!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay: expected >= 0, got {self.weight_decay!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"arch: expected one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.backend not in BACKENDS:
            renamed = FORMER_BACKENDS.get(self.backend) if isinstance(self.backend, str) else None
            raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {self.backend!r}"
                             + (f" (its name is now {renamed!r})" if renamed else ""))
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.update not in ("simultaneous", "alternating"):
            raise ValueError(f"update: expected 'simultaneous' or 'alternating', got {self.update!r}")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"optimizer: expected 'adam' or 'rmsprop', got {self.optimizer!r}")
        if self.update == "simultaneous" and self.n_critic != 1:
            raise ValueError("n_critic: more than one critic step per iteration needs update='alternating'")
        if self.g_loss not in ("ns", "minimax", "inverse"):
            raise ValueError(f"g_loss: expected 'ns', 'minimax' or 'inverse', got {self.g_loss!r}")
        if not isinstance(self.extra, dict):
            raise TypeError(f"extra: expected a dict, got {type(self.extra).__name__}")
        return self

    @classmethod
    def with_defaults(cls, model: str, base: dict, **overrides) -> "TrainConfig":
        """`model`'s configuration: the fields `base` (a recipe's defaults) with `overrides` on top. None values are
        not overrides; an `extra` dict is merged key by key; steps or epochs given replace base's steps."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        base = dict(base)
        if "epochs" in overrides or "steps" in overrides:
            base.pop("steps", None)
        if "extra" in overrides:
            if not isinstance(overrides["extra"], dict):
                raise TypeError(f"extra: expected a dict, got {type(overrides['extra']).__name__}")
            overrides["extra"] = {**base.get("extra", {}), **overrides["extra"]}
        return cls(model=model, **{**base, **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"config: unknown fields {sorted(unknown)}")
        if isinstance(d.get("backend"), str) and d["backend"] in FORMER_BACKENDS:  # a config saved before the rename
            d = {**d, "backend": FORMER_BACKENDS[d["backend"]]}
        return cls(**d)

    def trajectory_diff(self, other: "TrainConfig") -> dict:
        """{field: (self's, other's)} for the fields that change the training trajectory and differ."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if k not in RUNTIME_FIELDS and a[k] != b[k]}


def lr_factor(step: int, total: int, lr: float, final_lr: float, decay_start: float) -> float:
    """The learning-rate multiplier at `step` (0-based) of `total`: 1 until decay_start * total, then exponential
    decay that reaches final_lr / lr at the last step (total - 1)."""
    start = int(decay_start * total)
    if step < start or total - 1 - start <= 0:
        return 1.0
    frac = min(1.0, (step - start) / (total - 1 - start))
    return (final_lr / lr) ** frac
