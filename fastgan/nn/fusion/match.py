"""What fastgan.fuse recognises after a Linear / Conv layer: activation, scale and clamp modules of an nn.Sequential
and the same as calls in a torch.fx graph, each mapped to the bias_act setting that computes exactly the same thing.

A Step is one recognised element; a Refused is an activation fastgan has, in a setting it does not compute the same
way (the reason says why); None: not an element of a fusable chain at all.

Equalities relied on (tests/test_fuse.py checks each against the torch module in fp64):
    ReLU, Tanh, Sigmoid, SELU          the same functions (fastgan's SELU constants are torch's)
    LeakyReLU(s)                       lrelu with alpha = s, gain 1 (fastgan's default gain is sqrt 2)
    ELU(a)                             elu with alpha = a
    SiLU                               swish with gain 1
    Softplus(beta=1, threshold>=20)    softplus: torch is linear above the threshold, fastgan is the exact log(1+e^x);
                                       they differ there by at most log1p(exp(-20)) = 2.1e-9 (below fp32 resolution)
    Hardtanh(-c, c)                    the clamp: both pass no gradient at the boundary (torch.clamp would pass it, so a
                                       torch.clamp call is left as it is)
    x * c (c a Python number > 0)      the gain
"""
from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import fx, nn

from .layers import FusedAway

__all__ = ["Refused", "Step", "module_step", "node_step", "SOFTPLUS_MIN_THRESHOLD"]

SOFTPLUS_MIN_THRESHOLD = 20.0  # torch's default; log1p(exp(-20)) = 2.1e-9 is the most fastgan's exact softplus differs


@dataclass(frozen=True)
class Step:
    kind: str  # "identity" | "act" | "scale" | "clamp"
    what: str  # for the report: "LeakyReLU(negative_slope=0.2)", "F.leaky_relu", ...
    act: str = "linear"
    alpha: float = 0.0
    value: float = 0.0  # the scale's factor, the clamp's bound
    note: str | None = None


class Refused(NamedTuple):
    what: str
    reason: str


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        return None
    return float(v)


def _softplus(what: str, beta, threshold):
    beta, threshold = _num(beta), _num(threshold)
    if beta != 1.0:
        return Refused(what, f"Softplus beta={beta}: fastgan's softplus is log(1 + e^x) (beta 1)")
    if threshold is None or threshold < SOFTPLUS_MIN_THRESHOLD:
        dev = math.log1p(math.exp(-threshold)) if threshold is not None else float("nan")
        return Refused(what, f"Softplus threshold={threshold}: torch is linear above it and differs from the exact "
                             f"log(1 + e^x) fastgan computes by up to {dev:.2g} (fused only for threshold >= 20)")
    dev = math.log1p(math.exp(-threshold))
    return Step("act", what, "softplus", note=f"torch's Softplus is linear above {threshold:g}; fastgan computes "
                                              f"log(1+e^x) exactly: they differ by <= {dev:.2g} there")


def _clamp(what: str, lo, hi):
    lo, hi = _num(lo), _num(hi)
    if lo is None or hi is None or hi < 0 or lo != -hi:
        return Refused(what, f"Hardtanh({lo}, {hi}): only a symmetric clamp (-c, c) folds into bias_act")
    return Step("clamp", what, value=hi)


def _act(what: str, act: str, alpha: float = 0.0):
    a = _num(alpha)
    if a is None:
        return Refused(what, f"{act}: its slope/alpha {alpha!r} is not a finite number")
    return Step("act", what, act, alpha=a)


_MODULES = {
    nn.ReLU: lambda m: _act("ReLU()", "relu"),
    nn.LeakyReLU: lambda m: _act(f"LeakyReLU(negative_slope={m.negative_slope})", "lrelu", m.negative_slope),
    nn.Tanh: lambda m: _act("Tanh()", "tanh"),
    nn.Sigmoid: lambda m: _act("Sigmoid()", "sigmoid"),
    nn.ELU: lambda m: _act(f"ELU(alpha={m.alpha})", "elu", m.alpha),
    nn.SELU: lambda m: _act("SELU()", "selu"),
    nn.SiLU: lambda m: _act("SiLU()", "swish"),
    nn.Softplus: lambda m: _softplus(f"Softplus(beta={m.beta}, threshold={m.threshold})", m.beta, m.threshold),
    nn.Hardtanh: lambda m: _clamp(f"Hardtanh({m.min_val}, {m.max_val})", m.min_val, m.max_val),
    nn.Identity: lambda m: Step("identity", "Identity()"),
}


# torch activations bias_act does not have: reported (a user would expect them to fuse), left as they are
_UNSUPPORTED = (nn.GELU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.PReLU, nn.RReLU, nn.CELU, nn.Softsign,
                nn.LogSigmoid, nn.Threshold)
# normalisations: between a layer and its activation they separate the bias from the activation (BatchNorm's shift
# plays the bias's part); reported, so that a batch-norm DCGAN's unfused convolutions say why
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)


def module_step(m: nn.Module) -> Step | Refused | None:
    """The chain element module `m` is (a stock activation / Hardtanh / Identity, or a parameter-free module whose
    forward is `x * c`), a Refused, or None."""
    if isinstance(m, FusedAway):
        return None
    if isinstance(m, _UNSUPPORTED):
        return Refused(f"{type(m).__name__}()", "fastgan.bias_act has no such activation")
    if isinstance(m, _NORMS):
        return Refused(f"{type(m).__name__}()", "a normalisation, not an activation: the layer's bias and the "
                       "activation after it are not adjacent (both left as they were)")
    for cls, fn in _MODULES.items():
        if isinstance(m, cls):
            return fn(m) if type(m).forward is cls.forward else None
    return _scale_module(m)


