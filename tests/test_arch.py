"""--arch dcgan (issue 18): the DCGAN-style conv nets of fastgan.nn.dcgan on the trainer's flat image rows.

The adapter (pad to 32 x 32 with -1, crop G's output back) round-trips 28 x 28 and 8 x 8 images; every recipe that
takes dcgan runs an iteration on digits with conv nets (fused and eager twin); the fused nets and their eager twins
compute the same gradients in float64 (1e-10); a dcgan run resumes bit-identically and refuses another arch; the
errors (dcgan on 2-D data, an unknown arch, a recipe that takes mlp only) name `arch`."""
import dataclasses
import json

import pytest
import torch
from test_train import _assert_twin_gradients_equal, metric_lines, states_equal, tiny

from fastgan import cli
from fastgan.nn import (
    DCGANDiscriminator,
    DCGANEncoder,
    DCGANGenerator,
    FlatImageAdapter,
    crop_images,
    image_geometry,
    pad_images,
)
from fastgan.train import RECIPES, TrainConfig, Trainer
from fastgan.train import checkpoint as ckpt
from fastgan.train.recipes import GAN, validate

SMALL = dict(hidden=8, z_dim=4, batch_size=16, arch="dcgan")  # base 8: conv widths 8-16-32-64
DCGAN_RECIPES = sorted(m for m, cls in RECIPES.items() if "dcgan" in cls.archs)


@pytest.mark.parametrize("shape, margin", [((28, 28), 2), ((8, 8), 12), ((1, 28, 28), 2), ((3, 8, 8), 12)])
def test_pad_and_crop_round_trip(shape, margin):
    (c, h, w), size = image_geometry(shape)
    assert size == 32 and (h, w) == shape[-2:]
    x = torch.rand(5, c * h * w) * 2 - 1
    img = pad_images(x, shape, size)
    assert img.shape == (5, c, 32, 32)
    inner = img[:, :, margin:margin + h, margin:margin + w]
    assert torch.equal(inner.reshape(5, -1), x)  # centred, the rows' own layout (C, H, W)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[margin:margin + h, margin:margin + w] = False
    assert (img[:, :, border] == -1).all()  # the background of images in [-1, 1]
    assert torch.equal(crop_images(img, shape), x)


def test_geometry_sizes_and_errors():
    assert image_geometry((33, 40))[1] == 64 and image_geometry((7, 9))[0] == (1, 7, 9)
    with pytest.raises(ValueError, match="image_shape: the DCGAN nets take images up to 64 x 64"):
        image_geometry((65, 65))
    with pytest.raises(ValueError, match="image_shape: rows of 783 values"):
        image_geometry((28, 28), 783)
    with pytest.raises(ValueError, match="image_shape: expected"):
        image_geometry((28,))
    with pytest.raises(TypeError, match="net: expected a DCGAN-style net"):
        FlatImageAdapter(torch.nn.Linear(3, 3), (8, 8))
    with pytest.raises(ValueError, match="net: images"):
        FlatImageAdapter(DCGANGenerator(z_dim=4, nc=1, size=64, base=2), (28, 28))


@pytest.mark.parametrize("shape", [(28, 28), (8, 8)])
def test_adapter_on_flat_rows_and_twins(shape):
    dim = shape[0] * shape[1]
    for bn in (False, True):
        nets = {
            "G": lambda eager: DCGANGenerator(z_dim=4, nc=1, size=32, base=4, batch_norm=bn, eager=eager),
            "E": lambda eager: DCGANEncoder(nc=1, size=32, z_dim=4, base=4, batch_norm=bn, eager=eager),
            "D": lambda eager: DCGANDiscriminator(nc=1, size=32, base=4, batch_norm=bn, eager=eager),
        }
        for kind, make in nets.items():
            fused, twin = FlatImageAdapter(make(False), shape), FlatImageAdapter(make(True), shape)
            assert list(fused.state_dict()) == list(twin.state_dict())
            twin.load_state_dict(fused.state_dict())
            x = torch.randn(6, 4) if kind == "G" else torch.rand(6, dim) * 2 - 1
            y, y2 = fused(x), twin(x)
            torch.testing.assert_close(y, y2, rtol=1e-5, atol=1e-6)
            assert y.shape == {"G": (6, dim), "E": (6, 4), "D": (6,)}[kind]
            if kind == "G":
                assert y.abs().max() <= 1
            else:
                assert fused.features(x).shape == (6, fused.n_features) == (6, 4 * 4 * 4 * 4)  # 4 base x 4 x 4
            if kind == "D":  # D(x) = out(features(x)): the form a head sharing D's trunk (infogan's Q) relies on
                torch.testing.assert_close(fused.out(fused.features(x)).squeeze(1), y)
    with pytest.raises(ValueError, match=r"x: expected rows of shape \(N, 64\)"):
        FlatImageAdapter(DCGANDiscriminator(nc=1, size=32, base=2), (8, 8))(torch.zeros(2, 63))


