"""Faults (issue 31): a run that meets a NaN, a disk that refuses a write. Nothing lost, nothing silent: the run stops
with an error naming the step, the values or the path and the cause; the last good checkpoint stays loadable and
resumable; metrics.jsonl stays JSON."""
from __future__ import annotations

import errno
import json
import math

import pytest
import torch
from test_train import _cli, tiny

from fastgan.train import Trainer
from fastgan.train import checkpoint as ckpt
from fastgan.train.trainer import NonFiniteError


def strict_json_lines(path) -> list:
    """metrics.jsonl read as strict JSON: NaN / Infinity tokens (what json.dumps writes by default) raise."""
    def refuse(token):
        raise ValueError(f"{path}: non-JSON token {token}")
    return [json.loads(s, parse_constant=refuse) for s in path.read_text().splitlines()]


def finite_state(state: dict) -> bool:
    return all(torch.isfinite(t).all() for sd in state["nets"].values() for t in sd.values()
               if isinstance(t, torch.Tensor) and t.is_floating_point())


def _poison_at(trainer: Trainer, monkeypatch, step: int, net: str = "G"):
    """From iteration `step` on, one of `net`'s weights is NaN before the iteration runs (a diverged update)."""
    real = trainer.recipe.step

    def step_fn(*a):
        if trainer.step + 1 == step:
            with torch.no_grad():
                next(trainer.recipe.nets[net].parameters()).view(-1)[0] = float("nan")
        return real(*a)
    monkeypatch.setattr(trainer.recipe, "step", step_fn)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("model", ["gan", "vae"])
def test_a_nan_stops_the_run_before_it_overwrites_the_checkpoint(model, precision, tmp_path, monkeypatch):
    cfg = tiny(model, data="gmm8", steps=40, ckpt_every=10, log_every=5, precision=precision, out=str(tmp_path / "r"))
    t = Trainer(cfg)
    _poison_at(t, monkeypatch, 13)
    with pytest.raises(NonFiniteError, match=r"^step 15: non-finite .*steps 11-15.*checkpoint.pt keeps step 10"):
        t.run()
    state = ckpt.load(tmp_path / "r" / "checkpoint.pt")
    assert state["step"] == 10 and finite_state(state)
    lines = strict_json_lines(tmp_path / "r" / "metrics.jsonl")
    assert [ln["step"] for ln in lines] == [5, 10, 15]
    assert lines[-1]["non_finite"] and all(lines[-1][k] is None for k in lines[-1]["non_finite"])
    assert all("non_finite" not in ln for ln in lines[:-1])
    resumed = Trainer(cfg, resume=True)  # the last finite state, resumable
    assert resumed.step == 10 and resumed.metrics_pos == len(
        "".join(s + "\n" for s in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[:2]).encode())


def test_a_nan_between_metrics_lines_is_caught_before_the_checkpoint(tmp_path, monkeypatch):
    """A checkpoint interval that is no multiple of the logging interval: the save checks the parameters itself."""
    cfg = tiny("gan", data="gmm8", steps=40, ckpt_every=7, log_every=10, out=str(tmp_path / "r"))
    t = Trainer(cfg)
    _poison_at(t, monkeypatch, 13, net="D")
    with pytest.raises(NonFiniteError, match=r"^step 14: non-finite values in .*D parameters.*keeps step 7"):
        t.run()
    assert ckpt.load(tmp_path / "r" / "checkpoint.pt")["step"] == 7


def test_without_a_run_directory_the_error_says_no_checkpoint(monkeypatch):
    t = Trainer(tiny("gan", data="gmm8", steps=20, log_every=5))
    _poison_at(t, monkeypatch, 2)
    with pytest.raises(NonFiniteError, match=r"^step 5: .*no checkpoint was written"):
        t.run()


