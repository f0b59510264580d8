"""The BiGAN paper's Table 1 on any labelled dataset: 1NN test accuracy in the feature space of six models trained
with the same networks, optimiser, schedule, data and seed (Donahue, Kraehenbuehl, Darrell 2017, sec. 4.1):

    BiGAN    E(x) of a BiGAN                          LR       E(x), E regressing z from a GAN's G(z)
    D        a GAN discriminator's last hidden layer   JLR      the same, the regression loss also training G
    AE (l2)  E(x) of an l2 autoencoder E -> G          AE (l1)  the same with the l1 loss
and, beside them under the same protocol, the encoder family (fastgan.train.recipes.autoencoding; codes of the same
z_dim, the prior N(0, I)):
    VAE      the posterior mean of a VAE                beta-VAE the same, KL weighted by beta (4)
    AAE      E(x) of an adversarial autoencoder         WAE-MMD  E(x) of a Wasserstein autoencoder, MMD penalty
    WAE-GAN  the same with a latent adversary
plus the 1NN accuracy on the raw inputs for reference. With several seeds every method is trained once per seed and
the table reports the mean and the (sample) standard deviation over seeds.

Two representations per encoder (issue 30): E's last hidden layer (`1nn_accuracy_hidden`, the headline column) is
the paper's: the authors' released code (jeffdonahue/bigan, train_gan.py) logs NNC_e (1NN in E(x)) and NNC_e- (in
`f_encoder.feats(X)`, the 1024-D input of E's output layer), and its permutation-invariant MNIST log at epoch 400
reads NNC_e 92.10 %, NNC_e- 97.35 % against Table 1's 97.39 %. E(x) (`1nn_accuracy`) is reported beside it; the D
row's one representation (D's last hidden layer) and the raw pixels stand in the headline column. Every method also
gets a random-init row: the same networks and seed, untrained (the weights its run starts from), evaluated alike -- a
learned representation that does not beat its own initialisation has learnt nothing this protocol sees.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

from .. import data as data_mod
from .. import metrics as ev
from .config import TrainConfig
from .evaluation import representation
from .recipes import RECIPES
from .recipes import validate as validate_config
from .trainer import Trainer

__all__ = ["METHODS", "PAPER_MNIST", "format_table", "run_table1"]

METHODS = (("BiGAN", "bigan"), ("D", "gan"), ("LR", "lr"), ("JLR", "jlr"), ("AE (l2)", "ae-l2"), ("AE (l1)", "ae-l1"),
           ("VAE", "vae"), ("beta-VAE", "beta-vae"), ("AAE", "aae"), ("WAE-MMD", "wae-mmd"), ("WAE-GAN", "wae-gan"))
# the paper's Table 1: 1NN accuracy (%) on full permutation-invariant MNIST (60k / 10k), one run each
PAPER_MNIST = {"BiGAN": 97.39, "D": 97.30, "LR": 97.44, "JLR": 97.13, "AE (l2)": 97.58, "AE (l1)": 97.63}
# the network whose features each method's 1NN accuracy reads (recipe.features): what the paper names
FEATURES = {"bigan": "E", "gan": "D", "lr": "E", "jlr": "E", "ae-l2": "E", "ae-l1": "E",
            **{m: "E" for m in ("vae", "beta-vae", "aae", "wae-mmd", "wae-gan")}}  # the VAEs' E(x): the mean

_SUMMARISED = ("1nn_accuracy_hidden", "1nn_accuracy", "fd", "classifier_score", "steps_per_s")
RANDOM_INIT = " (random init)"  # the suffix of a method's untrained row


def _seeds(seeds, cfg) -> tuple[int, ...]:
    seeds = (cfg.seed,) if seeds is None else tuple(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds: expected a non-empty sequence of non-negative ints, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: expected distinct seeds, got {seeds!r}")
    return seeds


def summarise(runs: list[dict]) -> dict:
    """The mean over runs of each summarised figure, its sample std (0 for one run), and the runs themselves."""
    row = {"runs": runs, "seeds": [r.get("seed") for r in runs]}
    for k in _SUMMARISED:
        vals = [r[k] for r in runs if r.get(k) is not None]
        if vals:
            row[k] = statistics.fmean(vals)
            row[f"{k}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return row


def _headline(model: str, res: dict) -> dict:
    """A run's figures with D's last hidden layer (the D row's representation) in the headline column."""
    if FEATURES[model] == "D" and "1nn_accuracy" in res:
        res = dict(res)
        res["1nn_accuracy_hidden"] = res.pop("1nn_accuracy")
    return res


def untrained(cfg: TrainConfig, split) -> dict:
    """The 1NN accuracies of cfg's networks as its run starts (the trainer's seeding and initialisation, no step),
    measured as a trained model's are (networks in eval mode)."""
    recipe = Trainer(dataclasses.replace(cfg, out=None), split=split).recipe
    recipe.train(False)
    try:
        return {**representation(recipe, split), "seed": cfg.seed}
    finally:
        recipe.train(True)


def run_table1(cfg: TrainConfig, methods=METHODS, split=None, seeds=None, resume: bool = False) -> dict:
    """Train each method with cfg (its model replaced) once per seed (default: cfg.seed alone); return
    {label: summary} (fastgan.train.table1.summarise: means, stds, per-seed results), each method followed by its
    random-init row (label + RANDOM_INIT), the raw inputs first; also writes table1.json under
    cfg.out (one sub-directory per method and seed: <model> for one seed, <model>-seed<S> for several).
    resume=True: a method's directory that holds a checkpoint is resumed (Trainer(resume=True): the same
    configuration is required; a finished run is only evaluated), so an interrupted table continues where it was.
    cfg.extra's options go to the methods that read them (R1 on the discriminators of bigan / gan / lr / jlr, not to
    the autoencoders, which have none)."""
    seeds = _seeds(seeds, cfg)
    split = split if split is not None else data_mod.load(cfg.data, seed=cfg.seed)
    if split.train_y is None:
        raise ValueError(f"data: the Table-1 protocol needs labels; {cfg.data!r} has none")

    def out(model, seed):
        if not cfg.out:
            return None
        return str(Path(cfg.out) / (model if len(seeds) == 1 else f"{model}-seed{seed}"))

    def method_cfg(model, s):
        extra = {k: v for k, v in cfg.extra.items() if k in RECIPES[model].known_options()}
        return validate_config(dataclasses.replace(cfg, model=model, seed=s, out=out(model, s), eval_at_end=True,
                                                   extra=extra))

    runs = {label: [method_cfg(model, s) for s in seeds] for label, model in methods}  # all validated up front
    rows = {"raw input": {"1nn_accuracy_hidden": ev.one_nn_accuracy(split.train_x, split.train_y, split.test_x,
                                                                     split.test_y)}}
    def train(c):
        again = resume and c.out is not None and (Path(c.out) / "checkpoint.pt").is_file()
        return {**Trainer(c, split=split, resume=again).run(), "seed": c.seed}

    for (label, model), cfgs in zip(methods, runs.values()):
        rows[label] = summarise([_headline(model, train(c)) for c in cfgs])
        rows[label + RANDOM_INIT] = summarise([_headline(model, untrained(c, split)) for c in cfgs])
    if cfg.out:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "table1.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def format_table(rows: dict, paper: dict | None = None) -> str:
    """The table as text: method, 1NN accuracy (%, mean +- std over seeds) in the last hidden layer (the paper's
    protocol) and in E(x), classifier FD, the training throughput, and the paper's figure where `paper` ({label: %})
    has one."""
    def cell(r, k, scale, fmt):
        if r.get(k) is None:
            return "-"
        std = r.get(f"{k}_std")
        n = len(r.get("runs", ())) or 1
        return format(scale * r[k], fmt) + (f" +- {format(scale * std, fmt)}" if n > 1 else "")

    head = (f"{'method':24s} {'1NN hidden layer %':>18s} {'1NN E(x) %':>16s} {'classifier FD':>17s} "
            f"{'steps/s':>8s}")
    lines = [head + (f" {'paper %':>8s}" if paper else "")]
    for label, r in rows.items():
        rate = r.get("steps_per_s")
        line = (f"{label:24s} {cell(r, '1nn_accuracy_hidden', 100, '.2f'):>18s} "
                f"{cell(r, '1nn_accuracy', 100, '.2f'):>16s} {cell(r, 'fd', 1, '.1f'):>17s} "
                f"{'-' if rate is None else format(rate, '8.1f'):>8s}")
        if paper:
            line += f" {paper[label] if label in paper else '-':>8}"
        lines.append(line)
    return "\n".join(lines)
