from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..activations import get_act
from ..backend import act_native
from ..ops.bias_act import bias_act
from ..ops.reference import activation


def _alpha_of(act: str, alpha: float | None) -> float:
    return get_act(act).default_alpha if alpha is None else float(alpha)


def torch_act(x: torch.Tensor, act: str, alpha: float | None = None, gain: float = 1.0) -> torch.Tensor:
    """The activation as eager torch ops (what a user writes by hand): the eager twins' non-linearity."""
    if act == "lrelu":
        x = F.leaky_relu(x, _alpha_of(act, alpha))
    elif act == "relu":
        x = F.relu(x)
    elif act == "tanh":
        x = torch.tanh(x)
    elif act == "sigmoid":
        x = torch.sigmoid(x)
    elif act != "linear":
        x = activation(x, act, _alpha_of(act, alpha))
    return x if gain == 1.0 else x * gain


class BiasAct(nn.Module):
    """A learnable bias (optional) followed by the fused activation, gain and clamp.

    BiasAct(channels, act="lrelu") on a (N, C, ...) tensor computes fastgan.bias_act(x, self.bias, dim, act, ...).
    channels=None: no bias; then relu / lrelu at gain 1 without a clamp run as torch's activation on CPU tensors under
    the auto backend (fastgan.backend.act_native: nothing to fuse, torch's kernel measured faster).
    """

    def __init__(self, channels: int | None = None, act: str = "linear", alpha: float | None = None,
                 gain: float | None = None, clamp=None, dim: int = 1, bias_init: float = 0.0, impl: str | None = None):
        super().__init__()
        get_act(act)
        self.act, self.alpha, self.gain, self.clamp, self.dim, self.impl = act, alpha, gain, clamp, dim, impl
        if channels is not None:
            if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
                raise ValueError(f"channels: expected a positive int or None, got {channels!r}")
            self.bias = nn.Parameter(torch.full([channels], float(bias_init)))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if act_native(self.impl, x, self.bias, self.act, self.alpha, self.gain, self.clamp):
            return torch_act(x, self.act, self.alpha)  # nothing to fuse: torch's kernel (fastgan.backend.act_native)
        return bias_act(x, self.bias, self.dim, self.act, self.alpha, self.gain, self.clamp, impl=self.impl)

    def extra_repr(self) -> str:
        c = None if self.bias is None else self.bias.shape[0]
        return (f"channels={c}, act={self.act!r}, alpha={self.alpha}, gain={self.gain}, clamp={self.clamp}, "
                f"dim={self.dim}")
