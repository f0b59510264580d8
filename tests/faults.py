"""The fault suite (issue 31), all of it: runs killed at random instants and resumed, then the pytest half.

    python -m tests.faults                         # all of it: >= 50 kill instants over gan, bigan, wgan-gp, vae,
                                                   # then tests/test_faults.py and tests/test_generated.py with
                                                   # 500 hypothesis examples per test (--examples)
    python -m tests.faults --kills-only            # the kill instants alone
    pytest tests/test_faults.py tests/test_generated.py   # what CI runs: 3 kill instants, 40 examples per test

A trial: `fastgan train MODEL` on gmm8 (tiny nets) in a subprocess whose checkpoint and metrics writers are slowed
(each write pauses half way: `python -m tests.faults --child`), SIGKILLed after a seeded random delay, then resumed
without interruption to the end. Its final checkpoint (every net's and optimiser's state, the GradScaler's, the
sampler's and the generators') and metrics.jsonl (less wall-clock times) must equal the uninterrupted run's bit for
bit, and after the kill the run directory must hold no file that fails to load (a temporary checkpoint left by a kill
inside the write is removed when the run resumes). Prints one line per (model, precision) and a total; exits 1 on any
difference.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

PAUSE_S = 0.03  # the pause inside each slowed metrics line
CKPT_PAUSE_S = 0.15  # and inside each checkpoint write (between the temporary file's bytes and its rename)


def _slow_writers() -> None:
    """In the child: every checkpoint write and metrics line pauses half way, so that kills land inside them."""
    from fastgan.train import checkpoint, trainer

    real_save = torch.save

    def slow_torch_save(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.flush()
        time.sleep(CKPT_PAUSE_S)  # the temporary file is written, not yet synced nor renamed

    class SlowFile:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            half = len(b) // 2
            self.f.write(b[:half])
            self.f.flush()
            time.sleep(PAUSE_S)  # half a line on disk
            return self.f.write(b[half:])

        def __getattr__(self, name):
            return getattr(self.f, name)

    checkpoint.torch.save = slow_torch_save
    real_line = trainer.Trainer._write_line
    trainer.Trainer._write_line = lambda self, log, line: real_line(self, None if log is None else SlowFile(log),
                                                                     line)


def _args(model: str, precision: str, out: Path, steps: int) -> list:
    return ["train", model, "--data", "gmm8", "--hidden", "16", "--z-dim", "4", "--batch-size", "32", "--steps",
            str(steps), "--ckpt-every", "10", "--log-every", "5", "--precision", precision, "--no-progress",
            "--no-eval", "--out", str(out)]


def _child_cmd(args: list) -> list:
    return [sys.executable, "-m", "tests.faults", "--child", *args]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def _final(run: Path) -> tuple:
    from fastgan.train import checkpoint as ckpt

    state = ckpt.load(run / "checkpoint.pt")
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        line.pop("time", None)
    return state, lines


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _loadable(run: Path) -> list:
    """The files of the run directory that fail to load (checkpoints: torch.load; JSON files; metrics lines but the
    last, which a kill may cut: the resume truncates it)."""
    from fastgan.train import checkpoint as ckpt

    bad = []
    for p in run.iterdir():
        try:
            if p.suffix == ".pt" or ".pt." in p.name:
                ckpt.load(p)
            elif p.suffix == ".json":
                json.loads(p.read_text())
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            bad.append(f"{p.name}: {type(e).__name__}")
    return bad


def _wait_for(path: Path, proc, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)


def kill_anywhere(model: str, precision: str, trials: int, seed: int, root: Path, steps: int = 60) -> dict:
    """Run `trials` killed-and-resumed runs against one uninterrupted run; returns the tallies."""
    root.mkdir(parents=True, exist_ok=True)
    ref = root / f"{model}-{precision}-ref"
    subprocess.run(_child_cmd(_args(model, precision, ref, steps)), check=True, env=_env(), capture_output=True)
    want = _final(ref)
    rng = random.Random(f"{seed}-{model}-{precision}")
    # how long the training part of a run takes (from config.json, written as the loop starts, to the exit), so that
    # the kill instants fall inside it rather than in Python's start-up
    timing = root / f"{model}-{precision}-timing"
    proc = subprocess.Popen(_child_cmd(_args(model, precision, timing, steps)), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(timing / "config.json", proc)
    t0 = time.monotonic()
    if proc.wait() != 0:
        raise RuntimeError(f"{model} {precision}: the timing run failed")
    horizon = time.monotonic() - t0
    tally = {"trials": 0, "identical": 0, "in_ckpt_write": 0, "in_metrics_write": 0, "before_first_ckpt": 0,
             "unloadable": []}
    for i in range(trials):
        run = root / f"{model}-{precision}-{i}"
        proc = subprocess.Popen(_child_cmd(_args(model, precision, run, steps)), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(run / "config.json", proc)
        time.sleep(rng.uniform(0.0, horizon))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tally["trials"] += 1
        if run.is_dir():
            tally["in_ckpt_write"] += any(p.name.startswith(".checkpoint.pt.tmp") for p in run.iterdir())
            m = run / "metrics.jsonl"
            tally["in_metrics_write"] += m.is_file() and m.stat().st_size > 0 and not m.read_bytes().endswith(b"\n")
        started = (run / "checkpoint.pt").is_file()
        tally["before_first_ckpt"] += not started
        cmd = _args(model, precision, run, steps)
        if started:
            cmd.append("--resume")
        elif run.is_dir():  # killed before its first checkpoint: nothing to resume, start again
            for p in run.iterdir():
                p.unlink()
        res = subprocess.run(_child_cmd(cmd), env=_env(), capture_output=True, text=True)
        if res.returncode != 0:
            tally["unloadable"].append(f"trial {i}: resume failed: {res.stderr.strip().splitlines()[-1:]}")
            continue
        tally["unloadable"] += [f"trial {i}: {b}" for b in _loadable(run)]
        got = _final(run)
        tally["identical"] += _equal(got[0]["nets"], want[0]["nets"]) and _equal(got[0]["opts"], want[0]["opts"]) \
            and _equal(got[0]["scaler"], want[0]["scaler"]) and _equal(got[0]["sampler"], want[0]["sampler"]) \
            and _equal(got[0]["latent_rng"], want[0]["latent_rng"]) and got[1] == want[1]
    return tally


CASES = (("gan", "fp32"), ("bigan", "fp32"), ("wgan-gp", "fp32"), ("vae", "fp32"), ("gan", "fp16"),
         ("bigan", "fp16"))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        _slow_writers()
        from fastgan.cli import main as cli

        return cli(argv[1:])
    p = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help="comma-separated; default: " + ", ".join(f"{m} {pr}"
                                                                                           for m, pr in CASES))
    p.add_argument("--precisions", default="fp32")
    p.add_argument("--trials", type=int, default=9, help="kill instants per (model, precision)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="runs/faults")
    p.add_argument("--kills-only", action="store_true", help="skip the pytest half")
    p.add_argument("--examples", type=int, default=500, help="hypothesis examples per test in the pytest half")
    args = p.parse_args(argv)
    cases = CASES if args.models is None else [(m, pr) for m in args.models.split(",")
                                               for pr in args.precisions.split(",")]
    total, failed = 0, 0
    for model, precision in cases:
        t = kill_anywhere(model, precision, args.trials, args.seed, Path(args.root))
        total += t["trials"]
        failed += t["trials"] - t["identical"] + len(t["unloadable"])
        print(f"{model} {precision}: {t['identical']}/{t['trials']} bit-identical after kill + resume "
              f"(killed inside a checkpoint write {t['in_ckpt_write']}, inside a metrics line {t['in_metrics_write']},"
              f" before the first checkpoint {t['before_first_ckpt']}); unloadable files: {t['unloadable'] or 0}",
              flush=True)
    print(f"kill instants: {total}, differences or unloadable files: {failed}", flush=True)
    if not args.kills_only:
        here = Path(__file__).resolve().parent
        env = {**os.environ, "FASTGAN_HYPOTHESIS_EXAMPLES": str(args.examples)}
        res = subprocess.run([sys.executable, "-m", "pytest", "-q", str(here / "test_faults.py"),
                              str(here / "test_generated.py")], env=env, cwd=here.parent)
        failed += res.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
