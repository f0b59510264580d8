"""The BiGAN paper's Table 1 on any labelled dataset: 1NN test accuracy in the feature space of six models trained
with the same networks, optimiser, schedule, data and seed (Donahue, Kraehenbuehl, Darrell 2017, sec. 4.1):

    BiGAN    E(x) of a BiGAN                          LR       E(x), E regressing z from a GAN's G(z)
    D        a GAN discriminator's last hidden layer   JLR      the same, the regression loss also training G
    AE (l2)  E(x) of an l2 autoencoder E -> G          AE (l1)  the same with the l1 loss
plus the 1NN accuracy on the raw inputs for reference.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .. import eval as ev
from .config import TrainConfig
from .trainer import Trainer

__all__ = ["METHODS", "format_table", "run_table1"]

METHODS = (("BiGAN", "bigan"), ("D", "gan"), ("LR", "lr"), ("JLR", "jlr"), ("AE (l2)", "ae-l2"), ("AE (l1)", "ae-l1"))


def run_table1(cfg: TrainConfig, methods=METHODS, split=None) -> dict:
    """Train each method with cfg (its model replaced), return {label: results}; also writes table1.json under
    cfg.out (one sub-directory per method)."""
    from .. import data as data_mod

    split = split if split is not None else data_mod.load(cfg.data, seed=cfg.seed)
    if split.train_y is None:
        raise ValueError(f"data: the Table-1 protocol needs labels; {cfg.data!r} has none")
    runs = {label: dataclasses.replace(cfg, model=model, out=str(Path(cfg.out) / model) if cfg.out else None,
                                       eval_at_end=True).validate() for label, model in methods}  # all, up front
    rows = {"raw input": {"1nn_accuracy": ev.one_nn_accuracy(split.train_x, split.train_y, split.test_x,
                                                              split.test_y)}}
    for label, run in runs.items():
        rows[label] = Trainer(run, split=split).run()
    if cfg.out:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "table1.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def format_table(rows: dict) -> str:
    """The table as text: method, 1NN accuracy (%), and the training throughput."""
    lines = [f"{'method':10s} {'1NN acc %':>9s} {'steps/s':>8s}"]
    for label, r in rows.items():
        acc = r.get("1nn_accuracy")
        rate = r.get("steps_per_s")
        lines.append(f"{label:10s} {'-' if acc is None else format(100 * acc, '9.2f'):>9s} "
                     f"{'-' if rate is None else format(rate, '8.1f'):>8s}")
    return "\n".join(lines)
