"""Argument checks shared by every op's Python entry point (the C++ side is csrc/include/fastgan/checks.h).

Every message names the argument and what was expected. Checks run before dispatch, so every backend, the
reference included, rejects bad input the same way.
"""
from __future__ import annotations

import math
import numbers

import torch

FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def tensor(t, arg: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{arg}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{arg}: expected a floating tensor of dtype float64, float32, float16 or bfloat16, "
                        f"got {t.dtype}")
    return t


def like(t, arg: str, ref: torch.Tensor, ref_arg: str, cast: torch.dtype | None = None) -> torch.Tensor:
    """t: a tensor on ref's device of ref's dtype. cast: the autocast dtype an op's Autocast kernel will cast both
    to (floating tensors but fp64, autocast's rule): then the dtypes after that cast must agree."""
    tensor(t, arg)
    if t.device != ref.device:
        raise ValueError(f"{arg}: expected a tensor on {ref.device} like {ref_arg}, got one on {t.device}")
    if autocast_target(t, cast) != autocast_target(ref, cast):
        raise TypeError(f"{arg}: expected dtype {ref.dtype} like {ref_arg}, got {t.dtype}")
    return t


def autocast_target(t: torch.Tensor, cast: torch.dtype | None) -> torch.dtype:
    """The dtype autocast's cast to `cast` gives t (None: no cast): floating tensors but fp64 take `cast`."""
    if cast is None or not t.is_floating_point() or t.dtype == torch.float64:
        return t.dtype
    return cast


def dim(d, x: torch.Tensor, arg: str = "dim", x_arg: str = "x") -> int:
    if isinstance(d, bool) or not isinstance(d, numbers.Integral):
        raise TypeError(f"{arg}: expected an int, got {type(d).__name__}")
    nd = x.dim()
    if nd == 0:
        raise ValueError(f"{arg}: {x_arg} is 0-dimensional and has no dimension {d}")
    if not -nd <= d < nd:
        raise ValueError(f"{arg}: expected a dimension of {x_arg} in [{-nd}, {nd - 1}], got {d}")
    return int(d) % nd


def positive_int(v, arg: str) -> int:
    """v, an int >= 1 (not a bool), else ValueError naming arg."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{arg}: expected a positive int, got {v!r}")
    return v


def finite(v, arg: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{arg}: expected a number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{arg}: expected a finite number, got {v}")
    return v


def clamp(c) -> float:
    """None or 'none' -> -1.0 (no clamp); a number >= 0 -> float."""
    if c is None or (isinstance(c, str) and c.lower() == "none"):
        return -1.0
    if isinstance(c, str):
        raise ValueError(f"clamp: expected a number >= 0, None or 'none', got {c!r}")
    v = finite(c, "clamp")
    if v < 0:
        raise ValueError(f"clamp: expected a number >= 0, None or 'none', got {v}")
    return v


def autocast_dtype(t) -> "torch.dtype | None":
    """The autocast dtype in force for t's device type, or None (autocast off, or t not a tensor)."""
    if not isinstance(t, torch.Tensor):
        return None
    dev = t.device.type
    if dev not in ("cpu", "cuda") or not torch.is_autocast_enabled(dev):
        return None
    return torch.get_autocast_dtype(dev)


def autocast_promote(x, y):
    """Under autocast (x's device), two floating tensors of different dtypes cast to the wider one (autocast's
    'promote' policy: an op mixing an fp32 batch with a half-precision network output); otherwise unchanged."""
    if (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.dtype != y.dtype
            and x.is_floating_point() and y.is_floating_point() and autocast_dtype(x) is not None):
        dt = torch.promote_types(x.dtype, y.dtype)
        return x.to(dt), y.to(dt)
    return x, y


def on_device(device: torch.device, *tensors) -> bool:
    """Every argument a tensor on `device` or None: the arguments an op's C++ kernel can be left to check itself (a
    tensor on another device must be refused before dispatch, which would take a meta tensor's kernel)."""
    return all(t is None or (isinstance(t, torch.Tensor) and t.device == device) for t in tensors)


def plain_scalars(*values) -> bool:
    """Every value a str, float, int (not bool) or None: hashable arguments whose checks can be memoised."""
    return all(v is None or type(v) in (str, float, int) for v in values)
