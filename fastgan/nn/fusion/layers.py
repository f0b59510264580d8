"""The modules fastgan.fuse puts in a model: fused Linear / Conv / ConvTranspose layers and the marker left where an
absorbed activation (or scale, or clamp) module was.

A fused layer is the *same object* as the user's layer with its class swapped for a subclass whose forward runs the
GEMM / convolution without the bias and then one fastgan.bias_act (bias + activation + gain + clamp). Swapping the
class keeps everything the object holds: the Parameter objects (optimisers keep working), their registration order
(named_parameters, optimiser state by index), the state_dict keys, buffers, forward pre-hooks and state-dict hooks,
and isinstance(layer, nn.Linear). Only layers whose class does not override forward are fused (a subclass with its
own forward may compute something else).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...backend import linear_act_native
from ...ops.bias_act import bias_act
from ..layers import torch_act

__all__ = ["Epilogue", "FusedAway", "FusedLayer", "STOCK_LAYERS", "fused_class", "stock_base"]


@dataclass(frozen=True)
class Epilogue:
    """What a fused layer applies after its GEMM: clamp(act(h + bias) * gain, -clamp, clamp) on backend impl (None:
    the backend in force when it runs)."""

    act: str
    alpha: float
    gain: float
    clamp: float | None
    impl: str | None

    def __str__(self) -> str:
        return (f"bias_act(act={self.act!r}, alpha={self.alpha:g}, gain={self.gain:g}, clamp={self.clamp}, "
                f"impl={self.impl!r})")


# stock layer class -> (spatial dims (None: Linear), the functional transposed convolution (None: not transposed))
STOCK_LAYERS: dict[type, tuple[int | None, object]] = {
    nn.Linear: (None, None),
    nn.Conv1d: (1, None),
    nn.Conv2d: (2, None),
    nn.Conv3d: (3, None),
    nn.ConvTranspose1d: (1, F.conv_transpose1d),
    nn.ConvTranspose2d: (2, F.conv_transpose2d),
    nn.ConvTranspose3d: (3, F.conv_transpose3d),
}


def stock_base(module: nn.Module) -> type | None:
    """The stock layer class `module` is (or derives from without overriding forward), else None."""
    for base in STOCK_LAYERS:
        if isinstance(module, base):
            return base if type(module).forward is base.forward else None
    return None


class FusedLayer:
    """Mixin of the fused layers: forward = GEMM / conv without the bias, then fastgan.bias_act."""

    fastgan_epilogue: Epilogue

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        nd, conv_t = STOCK_LAYERS[self._fastgan_base]
        if output_size is not None and conv_t is None:
            raise TypeError(f"{self._fastgan_base.__name__}.forward() takes no output_size")
        ep = self.fastgan_epilogue
        if nd is None:
            if linear_act_native(ep.impl, input, ep.act, ep.gain, ep.clamp):
                return torch_act(F.linear(input, self.weight, self.bias), ep.act, ep.alpha, ep.gain)
            h = F.linear(input, self.weight)
        elif conv_t is None:
            h = self._conv_forward(input, self.weight, None)
        else:  # nn.ConvTranspose*d.forward without the bias (that class allows only zeros padding)
            if self.padding_mode != "zeros":
                raise ValueError(f"Only `zeros` padding mode is supported for {self._fastgan_base.__name__}")
            output_padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size,
                                                  nd, self.dilation)
            h = conv_t(input, self.weight, None, self.stride, self.padding, output_padding, self.groups,
                       self.dilation)
        # the bias runs along the features (Linear: the last dim) or the channels (conv: batched or not)
        dim = -1 if nd is None else -(nd + 1)
        return bias_act(h, self.bias, dim, ep.act, ep.alpha, ep.gain, ep.clamp, impl=ep.impl)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fused={self.fastgan_epilogue}"


def _make(base: type, name: str) -> type:
    return type(name, (FusedLayer, base), {"_fastgan_base": base, "__module__": __name__, "__qualname__": name})


# module-level classes for the stock layers (picklable by name); other bases get a cached class of their own
FusedLinear = _make(nn.Linear, "FusedLinear")
FusedConv1d = _make(nn.Conv1d, "FusedConv1d")
FusedConv2d = _make(nn.Conv2d, "FusedConv2d")
FusedConv3d = _make(nn.Conv3d, "FusedConv3d")
FusedConvTranspose1d = _make(nn.ConvTranspose1d, "FusedConvTranspose1d")
FusedConvTranspose2d = _make(nn.ConvTranspose2d, "FusedConvTranspose2d")
FusedConvTranspose3d = _make(nn.ConvTranspose3d, "FusedConvTranspose3d")
_CLASSES: dict[type, type] = {
    nn.Linear: FusedLinear, nn.Conv1d: FusedConv1d, nn.Conv2d: FusedConv2d, nn.Conv3d: FusedConv3d,
    nn.ConvTranspose1d: FusedConvTranspose1d, nn.ConvTranspose2d: FusedConvTranspose2d,
    nn.ConvTranspose3d: FusedConvTranspose3d,
}


def fused_class(cls: type, base: type) -> type:
    """The fused subclass of layer class `cls` (a stock layer or a subclass of `base` that keeps its forward, e.g. a
    torch.nn.utils.parametrize class)."""
    hit = _CLASSES.get(cls)
    if hit is None:
        hit = type(f"Fused{cls.__name__}", (FusedLayer, cls), {"_fastgan_base": base})
        _CLASSES[cls] = hit
    return hit


class FusedAway(nn.Identity):
    """Where fastgan.fuse removed an activation / scale / clamp module of an nn.Sequential: it now runs inside the
    fused layer `into` (a path relative to the Sequential). Parameter-free, like what it replaced."""

    def __init__(self, into: str, was: str):
        super().__init__()
        self.into, self.was = into, was

    def extra_repr(self) -> str:
        return f"{self.was} fused into [{self.into}]"
