"""`--precision auto` (fastgan/train/precision.py): bf16 exactly where the device has bf16 matrix units (CPU flags
avx512_bf16 / amx_bf16; GPUs sm_80+), fp32 elsewhere -- tested with the detection mocked both ways -- and the run
records the precision that ran (config.json: precision, and precision_auto with the reason), so a resumption on the
same machine continues it."""
import json

import pytest
import torch

from fastgan.cli import main as cli_main
from fastgan.train import Trainer, config_for
from fastgan.train import precision as P

TINY = dict(hidden=16, z_dim=4, batch_size=32, progress=False, eval_at_end=False)


@pytest.mark.parametrize("flags, want", [({"avx512f", "avx512_bf16"}, "bf16"), ({"amx_bf16", "amx_tile"}, "bf16"),
                                         ({"avx2", "avx512f"}, "fp32"), (set(), "fp32")])
def test_cpu_choice_follows_the_flags(monkeypatch, flags, want):
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset(flags))
    chosen, why = P.resolve("auto", "cpu")
    assert chosen == want
    assert why.startswith(f"auto: {want}, ") and ("has" in why)
    assert P.resolve("fp16", "cpu") == ("fp16", "")  # an explicit choice is left alone


@pytest.mark.parametrize("cap, want", [((8, 0), "bf16"), ((9, 0), "bf16"), ((7, 5), "fp32"), ((6, 1), "fp32")])
def test_gpu_choice_follows_the_compute_capability(monkeypatch, cap, want):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cap)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    chosen, why = P.resolve("auto", "cuda")
    assert chosen == want and f"sm_{cap[0]}{cap[1]}" in why


def test_the_real_flags_are_read():
    flags = P.cpu_flags()
    assert isinstance(flags, frozenset)
    with open("/proc/cpuinfo") as f:
        text = f.read()
    assert ("avx512_bf16" in text) == ("avx512_bf16" in flags)


@pytest.mark.parametrize("flags, want", [({"avx512_bf16"}, "bf16"), ({"avx2"}, "fp32")])
def test_a_run_records_the_choice_and_resumes_with_it(monkeypatch, tmp_path, flags, want):
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset(flags))
    out = tmp_path / "run"
    t = Trainer(config_for("gan", **TINY, steps=2, precision="auto", out=str(out)))
    assert t.cfg.precision == want and t.cfg.precision_auto.startswith(f"auto: {want}")
    t.run()
    saved = json.loads((out / "config.json").read_text())
    assert saved["precision"] == want and saved["precision_auto"] == t.cfg.precision_auto
    again = Trainer(config_for("gan", **TINY, steps=2, precision="auto", out=str(out)), resume=True)
    assert again.step == 2 and again.cfg.precision == want
    with pytest.raises(ValueError, match="precision"):  # another choice would change the trajectory
        Trainer(config_for("gan", **TINY, steps=2, precision="fp16", out=str(out)), resume=True)


def test_the_cli_prints_the_choice(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    rc = cli_main(["train", "gan", "--data", "gmm8", "--steps", "2", "--hidden", "16", "--precision", "auto",
                   "--no-progress", "--no-eval", "--out", str(tmp_path / "c")])
    assert rc == 0
    assert "precision: auto: bf16, the CPU has avx512_bf16" in capsys.readouterr().out