def test_fp16_keeps_the_grad_scaler_rule(tmp_path, monkeypatch):
    """fp16: a non-finite loss is the GradScaler's business (it skips the step), not a stop; a NaN that reaches the
    parameters still stops the run before the checkpoint."""
    cfg = tiny("gan", data="gmm8", steps=20, ckpt_every=10, log_every=5, precision="fp16", out=str(tmp_path / "r"))
    t = Trainer(cfg)
    _poison_at(t, monkeypatch, 13)
    with pytest.raises(NonFiniteError, match=r"^step 20: non-finite values in G parameters.*keeps step 10"):
        t.run()
    assert finite_state(ckpt.load(tmp_path / "r" / "checkpoint.pt"))
    strict_json_lines(tmp_path / "r" / "metrics.jsonl")


def test_a_diverging_cli_run_exits_non_zero_and_keeps_its_last_finite_checkpoint(tmp_path):
    """The issue's case: lsgan at lr 1e8 on gmm8 used to train to the end on NaN, overwrite its checkpoint with NaN
    weights and exit 0."""
    out = tmp_path / "lsgan"
    res = _cli("train", "lsgan", "--data", "gmm8", "--lr", "1e8", "--steps", "100", "--hidden", "32",
               "--log-every", "10", "--ckpt-every", "10", "--no-progress", "--out", str(out))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "error: step" in res.stderr and "non-finite" in res.stderr and "lower the learning rate" in res.stderr
    strict_json_lines(out / "metrics.jsonl")
    if (out / "checkpoint.pt").exists():
        assert finite_state(ckpt.load(out / "checkpoint.pt"))
    assert not (out / "results.json").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_a_checkpoint_write_that_fails_names_the_path_and_keeps_the_old_one(code, tmp_path, monkeypatch):
    cfg = tiny("gan", data="gmm8", steps=20, ckpt_every=5, log_every=5, out=str(tmp_path / "r"))
    t = Trainer(cfg)
    real_save, calls = torch.save, []

    def failing(obj, f, *a, **k):
        calls.append(1)
        if len(calls) == 2:  # the second checkpoint, after writing part of it
            f.write(b"\0" * 100)
            raise OSError(code, {errno.ENOSPC: "No space left on device", errno.EACCES: "Permission denied"}[code])
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(torch, "save", failing)
    with pytest.raises(OSError, match=r"checkpoint .*checkpoint.pt: cannot write it \((No space|Permission)") as e:
        t.run()
    assert e.value.errno == code
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in (tmp_path / "r").iterdir() if p.name.startswith(".")) == []  # no torn temp file
    assert ckpt.load(tmp_path / "r" / "checkpoint.pt")["step"] == 5
    resumed = Trainer(cfg, resume=True)
    assert resumed.step == 5
    resumed.run()
    assert ckpt.load(tmp_path / "r" / "checkpoint.pt")["step"] == 20


def test_a_metrics_write_that_fails_names_the_file(tmp_path, monkeypatch):
    cfg = tiny("gan", data="gmm8", steps=20, ckpt_every=5, log_every=5, out=str(tmp_path / "r"))
    t = Trainer(cfg)
    real = t._write_line
    calls = []

    def failing(log, line):
        calls.append(1)
        if len(calls) == 2:
            class Full:
                def write(self, b):
                    raise OSError(errno.ENOSPC, "No space left on device")
            return real(Full(), line)
        return real(log, line)
    monkeypatch.setattr(t, "_write_line", failing)
    with pytest.raises(OSError, match=r"metrics.jsonl: cannot write the metrics line of step 10 \(No space.*step 5"):
        t.run()


def test_metrics_lines_are_strict_json():
    from fastgan.train.trainer import _json_safe

    line = {"step": 3, "d_loss": float("nan"), "t": {"x": float("inf"), "y": [1.0, -math.inf]}, "lr": 1e-4}
    assert _json_safe(line) == {"step": 3, "d_loss": None, "t": {"x": None, "y": [1.0, None]}, "lr": 1e-4}
    json.dumps(_json_safe(line), allow_nan=False)


