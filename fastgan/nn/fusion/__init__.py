"""fastgan.fuse(model): Linear / Conv layers followed by an activation, in a model fastgan did not write, become the
GEMM or convolution without its bias plus one fused fastgan.bias_act (docs/fuse.md).

    layers.py   the fused layer classes (the user's layer object, class swapped) and the FusedAway marker
    match.py    what is recognised after a layer (activation, scale, clamp; modules and fx calls), exactly
    core.py     fuse(): the walk (nn.Sequential and torch.fx graphs), the checks, the rewrite, the report
"""
from .core import FusedPair, FuseReport, NotFused, fuse
from .layers import Epilogue, FusedAway, FusedLayer

__all__ = ["Epilogue", "FusedAway", "FusedLayer", "FusedPair", "FuseReport", "NotFused", "fuse"]
