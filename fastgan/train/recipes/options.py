"""Recipe options as data: each option a recipe reads from TrainConfig.extra is declared once, in the recipe's
`options`, with its default, its check, its help and (for the common ones) its command-line flag. The recipe base
checks a configuration against them (Recipe.check_config), reads them once (Recipe.opt), and the command line
builds its flags and their help from them (fastgan.cli): a default is written in one place.

    number("beta", 4.0, "the weight of the KL term", POSITIVE, flag="--beta")
    switch("feature_matching", False, "train G by feature matching", flag="--feature-matching")

Every option, flagged or not, is also reachable as `--option NAME=VALUE`.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NON_NEGATIVE", "POSITIVE", "Option", "add_flags", "choice", "custom", "extra_from_args", "flags", "integer",
           "number", "parse_assignment", "switch"]

POSITIVE = (lambda v: v > 0, "a finite number > 0")
NON_NEGATIVE = (lambda v: v >= 0, "a finite number >= 0")


@dataclass(frozen=True)
class Option:
    """One recipe option: cfg.extra[name] (default `default` when absent), checked and normalised by
    parse(value, where) (a ValueError naming `where`, "extra['name']", otherwise); `flag` its own command-line flag
    (None: only --option NAME=VALUE), whose argparse type is cli_type (None: a switch, store_true)."""

    name: str
    default: Any
    help: str
    parse: Callable[[Any, str], Any]
    cli_type: Callable | None = str
    flag: str | None = None
    metavar: str | None = None

    def value(self, extra: Mapping) -> Any:
        """The option's value in a configuration's extra (checked; the default when absent)."""
        return self.parse(extra.get(self.name, self.default), f"extra[{self.name!r}]")


def number(name: str, default: float, help: str, check=NON_NEGATIVE, flag: str | None = None,
           metavar: str | None = None) -> Option:
    """A finite real number (not a bool) passing check = (predicate, what is expected); read as a float."""
    ok, expected = check

    def parse(v, where):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not ok(v):
            raise ValueError(f"{where}: expected {expected}, got {v!r}")
        return float(v)

    return Option(name, default, help, parse, float, flag, metavar)


def integer(name: str, default: int, help: str, check=(lambda v: v >= 1, "a positive int"), flag: str | None = None,
            metavar: str | None = None) -> Option:
    """An int (not a bool) passing check = (predicate, what is expected)."""
    ok, expected = check

    def parse(v, where):
        if isinstance(v, bool) or not isinstance(v, int) or not ok(v):
            raise ValueError(f"{where}: expected {expected}, got {v!r}")
        return v

    return Option(name, default, help, parse, int, flag, metavar)


def switch(name: str, default: bool, help: str, flag: str | None = None) -> Option:
    """True or False (a flag, when given, switches it on)."""

    def parse(v, where):
        if not isinstance(v, bool):
            raise ValueError(f"{where}: expected True or False, got {v!r}")
        return v

    return Option(name, default, help, parse, None, flag)


def choice(name: str, default: str, choices: tuple[str, ...], help: str, flag: str | None = None) -> Option:
    """One of `choices`."""

    def parse(v, where):
        if v not in choices:
            raise ValueError(f"{where}: expected {' or '.join(map(repr, choices))}, got {v!r}")
        return v

    return Option(name, default, help, parse, str, flag)


def custom(name: str, default: Any, help: str, parse: Callable[[Any, str], Any], cli_type: Callable | None = str,
           flag: str | None = None, metavar: str | None = None) -> Option:
    """An option with its own parse(value, where)."""
    return Option(name, default, help, parse, cli_type, flag, metavar)


# ---- the command line's view of the options (fastgan.cli: it names no recipe; the flags come from here) ----
def parse_assignment(text: str) -> tuple[str, object]:
    """--option KEY=VALUE -> (KEY, VALUE read as JSON, else the string)."""
    import argparse

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def flags(recipes: Mapping) -> dict[str, list]:
    """Every recipe option with a flag of its own: flag -> [(recipe name, its Option)]."""
    out: dict[str, list] = {}
    for name, cls in recipes.items():
        for spec in cls.option_specs().values():
            if spec.flag:
                out.setdefault(spec.flag, []).append((name, spec))
    return out


def defaults_text(name: str, uses: list, recipes: Mapping) -> str:
    """'default D' (or per recipe 'default D1 (r, ...), D2 (...)'), then the data sets where recipes set it."""

    def group(pairs, named=False):
        by: dict = {}
        for recipe, value in pairs:
            by.setdefault(value if not isinstance(value, list) else tuple(value), []).append(recipe)
        if len(by) == 1 and not named:
            return f"{next(iter(by))}"
        return ", ".join(f"{v} ({', '.join(rs)})" for v, rs in by.items())

    text = "default " + group([(recipe, spec.default) for recipe, spec in uses])
    on_data: dict = {}
    for recipe, _ in uses:
        for data, fields in recipes[recipe].data_defaults.items():
            if name in fields.get("extra", {}):
                on_data.setdefault(data, []).append((recipe, fields["extra"][name]))
    for data, pairs in on_data.items():
        text += f"; on {data}: {group(pairs, named=True)}"
    return text


def add_flags(parser, recipes: Mapping) -> None:
    """The recipe options' own flags on an argparse parser, built from their declarations (dest opt_<name>; unset:
    None), each help naming the recipes that take it and their defaults."""
    for flag, uses in flags(recipes).items():
        spec = uses[0][1]
        kw = dict(dest=f"opt_{spec.name}", default=None,
                  help=f"{', '.join(r for r, _ in uses)}: {spec.help} ({defaults_text(spec.name, uses, recipes)})")
        if spec.cli_type is None:
            kw.update(action="store_const", const=True)
        else:
            kw.update(type=spec.cli_type, metavar=spec.metavar or spec.name.upper())
        parser.add_argument(flag, **kw)


def extra_from_args(args, recipes: Mapping) -> dict:
    """TrainConfig.extra from parsed arguments: the options' own flags, then --option KEY=VALUE (args.option); a
    key given both ways is refused."""
    extra = {}
    for uses in flags(recipes).values():
        name = uses[0][1].name
        if getattr(args, f"opt_{name}", None) is not None:
            extra[name] = getattr(args, f"opt_{name}")
    for key, value in getattr(args, "option", None) or ():
        if key in extra:
            raise ValueError(f"--option {key}: also given by its own flag; give it once")
        extra[key] = value
    return extra
