"""Recipe options as data (fastgan.train.recipes.options, issue 32): every option a recipe reads is declared once,
with a default its own check accepts, a help text and, for the common ones, a flag; the command line builds its
flags, help and result labels from the recipes and names none of them itself."""
import argparse
import ast
import dataclasses
import re
from pathlib import Path

import pytest

from fastgan import cli
from fastgan.train import RECIPES, TrainConfig, Trainer, config_for
from fastgan.train.evaluation import METRIC_LABELS
from fastgan.train.recipes import options


@pytest.mark.parametrize("model", sorted(RECIPES))
def test_every_option_is_declared_with_a_valid_default(model):
    specs = RECIPES[model].option_specs()
    assert sorted(specs) == RECIPES[model].known_options()
    for name, spec in specs.items():
        assert spec.name == name and spec.help.strip(), name
        spec.value({})  # the default passes its own check
        with pytest.raises(ValueError, match=re.escape(f"extra[{name!r}]")):
            spec.value({name: object()})  # anything else is refused, naming the key


def test_one_flag_is_one_option():
    """A flag means the same option (name, argparse type) in every recipe that declares it."""
    for flag, uses in options.flags(RECIPES).items():
        assert flag.startswith("--") and len({(s.name, s.cli_type) for _, s in uses}) == 1, flag


def test_flags_land_in_extra_and_the_recipe_reads_them():
    """Each flag sets its option in TrainConfig.extra; the recipe's opt() then reads that value (not the default)."""
    p = argparse.ArgumentParser()
    cli._train_args(p, "")
    for flag, uses in options.flags(RECIPES).items():
        recipe, spec = uses[0]
        value = {float: "0.25", int: "3", str: None, None: None}[spec.cli_type]
        if spec.cli_type is str:  # a text option: its own default, spelled on the command line
            value = spec.default
        args = p.parse_args([flag] if spec.cli_type is None else [flag, value])
        extra = options.extra_from_args(args, RECIPES)
        assert list(extra) == [spec.name], flag
        cfg = config_for(recipe, hidden=8, z_dim=2, batch_size=8, steps=1, progress=False, eval_at_end=False)
        cfg = dataclasses.replace(cfg, extra={**cfg.extra, **extra})
        if spec.name == "r1_every":
            cfg.extra["r1"] = 1.0
        assert Trainer(cfg).recipe.opt(spec.name) == spec.value(extra), flag


def test_help_shows_each_default_once_from_the_declarations():
    help_text = " ".join(options.defaults_text(uses[0][1].name, uses, RECIPES)
                         for uses in options.flags(RECIPES).values())
    assert "10.0 (wae-mmd), 1.0 (wae-gan)" in help_text  # lambda: one declaration per recipe
    assert "on mnist5k: 1.0 (gan, bigan, lr, jlr, infogan)" in help_text  # R1: the recipes' data defaults


def test_cli_names_no_recipe():
    """fastgan/cli.py's code holds no recipe name (its module docstring may mention some): flags, help and result
    labels come from the recipes. TrainConfig's field names (e.g. 'lr', the learning rate) are not recipe names."""
    src = Path(cli.__file__).read_text()
    tree = ast.parse(src)
    doc = ast.get_docstring(tree, clean=False)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    found = [(node.lineno, name) for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value != doc
             and node.value not in fields
             for name in RECIPES if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", node.value)]
    assert not found, found


def test_results_print_every_metric(capsys):
    """Labels come from evaluation.METRIC_LABELS and the recipe's metric_labels; a metric nobody labelled is
    printed under its key, never dropped."""
    res = {"model": "vae", "steps": 1, "1nn_accuracy": 0.5, "1nn_accuracy_hidden": 0.25, "test_elbo": -90.0,
           "brand_new_metric": 1.5}
    cli._print_results(res, None)
    out = capsys.readouterr().out
    assert f"{METRIC_LABELS['1nn_accuracy'][0]}: 50.00 %" in out
    assert f"{METRIC_LABELS['1nn_accuracy_hidden'][0]}: 25.00 %" in out
    assert "test ELBO (nats per image): -90" in out and "brand_new_metric: 1.5" in out and "steps:" not in out