def _rank_pids(parent: int) -> dict:
    """{RANK: pid} of the worker processes under a torchrun process (read from /proc: Linux)."""
    from pathlib import Path

    out, todo = {}, [parent]
    while todo:
        pid = todo.pop()
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            for child in task.read_text().split():
                todo.append(int(child))
                try:
                    env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                ranks = [e.split(b"=", 1)[1] for e in env if e.startswith(b"RANK=")]
                if ranks and b"fastgan" in Path(f"/proc/{child}/cmdline").read_bytes():
                    out[int(ranks[0])] = int(child)
    return out


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_a_dead_rank_stops_the_run_and_it_resumes_from_the_last_checkpoint(tmp_path):
    """torchrun, 2 gloo ranks: rank 1 SIGKILLed mid-training; the job exits non-zero within 60 s (no rank left
    waiting in a collective), the checkpoint on disk loads, and the run resumes from it in one process."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "ddp"
    args = ["train", "gan", "--data", "gmm8", "--hidden", "16", "--z-dim", "4", "--batch-size", "32", "--steps",
            "2000", "--ckpt-every", "25", "--log-every", "25", "--no-progress", "--no-eval", "--out", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FASTGAN_DIST_TIMEOUT": "30"}
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "fastgan", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 300
        while not (run / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        ranks = _rank_pids(proc.pid)
        assert sorted(ranks) == [0, 1], ranks
        os.kill(ranks[1], signal.SIGKILL)
        killed = time.monotonic()
        rc = proc.wait(timeout=120)
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"dead rank: exit code {rc}, {took:.1f} s after the kill")
    assert rc != 0 and took < 60, (rc, took)
    state = ckpt.load(run / "checkpoint.pt")
    assert 25 <= state["step"] < 2000 and state["step"] % 25 == 0 and finite_state(state)
    res = _cli(*args, "--resume", env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert ckpt.load(run / "checkpoint.pt")["step"] == 2000


def test_kill_anywhere_fast(tmp_path):
    """CI's share of `python -m tests.faults` (which kills >= 50 runs): gan, 3 seeded kill instants over a run whose
    writers are slowed, each resumed to the end bit-identical to the uninterrupted run, no unloadable file left."""
    from faults import kill_anywhere

    t = kill_anywhere("gan", "fp32", trials=3, seed=0, root=tmp_path)
    assert t["identical"] == t["trials"] == 3 and not t["unloadable"], t


def test_hostile_run_directories(tmp_path):
    """A run directory that is a file; a metrics log or config.json edited by hand (eval reads the checkpoint's own
    configuration, plot refuses a log that is not JSON lines): errors that say what is wrong, exit 2, no traceback."""
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    res = _cli("train", "gan", "--data", "gmm8", "--steps", "2", "--hidden", "8", "--no-progress", "--out", str(afile))
    assert res.returncode == 2 and "out:" in res.stderr and "is not a directory" in res.stderr, res.stderr
    run = tmp_path / "r"
    res = _cli("train", "gan", "--data", "gmm8", "--steps", "4", "--hidden", "8", "--no-progress", "--no-eval",
               "--out", str(run))
    assert res.returncode == 0, res.stderr
    (run / "config.json").write_text('{"model": "gan", "hidden": -3, "steps": "many"')  # edited, and cut
    res = _cli("eval", str(run))
    assert res.returncode == 0 and "modes covered" in res.stdout, res.stderr  # the checkpoint's configuration
    (run / "metrics.jsonl").write_text("garbage\n")
    res = _cli("plot", str(run))
    assert res.returncode == 2 and "is not a metrics log" in res.stderr and "Traceback" not in res.stderr
    res = _cli("train", "gan", "--data", "gmm8", "--steps", "4", "--hidden", "8", "--no-progress", "--no-eval",
               "--out", str(run), "--resume")  # a metrics log shorter than the checkpoint says
    assert res.returncode == 2 and "metrics.jsonl is shorter" in res.stderr, res.stderr
