"""The training loop: one per run, for every recipe.

    cfg = TrainConfig(model="bigan", data="digits", steps=3000, out="runs/bigan")
    results = Trainer(cfg).run()            # trains, checkpoints, logs, evaluates; results also in out/results.json
    Trainer(cfg, resume=True).run()         # continues out/checkpoint.pt on the same trajectory

Determinism: cfg.seed seeds the networks' initialisation (torch's global RNG, once, before building them), the
minibatch order (data.BatchSampler, its own generator) and the latents (the trainer's own generator); nothing else
draws random numbers. On the CPU two runs with the same configuration give bit-identical parameters, and a run
resumed from a checkpoint continues bit-identically (the checkpoint holds every state that the next step reads).

Run directory (cfg.out): checkpoint.pt (every ckpt_every steps and at the end, atomically), metrics.jsonl (one line
per log_every steps: the step, the losses averaged since the previous line, the learning rate, and under "time" the
wall-clock figures — the only fields that differ between identical runs), config.json, results.json, and the PNGs
of fastgan.train.evaluation, and curves.png (every logged quantity against the step: losses, D's accuracy on real and
fake; redrawn from metrics.jsonl at the end of every run; `fastgan plot RUN_DIR` redraws it).

Non-finite values (issue 31): the losses averaged for a metrics line are checked when the line is written (the
logging interval's host sync, none added per step), the parameters and the partial sums before every checkpoint. A
non-finite one in an fp32 / bf16 run stops it with NonFiniteError (a RuntimeError naming the step and the values)
before anything overwrites the checkpoint: checkpoint.pt keeps the last finite state. The line is still written,
non-finite numbers as null and their names under "non_finite" (metrics.jsonl stays JSON). fp16 runs keep the
GradScaler's rule (an overflowing step is skipped, the scale lowered): their losses are not checked, their parameters
are.

cfg.ema > 0: a moving average of G (fastgan.train.ema.EMA, self.ema) is updated after every iteration, saved in the
checkpoint, and is the G that evaluation samples from (samples.png, FD, MMD^2, reconstructions).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import torch

from .. import data as data_mod
from .. import metrics as ev
from . import checkpoint as ckpt
from . import precision as precision_mod
from .config import TrainConfig, lr_factor
from .distributed import all_reduce_mean_, convert_batch_norm, world
from .ema import EMA
from .evaluation import evaluate
from .recipes import RECIPES, StepContext
from .recipes import validate as validate_config

__all__ = ["NonFiniteError", "Trainer", "make_optimizers"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


class NonFiniteError(RuntimeError):
    """A training run met a NaN or an infinity in its losses or parameters and stopped before saving it."""


def _json_safe(obj):
    """obj with every non-finite float replaced by None (JSON has no NaN / Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def make_optimizers(recipe, cfg) -> dict:
    """One optimiser per recipe group (Adam, or RMSProp with cfg.optimizer='rmsprop'): l2 weight decay on the
    multiplicative weights (matrices) only; a net with a learning-rate scale (recipe.lr_scales(): net name -> factor)
    gets param groups of its own at that factor times the schedule's rate; torch's fused implementation (one kernel
    over all of a group's tensors; CPU and CUDA; measured: docs/defaults.md)."""
    opts, scales = {}, recipe.lr_scales()
    for group in recipe.groups:
        by_scale: dict[float, list] = {}  # the group's nets by learning-rate scale (recipe.lr_scales), in order
        for net in recipe.groups[group]:
            by_scale.setdefault(float(scales.get(net, 1.0)), []).extend(recipe.nets[net].parameters())
        param_groups = []
        for scale, params in by_scale.items():
            tag = {} if scale == 1.0 else {"lr": cfg.lr * scale, "lr_scale": scale}  # _set_lr reads lr_scale
            matrices = [p for p in params if p.dim() >= 2]
            others = [p for p in params if p.dim() < 2]
            param_groups.append({"params": matrices, "weight_decay": cfg.weight_decay, **tag})
            if others:
                param_groups.append({"params": others, "weight_decay": 0.0, **tag})
        if cfg.optimizer == "rmsprop":
            opts[group] = torch.optim.RMSprop(param_groups, lr=cfg.lr)
        else:
            opts[group] = torch.optim.Adam(param_groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                           fused=recipe.device.type in ("cpu", "cuda"))
    return opts


class Trainer:
    def __init__(self, cfg: TrainConfig, split=None, resume: bool = False):
        if not isinstance(cfg, TrainConfig):
            raise TypeError(f"cfg: expected a TrainConfig, got {type(cfg).__name__}")
        self.cfg = validate_config(cfg)  # what its recipe requires of it, then its values (recipes.validate)
        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device: {cfg.device!r} requested but CUDA is not available")
        if cfg.precision == "auto":  # chosen once, here: the config then records the precision that runs
            chosen, why = precision_mod.resolve(cfg.precision, cfg.device)
            cfg = self.cfg = dataclasses.replace(cfg, precision=chosen, precision_auto=why)
        self.device = torch.device(cfg.device)
        self.split = split if split is not None else data_mod.load(cfg.data, seed=cfg.seed)
        torch.manual_seed(cfg.seed)
        self.recipe = RECIPES[cfg.model](cfg, self.split, self.device)
        self.rank, self.world_size = world()
        if self.world_size > 1:
            if cfg.batch_size % self.world_size:
                raise ValueError(f"batch_size: {cfg.batch_size} is not divisible by the world size "
                                 f"{self.world_size} (each rank takes an equal slice of the global batch)")
            for net in self.recipe.nets.values():
                convert_batch_norm(net)
        self.ema = None
        if cfg.ema > 0:
            if "G" not in self.recipe.nets:
                raise ValueError(f"ema: the {cfg.model!r} recipe has no generator G to average")
            self.ema = EMA(self.recipe.nets["G"], cfg.ema * 1000, cfg.ema_rampup, cfg.batch_size)
        self.train_x = self.split.train_x.to(self.device)
        self.sampler = data_mod.BatchSampler(self.train_x.shape[0], cfg.batch_size, seed=cfg.seed)
        if cfg.steps is not None:
            self.total = cfg.steps
        else:  # an alternating iteration reads n_critic batches
            per_iter = cfg.n_critic if cfg.update == "alternating" else 1
            self.total = max(1, -(-cfg.epochs * self.sampler.steps_per_epoch // per_iter))
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.opts = make_optimizers(self.recipe, cfg)
        self.scaler = torch.amp.GradScaler(self.device.type) if cfg.precision == "fp16" else None
        self.step = 0
        self.metrics_pos = 0
        self._saved_step = None  # the step of the checkpoint on disk (None: none written or resumed)
        self._sums, self._count = {}, 0  # the losses summed since the last metrics line
        self.out = Path(cfg.out) if cfg.out else None
        if self.out is not None and self.out.exists() and not self.out.is_dir():
            raise ValueError(f"out: {self.out} exists and is not a directory (a run directory is expected)")
        if resume:
            if self.out is None:
                raise ValueError("resume: needs the run directory (cfg.out)")
            self._resume()
        elif self.out is not None and (self.out / CHECKPOINT).exists():
            raise ValueError(f"out: {self.out} already holds a run ({CHECKPOINT}); resume it (--resume) or choose "
                             f"another directory")

    def context(self) -> StepContext:
        """What the recipe's step (and end_iteration) is handed every iteration: this run's optimisers, fp16
        GradScaler, (rank, world size) and the iteration's index (self.step)."""
        return StepContext(opts=self.opts, scaler=self.scaler, shard=(self.rank, self.world_size), step=self.step)

    # ---- checkpoints ----
    def state(self) -> dict:
        return {"format": ckpt.FORMAT, "config": self.cfg.to_dict(), "step": self.step,
                "nets": {k: v.state_dict() for k, v in self.recipe.nets.items()},
                "opts": {k: v.state_dict() for k, v in self.opts.items()},
                "sampler": self.sampler.state_dict(), "latent_rng": self.gen.get_state(),
                "torch_rng": torch.get_rng_state(), "metrics_pos": self.metrics_pos,
                "metrics_acc": {"count": self._count, "sums": {k: torch.as_tensor(v).cpu() for k, v in
                                                               self._sums.items()}},
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "ema": self.ema.state_dict() if self.ema is not None else None}

    def save(self) -> None:
        if self.world_size > 1:  # the partial metric sums as the mean over ranks (the next line's mean is the same)
            self._reduce_sums()
        self._check_finite()
        self._on_rank0(lambda: ckpt.save(self.out / CHECKPOINT, self.state()), "write the checkpoint")
        self._saved_step = self.step

    def _stop_non_finite(self, what: str) -> None:
        where = (f"{self.out / CHECKPOINT} keeps step {self._saved_step}, the last finite state"
                 if self.out is not None and self._saved_step is not None else "no checkpoint was written")
        raise NonFiniteError(f"step {self.step}: {what}; the run stops ({where}). A diverging run: lower the "
                             f"learning rate (--lr, now {self.cfg.lr:g}) or try another precision")

    def _check_finite(self) -> None:
        """Before a checkpoint: the parameters of every net and the loss sums since the last line are finite (one
        device-side reduction, one host sync: what the checkpoint's copy to the host costs anyway)."""
        tensors = {f"{name} parameters": [p.detach() for p in net.parameters()]
                   for name, net in self.recipe.nets.items()}
        if self.scaler is None:
            tensors["losses"] = [v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                                 for v in self._sums.values()]
        names = [k for k, ts in tensors.items() if ts]
        flags = torch.stack([torch.stack([t.isfinite().all().to(self.device) for t in tensors[k]]).all()
                             for k in names]).cpu()
        bad = [k for k, ok in zip(names, flags.tolist()) if not ok]
        if bad:
            self._stop_non_finite(f"non-finite values in {', '.join(bad)} before the checkpoint")

    def _on_rank0(self, fn, what: str) -> None:
        """fn() on rank 0 (the run directory's only writer); under torch.distributed every rank learns whether it
        failed and raises too, instead of waiting forever in the next collective."""
        err = None
        if self.rank == 0:
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - re-raised below, after the other ranks know
                err = e
        if self.world_size > 1:
            import torch.distributed as dist

            flag = torch.tensor([0.0 if err is None else 1.0], device=self.device)
            dist.all_reduce(flag)
            if err is None and flag.item():
                raise RuntimeError(f"rank 0 failed to {what}; rank {self.rank} stops too (see rank 0's error)")
        if err is not None:
            raise err

    def _reduce_sums(self) -> None:
        keys = sorted(self._sums)
        if keys:
            vals = torch.stack([torch.as_tensor(self._sums[k], dtype=torch.float64, device=self.device)
                                for k in keys])
            all_reduce_mean_([vals])
            self._sums = dict(zip(keys, vals.unbind()))

    def _resume(self) -> None:
        path = self.out / CHECKPOINT
        state = ckpt.load(path)
        try:
            saved = TrainConfig.from_dict(state["config"])
        except (TypeError, ValueError) as e:
            raise RuntimeError(f"checkpoint {path}: unreadable configuration: {e}") from e
        diff = saved.trajectory_diff(self.cfg)
        if diff:
            raise ValueError(f"resume: checkpoint {path} was written by another configuration; differing fields "
                             f"(checkpoint, now): {diff}")
        ckpt.check_compatible(state, self.recipe.nets, self.opts, path,
                              ema=None if self.ema is None else self.ema.module)
        sampler = data_mod.BatchSampler(self.train_x.shape[0], self.cfg.batch_size, seed=self.cfg.seed)
        sampler.load_state_dict(state["sampler"])  # validates before anything below changes
        step = state["step"]
        if not isinstance(step, int) or not 0 <= step <= self.total:
            raise ValueError(f"checkpoint {path}: step {step!r} outside the run's 0..{self.total}")
        acc = state.get("metrics_acc") or {"count": 0, "sums": {}}
        pos = state["metrics_pos"]
        ok = (isinstance(pos, int) and pos >= 0 and isinstance(acc.get("count"), int)
              and isinstance(acc.get("sums"), dict) and all(isinstance(v, torch.Tensor) for v in acc["sums"].values())
              and all(isinstance(state[k], torch.Tensor) and state[k].dtype == torch.uint8
                      for k in ("latent_rng", "torch_rng")))
        if not ok:
            raise ValueError(f"checkpoint {path}: malformed RNG states or metrics position")
        scaler = state.get("scaler")
        if (scaler is None) != (self.scaler is None) or (scaler is not None and not isinstance(scaler, dict)):
            raise ValueError(f"checkpoint {path}: its GradScaler state ({type(scaler).__name__}) does not fit "
                             f"precision={self.cfg.precision!r}")
        for k, net in self.recipe.nets.items():
            net.load_state_dict(state["nets"][k])
        for k, opt in self.opts.items():
            opt.load_state_dict(state["opts"][k])
        if self.scaler is not None:
            self.scaler.load_state_dict(scaler)
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.sampler = sampler
        self.gen.set_state(state["latent_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.metrics_pos, self._saved_step = step, pos, step
        self._count = int(acc["count"])
        self._sums = {k: v.to(self.device) for k, v in acc["sums"].items()}

    # ---- the loop ----
    def _set_lr(self) -> float:
        c = self.cfg
        lr = c.lr * lr_factor(self.step, self.total, c.lr, c.final_lr, c.decay_start)
        for opt in self.opts.values():
            for g in opt.param_groups:
                g["lr"] = lr * g["lr_scale"] if "lr_scale" in g else lr
        return lr

    def _metrics_file(self):
        if self.out is None or self.rank != 0:
            return None
        self.out.mkdir(parents=True, exist_ok=True)
        for stale in self.out.glob(f".{CHECKPOINT}.tmp*"):  # a checkpoint write killed before its rename
            stale.unlink()
        (self.out / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n")
        path = self.out / METRICS
        f = open(path, "a+b")
        try:
            size = f.seek(0, os.SEEK_END)
            if size < self.metrics_pos:
                raise RuntimeError(f"resume: {path} is shorter ({size} bytes) than at the checkpoint "
                                   f"({self.metrics_pos} bytes)")
            f.truncate(self.metrics_pos)  # lines written after the checkpoint are written again
        except BaseException:
            f.close()
            raise
        return f

    def _write_line(self, log, line: dict) -> None:
        if log is not None:
            try:
                log.write((json.dumps(_json_safe(line), allow_nan=False) + "\n").encode())
                log.flush()
            except OSError as e:
                raise ckpt.write_error(f"{self.out / METRICS}: cannot write the metrics line of step {self.step}", e,
                                       f"{CHECKPOINT} keeps step {self._saved_step}") from e
            self.metrics_pos = log.tell()

    def next_batch(self) -> torch.Tensor:
        """The next training batch (this rank's slice of the global batch), on the device. The sampler's indices
        travel through pinned memory without blocking: no host sync in a training step."""
        idx = self.sampler.next()
        if self.world_size > 1:
            idx = idx.view(self.world_size, -1)[self.rank]
        if self.device.type == "cuda":
            idx = idx.pin_memory().to(self.device, non_blocking=True)
        return self.train_x[idx.to(self.device)]

    def run(self) -> dict:
        from tqdm import tqdm

        cfg, recipe = self.cfg, self.recipe
        opened = []  # rank 0 opens the metrics file; every rank learns if that failed
        if self.out is not None:
            self._on_rank0(lambda: opened.append(self._metrics_file()), "open the metrics file")
        log = opened[0] if opened else None
        recipe.train(True)
        device, size = self.device, self.world_size
        next_batch = self.next_batch

        # mixed precision: the whole iteration (forward passes, losses, gradients) under autocast; the optimiser steps
        # update the fp32 parameters
        half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        autocast = torch.autocast(device.type, dtype=half, enabled=half is not None)
        start_step, t0 = self.step, time.perf_counter()
        t_last, step_last = t0, self.step
        bar = tqdm(total=self.total, initial=self.step, disable=not cfg.progress or self.rank != 0, unit="step",
                   dynamic_ncols=True,
                   desc=f"{cfg.model} {cfg.data} {cfg.backend}")
        try:
            while self.step < self.total:
                lr = self._set_lr()
                ctx = self.context()
                with autocast:
                    values = recipe.step(ctx, next_batch, self.gen)
                recipe.end_iteration(ctx)
                for k, v in values.items():
                    self._sums[k] = self._sums.get(k, 0.0) + v
                self._count += 1
                self.step += 1
                if self.ema is not None:  # after the iteration's G step (fastgan.train.ema)
                    self.ema.update(recipe.nets["G"], self.step)
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == self.total:
                    if size > 1:  # averaged across ranks (every rank logs at the same steps)
                        self._reduce_sums()
                    means = {k: float(v) / self._count for k, v in self._sums.items()}
                    now = time.perf_counter()
                    rate = (self.step - step_last) / max(now - t_last, 1e-9)
                    if self.scaler is not None:  # the scale now (get_scale syncs a GPU: once per line, not per step)
                        means["loss_scale"] = float(self.scaler.get_scale())
                    bad = [k for k, v in means.items() if not math.isfinite(v)]
                    line = {"step": self.step, **means, "lr": lr,
                            "time": {"elapsed_s": now - t0, "steps_per_s": rate}}
                    if bad:
                        line["non_finite"] = bad
                    bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()}, refresh=False)
                    if self.out is not None:  # the same on every rank
                        self._on_rank0(lambda: self._write_line(log, line), "write the metrics line")
                    if bad and self.scaler is None:  # fp16: the GradScaler skips overflowing steps
                        self._stop_non_finite("non-finite " + ", ".join(f"{k} = {means[k]}" for k in bad)
                                              + f" (the mean over steps {step_last + 1}-{self.step})")
                    self._sums, self._count, t_last, step_last = {}, 0, now, self.step
                if self.out is not None and (self.step % cfg.ckpt_every == 0 or self.step == self.total):
                    self.save()
        finally:
            bar.close()
            if log is not None:
                log.close()
        elapsed = time.perf_counter() - t0
        steps_done = self.step - start_step
        results = {"model": cfg.model, "data": cfg.data, "backend": cfg.backend, "steps": self.total, "ema": cfg.ema,
                   "train_time_s": elapsed,
                   "steps_per_s": steps_done / elapsed if steps_done else None,
                   "samples_per_s": steps_done * cfg.batch_size * cfg.n_critic / elapsed if steps_done else None}
        if cfg.eval_at_end and self.rank == 0:

            results.update(evaluate(recipe, self.split, out=self.out, seed=cfg.seed, ema=self.ema))
        if self.out is not None and self.rank == 0:
            (self.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
            if (self.out / METRICS).is_file() and (self.out / METRICS).stat().st_size:
                ev.save_curves({cfg.model: ev.read_metrics(self.out / METRICS)}, self.out / "curves.png",
                               title=f"{cfg.model} on {cfg.data} ({cfg.backend}, seed {cfg.seed})")
        return results
