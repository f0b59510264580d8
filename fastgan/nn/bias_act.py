from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..activations import get_act
from ..backend import act_native
from ..ops.fused_act import bias_act


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
            # nothing to fuse: torch's kernel (fastgan.backend.act_native)
            return F.relu(x) if self.act == "relu" else F.leaky_relu(x, get_act(self.act).default_alpha
                                                                      if self.alpha is None else self.alpha)
        return bias_act(x, self.bias, self.dim, self.act, self.alpha, self.gain, self.clamp, impl=self.impl)

    def extra_repr(self) -> str:
        c = None if self.bias is None else self.bias.shape[0]
        return (f"channels={c}, act={self.act!r}, alpha={self.alpha}, gain={self.gain}, clamp={self.clamp}, "
                f"dim={self.dim}")
