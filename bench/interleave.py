"""Interleaved timing of training iterations: arms (Trainers) take blocks of iterations in turn (A, B, C, A, ...), so a
change in the machine's load touches every arm alike (this VM drifts 10-20 % between runs). Used by bench/lazy_r1.py
and bench/ab_steps.py.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable, Mapping

import torch


def one_iteration(trainer, autocast=None) -> Callable[[], None]:
    """One training iteration of `trainer` as its loop runs it (the step context, autocast when given)."""
    from fastgan.train.recipes import StepContext

    def run():
        ctx = StepContext(opts=trainer.opts, scaler=trainer.scaler, step=trainer.step)
        with autocast if autocast is not None else contextlib.nullcontext():
            trainer.recipe.step(ctx, trainer.next_batch, trainer.gen)
        trainer.step += 1
    return run


def interleaved(arms: Mapping[str, Callable[[], None]], steps: int, block: int) -> dict[str, list[float]]:
    """{arm: seconds per iteration of each block}: every arm runs `steps` iterations in blocks of `block`, the arms
    in turn, after one warm-up block each (not counted)."""
    times = {name: [] for name in arms}
    rounds = -(-steps // block) + 1  # + the warm-up block
    for r in range(rounds):
        for name, run in arms.items():
            t0 = time.perf_counter()
            for _ in range(block):
                run()
            dt = (time.perf_counter() - t0) / block
            if r:
                times[name].append(dt)
    return times


def table(times: Mapping[str, list[float]], baseline: str | None = None) -> str:
    """A Markdown table of the arms' ms per iteration (median, mean, min, max of the blocks; vs the baseline arm's
    median: its time / the arm's, > 1 faster)."""
    head = "| arm | ms / iteration, median of blocks | mean | min | max |"
    head += f" {baseline} / arm |" if baseline else ""
    rows = [head, "|---" * (5 + bool(baseline)) + "|"]
    base = statistics.median(times[baseline]) if baseline else None
    for name, ts in times.items():
        ms = [1e3 * x for x in ts]
        row = f"| {name} | {statistics.median(ms):.1f} | {statistics.mean(ms):.1f} | {min(ms):.1f} | {max(ms):.1f} |"
        if base:
            row += f" {base / statistics.median(ts):.3f}x |"
        rows.append(row)
    return "\n".join(rows)


def threads_note(steps: int, block: int) -> str:
    return (f"{torch.get_num_threads()} threads, blocks of {block} iterations interleaved, "
            f"{-(-steps // block)} blocks per arm after one warm-up block")
