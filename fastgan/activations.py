"""The activation table (docs/design.md, "The activation table"), Python side.

The C++/CUDA side is csrc/include/fastgan/activations.h; Triton's is kernels/bias_act.py. Names, ids and defaults
here must equal the C++ table: tests/test_bias_act.py compares them through fastgan._C.activation_table().
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ActSpec", "ACTIVATIONS", "get_act"]


@dataclass(frozen=True)
class ActSpec:
    id: int
    name: str
    default_alpha: float
    default_gain: float
    y_ok: bool  # backward computable from the output alone (with alpha >= 0, gain != 0)
    has_2nd: bool  # non-zero second derivative


_S2 = math.sqrt(2.0)
ACTIVATIONS: dict[str, ActSpec] = {
    a.name: a
    for a in (
        ActSpec(0, "linear", 0.0, 1.0, True, False),
        ActSpec(1, "relu", 0.0, _S2, True, False),
        ActSpec(2, "lrelu", 0.2, _S2, True, False),
        ActSpec(3, "tanh", 0.0, 1.0, True, True),
        ActSpec(4, "sigmoid", 0.0, 1.0, True, True),
        ActSpec(5, "elu", 1.0, 1.0, True, True),
        ActSpec(6, "selu", 0.0, 1.0, True, True),
        ActSpec(7, "softplus", 0.0, 1.0, True, True),
        ActSpec(8, "swish", 0.0, _S2, False, True),
    )
}

# SELU constants (Klambauer et al. 2017), equal to torch.nn.functional.selu's.
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def get_act(name: str) -> ActSpec:
    if not isinstance(name, str):
        raise TypeError(f"act: expected an activation name (str), got {type(name).__name__}")
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"act: unknown activation {name!r}; expected one of: {', '.join(ACTIVATIONS)}") from None