@pytest.mark.parametrize("backend", ["auto", "eager"])
@pytest.mark.parametrize("model", DCGAN_RECIPES)
def test_every_dcgan_recipe_trains_an_iteration(model, backend):
    t = Trainer(tiny(model=model, backend=backend, steps=1, **SMALL))
    convs = [k for k, n in t.recipe.nets.items() if any(isinstance(m, FlatImageAdapter) for m in n.modules())]
    assert convs, f"{model}: no conv net under arch 'dcgan'"
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in t.recipe.nets.items()}
    t.run()
    for name, net in t.recipe.nets.items():
        moved = [not torch.equal(p, q) for p, q in zip(net.parameters(), before[name])]
        assert any(moved), f"{model}: {name} was not updated"
        assert all(torch.isfinite(p).all() for p in net.parameters()), f"{model}: {name} not finite"


def test_which_nets_are_convolutional():
    t = Trainer(tiny(model="bigan", steps=1, **SMALL))
    nets = t.recipe.nets
    assert isinstance(nets["G"].net, DCGANGenerator) and isinstance(nets["E"].net, DCGANEncoder)
    assert nets["D"].net.z_dim == 4 and nets["D"].net.base == 8  # the joint D(x, z); base = hidden
    assert nets["D"].net.batch_norm and nets["G"].net.batch_norm  # cfg.batch_norm None: on for images
    for model in ("wgan-gp", "wgan", "hinge"):  # critics: batch-norm-free whatever cfg.batch_norm says
        d = Trainer(tiny(model=model, steps=1, batch_norm=True, **SMALL)).recipe.nets["D"]
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in d.modules()), model
    r = Trainer(tiny(model="gan", steps=1, **{**SMALL, "hidden": None})).recipe
    assert r.nets["D"].net.base == 32 and r.base == 32  # recipes.nets.DCGAN_BASE
    assert r.encoder(4, 3).__class__.__name__ == "BiGANEncoder"  # a net off the data side (on codes) stays an MLP
    x = t.split.test_x[:3]
    g = Trainer(tiny(model="gan", steps=1, **SMALL)).recipe
    g.train(False)
    assert g.features(x).shape == (3, 4 * 8 * 4 * 4)  # D's last conv layer, flat (evaluation's 1NN features)


@pytest.mark.parametrize("model, kw", [("gan", {}), ("bigan", {}), ("wgan-gp", {}), ("jlr", {}),
                                       ("gan", {"extra": {"r1": 0.7}}), ("improved", {})])
def test_dcgan_fused_and_eager_twin_gradients(model, kw, monkeypatch):
    """The test_train helper unchanged (float64, 1e-10 of each group's largest gradient), on conv nets: batch norm in
    gan / bigan / jlr, the generic double backward of the WGAN-GP penalty and of R1 through conv + bias_act (+ batch
    norm), and minibatch discrimination on the conv trunk."""
    _assert_twin_gradients_equal(model, monkeypatch, **{**SMALL, "batch_size": 32}, **kw)


