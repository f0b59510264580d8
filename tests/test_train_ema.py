"""G's moving average (TrainConfig.ema, fastgan.train.ema): the schedule and the update (parameters averaged, buffers
copied), evaluation reads the average, the checkpoint holds it (bit-identical resume: tests/test_train.py; the same on
every rank: tests/test_train_objectives.py), the configuration's and checkpoint's errors, `fastgan plot`."""
import importlib
import json

import pytest
import torch
from torch import nn

import fastgan.train
from fastgan import cli
from fastgan.train import Trainer, config_for
from fastgan.train import checkpoint as ckpt
from fastgan.train.ema import EMA
from fastgan.train.evaluation import evaluate

TINY = dict(hidden=16, z_dim=4, batch_size=32, progress=False, eval_at_end=False)


def test_schedule_and_update():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).double()
    ema = EMA(net, half_life_images=640, rampup=0.05, batch=64)
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training
    # ramp-up: the half-life is 0.05 x images seen until that reaches 640 (200 iterations of 64)
    assert ema.beta(1) == 0.5 ** (64 / (0.05 * 64))
    assert ema.beta(100) == 0.5 ** (64 / 320)
    assert ema.beta(200) == ema.beta(10_000) == 0.5 ** 0.1
    assert EMA(net, 640, 0.0, 64).beta(1) == 0.5 ** 0.1  # no ramp-up
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net.train()(torch.randn(8, 3, dtype=torch.float64))  # moves the running statistics
    before = [p.clone() for p in ema.module.parameters()]
    ema.update(net, 100)
    beta = 0.5 ** (64 / 320)
    for e, b, p in zip(ema.module.parameters(), before, net.parameters()):
        torch.testing.assert_close(e, beta * b + (1 - beta) * p, rtol=1e-14, atol=1e-14)
        assert not torch.equal(e, p)
    for name, buf in net.named_buffers():  # copied, not averaged
        assert torch.equal(dict(ema.module.named_buffers())[name], buf), name


def test_evaluation_samples_from_the_average(tmp_path, monkeypatch):
    # the metrics of fewer samples: a faster test
    monkeypatch.setattr(importlib.import_module("fastgan.train.evaluation"), "N_SAMPLES", 256)
    t = Trainer(config_for("gan", data="gmm8", steps=6, ema=0.05, batch_norm=True, **TINY))
    t.run()
    G = t.recipe.nets["G"]
    assert not torch.equal(t.ema.module.out.weight, G.out.weight)
    with_ema = evaluate(t.recipe, t.split, seed=0, ema=t.ema)
    assert t.recipe.nets["G"] is G and G.training and not t.ema.module.training  # swapped back
    trained = evaluate(t.recipe, t.split, seed=0)
    assert with_ema["mmd2"] != trained["mmd2"]
    G.load_state_dict(t.ema.state_dict())
    assert evaluate(t.recipe, t.split, seed=0) == with_ema  # exactly the average's metrics


def test_the_trainer_and_fastgan_eval_evaluate_the_average(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(importlib.import_module("fastgan.train.trainer"), "evaluate",
                        lambda *a, **kw: seen.append(kw["ema"]) or {})
    t = Trainer(config_for("gan", steps=2, ema=0.05, **{**TINY, "eval_at_end": True}, out=str(tmp_path / "r")))
    assert t.run()["ema"] == 0.05 and seen == [t.ema]
    monkeypatch.setattr(fastgan.train, "evaluate", lambda *a, **kw: seen.append(kw["ema"]) or {})
    assert cli.main(["eval", str(tmp_path / "r")]) == 0
    assert isinstance(seen[1], EMA) and torch.equal(seen[1].module.out.weight, t.ema.module.out.weight)


@pytest.mark.parametrize("kw, match", [
    (dict(ema=-1.0), r"ema: expected a finite number >= 0 \(--ema"),
    (dict(ema=float("nan")), "ema: expected a finite number"),
    (dict(ema=float("inf")), "ema: expected a finite number"),
    (dict(ema=True), "ema: expected a finite number"),
    (dict(ema=1.0, ema_rampup=-0.5), r"ema_rampup: expected a finite number >= 0 \(--ema-rampup"),
])
def test_bad_ema_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        Trainer(config_for("gan", steps=1, **TINY, **kw))


def test_cli_ema_flags_and_errors(tmp_path, capsys):
    args = ["train", "gan", "--steps", "2", "--hidden", "8", "--z-dim", "2", "--batch-size", "16", "--no-progress",
            "--no-eval"]
    assert cli.main([*args, "--ema", "-1"]) == 2
    assert "ema: expected a finite number >= 0 (--ema" in capsys.readouterr().err
    assert cli.main([*args, "--ema", "0.5", "--ema-rampup", "0", "--out", str(tmp_path / "r")]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (config["ema"], config["ema_rampup"]) == (0.5, 0.0)
    assert ckpt.load(tmp_path / "r" / "checkpoint.pt")["ema"] is not None


def test_checkpoint_ema_mismatches_are_refused(tmp_path):
    out = str(tmp_path / "r")
    Trainer(config_for("gan", steps=2, ema=0.05, out=out, **TINY)).run()
    with pytest.raises(ValueError, match="differing fields.*'ema'"):  # resuming without the average
        Trainer(config_for("gan", steps=2, out=out, **TINY), resume=True)
    path = tmp_path / "r" / "checkpoint.pt"
    state = ckpt.load(path)
    for broken, match in ((None, "the checkpoint holds no average"),
                          ({**state["ema"], "out.weight": torch.zeros(3)}, r"ema\.out\.weight: expected")):
        ckpt.save(path, {**state, "ema": broken})
        with pytest.raises(ValueError, match=match):
            Trainer(config_for("gan", steps=2, ema=0.05, out=out, **TINY), resume=True)


# ---- fastgan plot RUN_DIR [--out PNG] ----
def test_cli_plot_redraws_the_curves(tmp_path, capsys):
    run = tmp_path / "r"
    Trainer(config_for("gan", steps=4, log_every=2, out=str(run), **TINY)).run()
    (run / "curves.png").unlink()
    assert cli.main(["plot", str(run)]) == 0
    assert (run / "curves.png").stat().st_size > 0 and "2 metrics lines" in capsys.readouterr().out
    assert cli.main(["plot", str(run), "--out", str(tmp_path / "sub" / "c.png")]) == 0
    assert (tmp_path / "sub" / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot_errors(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert cli.main(["plot", str(tmp_path)]) == 2
    assert "metrics.jsonl not found" in capsys.readouterr().err
    (tmp_path / "metrics.jsonl").write_text("")
    assert cli.main(["plot", str(tmp_path)]) == 2
    assert "is empty" in capsys.readouterr().err
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\nnot json\n')
    assert cli.main(["plot", str(tmp_path)]) == 2
    assert "is not a metrics log" in capsys.readouterr().err
    assert not (tmp_path / "curves.png").exists()
