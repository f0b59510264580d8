from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.joint_linear import check_act, joint_linear
from .layers import torch_act


class _JointLinearBase(nn.Module):
    def __init__(self, in_features: int, z_features: int, out_features: int, bias: bool = True, act: str = "lrelu",
                 alpha: float = 0.2, gain: float = 1.0, impl: str | None = None):
        super().__init__()
        for name, v in (("in_features", in_features), ("z_features", z_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "z_features" else 1):
                raise ValueError(f"{name}: expected a {'non-negative' if name == 'z_features' else 'positive'} int, "
                                 f"got {v!r}")
        self.in_features, self.z_features, self.out_features = in_features, z_features, out_features
        self.alpha, self.gain = check_act(act, alpha, gain)
        self.act, self.impl = act, impl
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.z_weight = nn.Parameter(torch.empty(out_features, z_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's initialisation over the joint fan-in (in_features + z_features)."""
        fan_in = self.in_features + self.z_features
        bound = 1 / math.sqrt(fan_in)
        for w in (self.weight, self.z_weight):
            nn.init.uniform_(w, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, z_features={self.z_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, act={self.act!r}, alpha={self.alpha}, gain={self.gain}")


class JointLinear(_JointLinearBase):
    """act(W x + U z + b) * gain in one fused op: the layer of a BiGAN discriminator D(x, z) that injects the latent
    z at every layer. State-dict keys: weight (out, in), z_weight (out, z), bias (out); interchangeable with
    EagerJointLinear."""

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return joint_linear(x, z, self.weight, self.z_weight, self.bias, self.act, self.alpha, self.gain,
                            impl=self.impl)


class EagerJointLinear(_JointLinearBase):
    """The eager twin of JointLinear (two F.linear, an add, the activation, the gain): same parameters, same
    state-dict keys, for comparison and as the baseline of the benchmarks."""

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = F.linear(x, self.weight, self.bias) + F.linear(z, self.z_weight)
        return torch_act(h, self.act, self.alpha, self.gain)
