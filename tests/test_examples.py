"""The examples (examples/*.py) run, and what they show holds: each example's main(small=True) in this process, with
its numbers asserted (fused nets computing what the plain ones compute, fastgan's loss and penalty equal to the
hand-written ones); one example run as a script, the way its docstring says to run it."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = ("critic_penalty", "fuse_dcgan", "mmd_loss")


@pytest.fixture
def example(monkeypatch):
    """import examples/<name>.py (the scripts import their shared examples/byo_models.py as a top-level module, as
    they do when run from anywhere: python puts the script's folder first on sys.path). One torch thread: the numbers
    checked here do not depend on it, and on a shared 2-core machine two threads make every small op wait."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield importlib.import_module
    torch.set_num_threads(threads)


def test_every_example_is_tested():
    scripts = {p.stem for p in EXAMPLES.glob("*.py")} - {"byo_models"}
    assert scripts == set(SCRIPTS), "a new example: add it to SCRIPTS and give it a test here"


def test_fuse_dcgan(example, capsys):
    out = example("fuse_dcgan").main(small=True)
    printed = capsys.readouterr().out
    # with batch norm only D's first conv and G's output layer are followed directly by their activation
    assert out["batch_norm"]["fused"] == 2 and out["no_batch_norm"]["fused"] == 7
    for variant in out.values():  # relative differences (examples/byo_models.relative_difference), fp32
        d = variant["diffs"]
        assert d["G(z)"] <= 1e-5 and d["D(x)"] <= 1e-5 and d["loss"] <= 1e-5
        assert d["parameter gradients"] <= 5e-5
        assert set(variant["times"]) == {"plain", "fused"} and all(t > 0 for t in variant["times"].values())
    assert printed.count("one training step") == 2
    assert printed.count("1 of its 4 convolutions fused") == 2  # G and D with batch norm
    assert "G: 4 of its 4 convolutions fused" in printed and "D: 3 of its 4 convolutions fused" in printed


def test_mmd_loss(example, capsys):
    mod = example("mmd_loss")
    (r,) = mod.main(small=True)
    assert r["n"] == 256 and r["hand"] > 0
    assert abs(r["hand"] - r["fastgan"]) <= 1e-5 * r["hand"]
    assert r["grad_diff"] <= 5e-5
    # the hand-written loss holds its three 256 x 256 fp32 distance matrices (256 KiB each) and more at its peak
    assert r["peaks"]["hand"] > max(3 * 256 * 256 * 4, 2 * r["peaks"]["fastgan"]) and r["peaks"]["fastgan"] > 0
    assert "MMD^2 hand-written" in capsys.readouterr().out


def test_mmd_loss_bandwidth_mapping(example):
    """The docstring's mapping: exp(-gamma r^2) is fastgan's gaussian with s = 1 / sqrt(2 gamma), on any data."""
    mod = example("mmd_loss")
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, generator=gen, dtype=torch.float64), torch.randn(30, 5, generator=gen,
                                                                               dtype=torch.float64) + 0.5
    for gammas in ((0.5,), (0.01, 0.3, 2.0)):
        assert mod.fastgan_mmd(x, y, gammas).item() == pytest.approx(mod.hand_written_mmd(x, y, gammas).item(),
                                                                     rel=1e-9)


def test_critic_penalty(example, capsys):
    out = example("critic_penalty").main(small=True)
    printed = capsys.readouterr().out
    assert out["fused"] == 3  # conv1..3 + leaky_relu; conv4 (the logit) has no activation
    assert out["penalty"] > 0
    assert len(out["diffs"]) == 6 and len(out["times"]) == 3
    for k, v in out["diffs"].items():  # relative differences, fp32
        assert v <= (5e-5 if k.endswith(": gradients") else 1e-5), (k, v)
    assert "one critic step" in printed


def test_an_example_runs_as_a_script():
    r = subprocess.run([sys.executable, str(EXAMPLES / "critic_penalty.py"), "--quick", "--threads", "1"],
                       capture_output=True, text=True, timeout=300, cwd=EXAMPLES.parent)
    assert r.returncode == 0, r.stderr
    assert "fastgan.wgan_critic_loss, fused critic" in r.stdout
