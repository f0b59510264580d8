"""Checkpoints: one file per run (checkpoint.pt), written atomically, read with torch.load(weights_only=True), and
checked whole before anything is loaded.

    {"format": FORMAT, "config": TrainConfig.to_dict(), "step": int,
     "nets": {name: state_dict}, "opts": {group: optimizer state_dict} (the learning rate is a function of the
     step: fastgan.train.config.lr_factor, so the schedule needs no state of its own),
     "sampler": BatchSampler.state_dict(), "latent_rng": the latent generator's state, "torch_rng": torch's CPU RNG,
     "metrics_pos": the byte length of metrics.jsonl at the checkpoint, "metrics_acc": the losses summed since its
     last line (count, sums), "scaler": GradScaler state or None, "ema": the state_dict of G's moving average
     (fastgan.train.ema) or None; a checkpoint without the key is one written before it existed: None}

Atomic: written to a temporary file in the same directory, flushed to disk, then os.replace'd over the old one, so a
run killed at any moment leaves either the previous checkpoint or the new one, never a torn file.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["FORMAT", "load", "save", "check_compatible", "write_error"]

FORMAT = "fastgan-checkpoint/1"
_KEYS = ("format", "config", "step", "nets", "opts", "sampler", "latent_rng", "torch_rng", "metrics_pos")


def write_error(what: str, cause: BaseException, intact: str) -> OSError:
    """The OSError of a failed write of a run's files: what failed, why (the OS's reason where there is one), what is
    left intact; its errno is the cause's (ENOSPC, EROFS, ...)."""
    why = cause.strerror if isinstance(cause, OSError) and cause.strerror else f"{type(cause).__name__}: {cause}"
    err = OSError(f"{what} ({why}); {intact}")
    err.errno = getattr(cause, "errno", None)
    return err


def save(path, state: dict) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # a full disk, a read-only directory (torch.save may wrap the OSError)
        raise write_error(f"checkpoint {path}: cannot write it", e,
                          "the previous checkpoint, if any, is untouched") from e
    finally:
        if tmp.exists():
            tmp.unlink()


def load(path) -> dict:
    """The checkpoint's dict; FileNotFoundError if missing, RuntimeError if unreadable or not a fastgan checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing here
        raise RuntimeError(f"checkpoint {path} cannot be read (corrupt or truncated?): {type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''}") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RuntimeError(f"checkpoint {path} is not a {FORMAT} checkpoint")
    missing = [k for k in _KEYS if k not in state]
    if missing:
        raise RuntimeError(f"checkpoint {path} is incomplete: missing {missing}")
    return state


def _check_state_dict(module, sd, name: str) -> list:
    own = module.state_dict()
    problems = []
    if set(own) != set(sd):
        problems.append(f"{name}: missing {sorted(set(own) - set(sd))}, unexpected {sorted(set(sd) - set(own))}")
    for k in set(own) & set(sd):
        a, b = own[k], sd[k]
        if not isinstance(b, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{name}.{k}: expected {tuple(a.shape)} {a.dtype}, got "
                            f"{tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__}"
                            f"{' ' + str(b.dtype) if isinstance(b, torch.Tensor) else ''}")
    return problems


def check_compatible(state: dict, nets: dict, opts: dict, path, ema=None) -> None:
    """Raise ValueError listing every mismatch between the checkpoint and the run's networks, optimisers and G's
    moving average `ema` (its module, or None when the run has none), before anything is loaded: never a half-loaded
    model."""
    problems = []
    saved_ema = state.get("ema")
    if ema is None and saved_ema is not None:
        problems.append("ema: the checkpoint holds a moving average of G, the run has none")
    elif ema is not None:
        if not isinstance(saved_ema, dict):
            problems.append(f"ema: the run averages G, the checkpoint holds no average ({type(saved_ema).__name__})")
        else:
            problems += _check_state_dict(ema, saved_ema, "ema")
    if set(state["nets"]) != set(nets):
        problems.append(f"networks: expected {sorted(nets)}, got {sorted(state['nets'])}")
    else:
        for name, net in nets.items():
            problems += _check_state_dict(net, state["nets"][name], name)
    if set(state["opts"]) != set(opts):
        problems.append(f"optimisers: expected {sorted(opts)}, got {sorted(state['opts'])}")
    else:
        for name, opt in opts.items():
            groups = state["opts"][name].get("param_groups", [])
            got = [len(g["params"]) for g in groups]
            want = [len(g["params"]) for g in opt.param_groups]
            if got != want:
                problems.append(f"optimiser {name}: parameter groups of sizes {got}, expected {want}")
    if problems:
        raise ValueError(f"checkpoint {path} does not match this run: " + "; ".join(problems))