def _scale_module(m: nn.Module) -> Step | None:
    """A user's parameter-free module whose forward traces to exactly `x * c` (c a Python number): a scale."""
    if type(m).__module__.startswith("torch.") or any(True for _ in m.children()) or \
            any(True for _ in m.parameters()) or any(True for _ in m.buffers()):
        return None
    before = dict(vars(m))
    try:
        graph = fx.Tracer().trace(m)
    except Exception:  # untraceable: not a scale we can recognise
        return None
    finally:
        changed = set(before) != set(vars(m)) or any(vars(m)[k] is not v for k, v in before.items())
        if changed:  # its forward wrote to the module while traced: put the attributes back, it is no scale
            vars(m).clear()
            vars(m).update(before)
    if changed:
        return None
    nodes = list(graph.nodes)
    if len(nodes) != 3 or [n.op for n in nodes] != ["placeholder", nodes[1].op, "output"] or \
            nodes[2].args[0] is not nodes[1] or nodes[0].next is not nodes[1]:
        return None
    step = node_step(nodes[1], nodes[0], {})
    if isinstance(step, Step) and step.kind == "scale":
        return Step("scale", f"{type(m).__name__}() (x * {step.value:g})", value=step.value)
    return None


def _bind(node: fx.Node, names: tuple, defaults: tuple):
    """{name: value} of a call's arguments by the function's signature (names[0] the input), or None."""
    args, kwargs = node.args, dict(node.kwargs)
    if len(args) > len(names) or any(k not in names for k in kwargs):
        return None
    out = dict(zip(names, defaults))
    out.update(zip(names, args))
    for k, v in kwargs.items():
        if k in names[:len(args)]:
            return None
        out[k] = v
    return out


# call_function target -> (activation, argument names, defaults); alpha taken from names[1] where it is a slope
_FUNCS = {}
for _fns, _act_name, _names, _defaults in (
    ((F.relu, torch.relu, torch.relu_), "relu", ("input", "inplace"), (None, False)),
    ((F.leaky_relu, F.leaky_relu_), "lrelu", ("input", "negative_slope", "inplace"), (None, 0.01, False)),
    ((F.tanh, torch.tanh, torch.tanh_), "tanh", ("input",), (None,)),
    ((F.sigmoid, torch.sigmoid, torch.sigmoid_), "sigmoid", ("input",), (None,)),
    ((F.elu, F.elu_), "elu", ("input", "alpha", "inplace"), (None, 1.0, False)),
    ((F.selu, torch.selu, torch.selu_), "selu", ("input", "inplace"), (None, False)),
    ((F.silu,), "swish", ("input", "inplace"), (None, False)),
    ((F.softplus,), "softplus", ("input", "beta", "threshold"), (None, 1.0, 20.0)),
    ((F.hardtanh, F.hardtanh_), "clamp", ("input", "min_val", "max_val", "inplace"), (None, -1.0, 1.0, False)),
):
    for _fn in _fns:
        _FUNCS[_fn] = (_act_name, _names, _defaults)
_METHODS = {"relu": "relu", "relu_": "relu", "tanh": "tanh", "tanh_": "tanh", "sigmoid": "sigmoid",
            "sigmoid_": "sigmoid"}


def _name(target) -> str:
    mod = getattr(target, "__module__", "") or ""
    short = "F." if mod.startswith("torch.nn.functional") else "torch." if mod.startswith("torch") else ""
    return short + getattr(target, "__name__", repr(target))


def node_step(node: fx.Node, prev: fx.Node, modules: dict) -> Step | Refused | None:
    """The chain element fx node `node` is when it consumes `prev` (the layer's or the previous element's output)."""
    if node.op == "call_module":
        if node.args != (prev,) or node.kwargs:
            return None
        return module_step(modules[node.target])
    if node.op == "call_method":
        if node.target in _METHODS and node.args == (prev,) and not node.kwargs:
            return Step("act", f"Tensor.{node.target}()", _METHODS[node.target])
        if node.target in ("mul", "mul_") and len(node.args) == 2 and not node.kwargs and node.args[0] is prev:
            c = _num(node.args[1])
            return Step("scale", f"Tensor.{node.target}({c:g})", value=c) if c is not None and c > 0 else None
        return None
    if node.op != "call_function":
        return None
    if node.target in (operator.mul, torch.mul) and len(node.args) == 2 and not node.kwargs:
        a, b = node.args
        c = _num(b) if a is prev else _num(a) if b is prev else None
        return Step("scale", f"* {c:g}", value=c) if c is not None and c > 0 else None
    spec = _FUNCS.get(node.target)
    if spec is None:
        return None
    act, names, defaults = spec
    bound = _bind(node, names, defaults)
    if bound is None or bound["input"] is not prev or any(isinstance(v, fx.Node) for k, v in bound.items()
                                                           if k != "input"):
        return None
    what = _name(node.target)
    if act == "clamp":
        return _clamp(what, bound["min_val"], bound["max_val"])
    if act == "softplus":
        return _softplus(what, bound["beta"], bound["threshold"])
    alpha = bound.get("negative_slope", bound.get("alpha", 0.0))
    return _act(what, act, alpha)
