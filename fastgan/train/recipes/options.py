"""Recipe options as data: each option a recipe reads from TrainConfig.extra is declared once, in the recipe's
`options`, with its default, its check, its help and (for the common ones) its command-line flag. The recipe base
checks a configuration against them (Recipe.check_config), reads them once (Recipe.opt), and the command line
builds its flags and their help from them (fastgan.cli): a default is written in one place.

    number("beta", 4.0, "the weight of the KL term", POSITIVE, flag="--beta")
    switch("feature_matching", False, "train G by feature matching", flag="--feature-matching")

Every option, flagged or not, is also reachable as `--option NAME=VALUE`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NON_NEGATIVE", "POSITIVE", "Option", "choice", "custom", "integer", "number", "switch"]

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