def test_dcgan_resume_is_bit_identical_and_refuses_another_arch(tmp_path, monkeypatch):
    kw = dict(model="bigan", steps=6, ckpt_every=2, log_every=3, **SMALL)
    full = Trainer(tiny(**kw, out=str(tmp_path / "full")))
    full.run()
    cfg = tiny(**kw, out=str(tmp_path / "cut"))
    cut = Trainer(cfg)
    step, calls = cut.recipe.step, []

    def interrupted(*a):
        calls.append(1)
        if len(calls) == 4:  # after the checkpoint at step 2 and the metrics line at step 3
            raise KeyboardInterrupt
        return step(*a)

    monkeypatch.setattr(cut.recipe, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    assert ckpt.load(tmp_path / "cut" / "checkpoint.pt")["step"] == 2
    resumed = Trainer(cfg, resume=True)
    resumed.run()
    states_equal(full, resumed)
    assert metric_lines(tmp_path / "full" / "metrics.jsonl") == metric_lines(tmp_path / "cut" / "metrics.jsonl")
    assert TrainConfig.from_dict(ckpt.load(tmp_path / "cut" / "checkpoint.pt")["config"]).arch == "dcgan"
    with pytest.raises(ValueError, match="another configuration.*'arch': \\('dcgan', 'mlp'\\)"):
        Trainer(dataclasses.replace(cfg, arch="mlp"), resume=True)


def test_arch_errors(capsys):
    with pytest.raises(ValueError, match="arch: 'dcgan' builds conv nets for images; data 'gmm8' has none"):
        Trainer(tiny(model="gan", data="gmm8", steps=1, **SMALL))
    with pytest.raises(ValueError, match="arch: expected one of mlp, dcgan, got 'resnet'"):
        Trainer(tiny(model="gan", steps=1, **{**SMALL, "arch": "resnet"}))

    class MLPOnly(GAN):
        name = "mlp-only"
        archs = ("mlp",)
        arch_note = "its D reads flat features"

    with pytest.raises(ValueError, match=r"arch: the 'mlp-only' recipe takes arch 'mlp', not 'dcgan' \(its D reads"):
        MLPOnly.check_config(tiny(model="gan", steps=1, **SMALL))
    MLPOnly.check_config(tiny(model="gan", steps=1))
    assert validate(tiny(model="gan", steps=1, **SMALL)).arch == "dcgan"
    assert TrainConfig().arch == "mlp" and TrainConfig.from_dict({"model": "gan"}).arch == "mlp"  # old checkpoints
    # the command line
    args = ["train", "gan", "--steps", "1", "--hidden", "8", "--z-dim", "4", "--batch-size", "16", "--no-progress",
            "--no-eval"]
    assert cli.main([*args, "--arch", "dcgan", "--data", "gmm8"]) == 2
    assert "arch: 'dcgan' builds conv nets for images" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([*args, "--arch", "resnet"])
    assert "invalid choice: 'resnet'" in capsys.readouterr().err


def test_cli_trains_and_evaluates_dcgan(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "gan", "--arch", "dcgan", "--steps", "2", "--hidden", "8", "--z-dim", "4",
                     "--batch-size", "16", "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "classifier Frechet distance" in text and "1NN test accuracy" in text
    assert "classifier KID (generated vs test)" in text and "recall (test inside the generated manifold" in text
    res = json.loads((out / "results.json").read_text())
    assert {"kid", "kid_std", "precision", "recall"} <= set(res) and 0.0 <= res["precision"] <= 1.0
    assert (out / "samples.png").is_file()
    assert TrainConfig.from_dict(ckpt.load(out / "checkpoint.pt")["config"]).arch == "dcgan"


def test_conv_nets_output_activations_and_mixed_precision():
    """The factories hand out_act to the conv G and E (a VAE's decoder, a tanh encoder); bf16 autocast runs."""
    for eager in (False, True):
        g = DCGANGenerator(z_dim=4, nc=1, size=32, base=2, out_act="sigmoid", eager=eager)
        e = DCGANEncoder(nc=1, size=32, z_dim=4, base=2, out_act="tanh", eager=eager)
        assert (g(torch.randn(3, 4) * 5) > 0).all() and e(torch.randn(3, 1, 32, 32) * 5).abs().max() < 1
    with pytest.raises(ValueError, match="act"):
        DCGANGenerator(z_dim=4, nc=1, size=32, base=2, out_act="bogus")
    r = Trainer(tiny(model="bigan", steps=1, extra={"encoder_out": "tanh"}, **SMALL)).recipe
    assert r.nets["E"].net.out.act == "tanh" and r.nets["G"].net.layers[-1].act == "tanh"
    for model in ("gan", "wgan-gp"):
        t = Trainer(tiny(model=model, steps=2, precision="bf16", **SMALL))
        t.run()
        assert all(torch.isfinite(p).all() for n in t.recipe.nets.values() for p in n.parameters()), model
