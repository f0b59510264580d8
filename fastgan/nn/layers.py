"""The generic layers of fastgan's networks, each fused (fastgan ops) or its eager twin (plain torch ops) with the
same parameters and state-dict keys:

    LinearAct   act(x W^T + b) * gain          (nn.Linear's parameters; fused: F.linear + fastgan.bias_act)
    ConvAct     5x5 stride-2 (transposed) conv -> [BatchNorm2d] -> bias + activation   (DCGAN)
    make_act    a parameter-free activation module: fastgan BiasAct(None, ...) or EagerAct
    torch_act   the activation as the eager torch ops a user writes by hand (the one eager definition; in
                nn/bias_act.py, which BiasAct uses too)
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import autocast_target, positive_int
from ..activations import get_act
from ..backend import linear_route
from ..ops.bias_act import bias_act
from ..ops.joint_linear import joint_linear
from .bias_act import BiasAct, _alpha_of, torch_act

__all__ = ["ConvAct", "EagerAct", "LinearAct", "make_act", "torch_act"]


def no_columns(rows: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """An empty (rows, 0) tensor: the z range of a joint_linear that has none, made in the dtype the op computes in
    (the autocast dtype under autocast), so its Autocast kernel has nothing to cast. It has no elements to write, so
    one is shared per (rows, device, dtype); while torch.compile traces, a fresh one (no global tensor in a graph).
    Two allocations and two casts per call were a tenth of a small layer's time (issue 29)."""
    if torch.compiler.is_compiling():
        return torch.empty((rows, 0), device=device, dtype=dtype)
    return _no_columns(rows, device, dtype)


@functools.lru_cache(maxsize=64)
def _no_columns(rows: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty((rows, 0), device=device, dtype=dtype)


class EagerAct(nn.Module):
    """The parameter-free eager twin of BiasAct(None, act, alpha, gain)."""

    def __init__(self, act: str = "linear", alpha: float | None = None, gain: float = 1.0):
        super().__init__()
        get_act(act)
        self.act, self.alpha, self.gain = act, alpha, float(gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch_act(x, self.act, self.alpha, self.gain)

    def extra_repr(self) -> str:
        return f"act={self.act!r}, alpha={self.alpha}, gain={self.gain}"


def make_act(act: str, alpha: float | None = None, gain: float = 1.0, eager: bool = False) -> nn.Module:
    """A parameter-free activation module: fastgan BiasAct(None, ...) (on the backend in force when it runs) or its
    eager twin."""
    return EagerAct(act, alpha, gain) if eager else BiasAct(None, act=act, alpha=alpha, gain=gain)


class LinearAct(nn.Module):
    """act(x @ weight.T + bias) * gain with nn.Linear's parameters (weight (out, in), bias (out,)) and initialisation.

    Fused: F.linear without the bias, then fastgan.bias_act(h, bias, dim=1, ...) adds the bias, applies the
    activation and gain in one pass, and computes the bias gradient in the same pass as the input gradient (a plain
    F.linear(x, w, b) when act is 'linear'); on fp32 CPU tensors with the auto backend, outside autocast, relu / lrelu
    at gain 1 run as the eager form (fastgan.backend.linear_act_native: measured faster there), and under CPU
    autocast linear / relu / lrelu run as joint_linear with an empty z range (linear_act_joint: the same numerics,
    faster). Eager: F.linear(x, weight, bias) and the torch activation.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, act: str = "linear",
                 alpha: float | None = None, gain: float = 1.0, impl: str | None = None, eager: bool = False):
        super().__init__()
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        get_act(act)
        self.act, self.alpha, self.gain, self.impl, self.eager = act, alpha, float(gain), impl, bool(eager)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias."""
        bound = 1 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        route = "torch" if self.eager else linear_route(self.impl, x, self.act, self.gain, None)
        if route == "torch":
            return torch_act(F.linear(x, self.weight, self.bias), self.act, self.alpha, self.gain)
        if self.act == "linear" and self.gain == 1.0:
            return F.linear(x, self.weight, self.bias)
        alpha = _alpha_of(self.act, self.alpha) if self.act == "lrelu" else 0.0
        if route == "joint" and alpha >= 0:
            dt = autocast_target(x, torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
            return joint_linear(x, no_columns(x.shape[0], x.device, dt), self.weight,
                                no_columns(self.out_features, x.device, dt), self.bias, self.act, alpha, self.gain)
        return bias_act(F.linear(x, self.weight), self.bias, 1, self.act, self.alpha, self.gain, impl=self.impl)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"act={self.act!r}, alpha={self.alpha}, gain={self.gain}, eager={self.eager}")


class ConvAct(nn.Module):
    """5x5 stride-2 convolution (transposed: doubles the size) -> [BatchNorm2d] -> bias + activation.

    Parameters: weight ((out, in, 5, 5); transposed: (in, out, 5, 5)), bias (out,) when batch_norm is False, and
    bn.* when it is True. Fused: conv without bias, then fastgan.bias_act(h, bias, dim=1, act, alpha, gain=1).
    Eager: the conv with its bias, then the torch activation.
    """

    def __init__(self, in_channels: int, out_channels: int, transposed: bool = False, batch_norm: bool = False,
                 act: str = "linear", alpha: float | None = None, impl: str | None = None, eager: bool = False):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.transposed, self.act, self.alpha, self.impl, self.eager = bool(transposed), act, alpha, impl, bool(eager)
        shape = (in_channels, out_channels, 5, 5) if transposed else (out_channels, in_channels, 5, 5)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = None if batch_norm else nn.Parameter(torch.empty(out_channels))
        self.bn = nn.BatchNorm2d(out_channels) if batch_norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, 0.0, 0.02)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        if self.bn is not None:
            self.bn.reset_parameters()
            nn.init.normal_(self.bn.weight, 1.0, 0.02)

    def _conv(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose2d(x, self.weight, bias, stride=2, padding=2, output_padding=1)
        return F.conv2d(x, self.weight, bias, stride=2, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._conv(x, self.bias if self.eager else None)
        if self.bn is not None:
            h = self.bn(h)
        if self.eager:
            return torch_act(h, self.act, self.alpha)
        return bias_act(h, self.bias, 1, self.act, self.alpha, 1.0, impl=self.impl)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size=5, stride=2, transposed={self.transposed}, "
                f"bias={self.bias is not None}, act={self.act!r}, alpha={self.alpha}, eager={self.eager}")
