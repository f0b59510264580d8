"""Which implementation of an op runs (docs/design.md, "Backends").

`impl` is one of "auto" | "reference" | "cpp" | "triton" | "cuda", chosen per call (`impl=`), per scope
(`with fastgan.use_backend("triton"):`) or per process (environment variable FASTGAN_BACKEND); the default is auto.

- An implementation that was asked for and cannot run raises RuntimeError with the reason.
- auto picks cpp on CPU tensors and, on CUDA tensors, per op from one table (AUTO_CUDA: the CUDA or the Triton kernel,
  each entry marked measured or not yet); if its choice cannot run it falls back to the next one (the other kernel
  family, at last the pure-PyTorch reference) and warns once per cause.
- cuda runs where fastgan._C was built with CUDA kernels for the device: SASS for every built arch (a device of the
  same major and at least that minor runs it) and PTX for the newest (newer devices JIT it).
- Triton runs on CUDA tensors, and on CPU tensors only under the interpreter (TRITON_INTERPRET=1 set before
  triton is imported; that is how CI tests the Triton kernels).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import os
import warnings
from typing import NamedTuple

import torch

from . import _ext
from .activations import get_act

IMPLS = ("auto", "reference", "cpp", "triton", "cuda")
_scoped: contextvars.ContextVar[str | None] = contextvars.ContextVar("fastgan_backend", default=None)


class AutoChoice(NamedTuple):
    first: str  # "cuda" | "triton": tried first on CUDA tensors (then the other, then the reference)
    measured: str | None  # where the choice was measured (a bench/results file), None: chosen by reasoning
    why: str


# auto on CUDA tensors, per op (the names ops pass to resolve). bench/gpu.sh measures every op on both kernel families
# at its quick shapes and prints this table from the measurement (bench/results/gpu-auto.md): copy it here.
AUTO_CUDA = {
    "bias_act": AutoChoice("cuda", None, "element-wise and bandwidth-bound: the CUDA kernel's 128-bit vector "
                                         "loads and grid-stride loop; Triton's blocked layout is no faster"),
    "joint_linear": AutoChoice("cuda", None, "two cuBLAS GEMMs (tensor cores, TF32 as torch allows) and the fused "
                                             "bias_act epilogue; the Triton kernel fuses the epilogue into one "
                                             "tl.dot GEMM but cuBLAS is the stronger GEMM"),
    "kernel_sum": AutoChoice("triton", None, "the pair dot products as tl.dot tiles (IEEE fp32) with the kernel "
                                             "values in registers; the CUDA kernel computes them with SIMT FMAs"),
    "minibatch_discrimination": AutoChoice("cuda", None, "an l1 distance per pair and feature (no GEMM): SIMT either "
                                                         "way; the CUDA kernel keeps the reference tile in shared "
                                                         "memory"),
}
_AUTO_CPU = ("cpp", "reference")

# A Linear layer followed by one of these activations (gain 1, no clamp) that auto leaves to torch's own ops on fp32 /
# fp64 CPU tensors outside autocast (issue 29, measured): torch's addmm takes the bias inside the GEMM and its relu /
# leaky_relu kernels are as fast as fastgan's pass, so the fused form (the GEMM without bias, then bias_act) cost
# 3-6 % of an MLP training step (lsgan, the f-GANs, gan; interleaved A/B, python -m bench.ab_steps); tanh (G's output
# layer) joined on 2026-12-07: 128 x 1024 -> 784 forward + backward, interleaved, fused form 0.95x the torch form.
# Under bf16 / fp16 autocast torch's form is not used: fastgan adds the bias in fp32 and rounds once, where addmm
# rounds the half-precision GEMM output with the bias in it (the aae's bf16 gradient fell from cosine >= 0.99 to 0.988
# against fp32's, tests/test_train_amp.py); linear / relu / lrelu run as joint_linear there (linear_route's 'joint').
# Other activations, a gain or a clamp keep the fused pass.
NATIVE_LINEAR_CPU = ("linear", "relu", "lrelu", "tanh")
NATIVE_LINEAR_WHY = ("on fp32 CPU tensors with the auto backend, outside autocast, this pair runs as torch's linear "
                     "(the bias inside the GEMM) and activation: measured faster there (issue 29)")
# The activations joint_linear's in-place epilogue takes (linear_act_joint): derivable from the output's sign.
JOINT_LINEAR_ACTS = ("linear", "relu", "lrelu")
# A bias-free activation (BiasAct(None, ...), e.g. after a batch norm) that auto leaves to torch on CPU tensors in any
# dtype: relu / leaky_relu at gain 1 without a clamp have nothing to fuse, and torch's kernels are the same arithmetic
# (one comparison, one multiply, one rounding; their derivatives read the sign alone), measured faster per call
# (128 x 1024 fp32 forward 16 vs 24 us, bf16 backward 26 vs 41 us) and at the step: bf16 ae-l2 on mnist5k 0.959x eager
# with fastgan's pass there, interleaved (issue 29, 2026-12-07).
NATIVE_ACT_CPU = ("relu", "lrelu")


def _auto_here(impl: str | None, x: torch.Tensor) -> bool:
    """x a CPU tensor and the auto backend in force (impl None: the one in force): where the torch-form routes below
    apply. An explicit backend always runs fastgan's ops."""
    return x.device.type == "cpu" and (current_backend() if impl is None else impl) == "auto"


def linear_route(impl: str | None, x: torch.Tensor, act: str, gain: float, clamp) -> str:
    """How a Linear on input x followed by act(.) * gain (clamp: None or 'none' for no clamp) runs under backend
    `impl` (None: the backend in force), decided once per call:

    'torch'  torch's F.linear (bias inside the GEMM) + activation: auto, NATIVE_LINEAR_CPU at gain 1 without a clamp,
             on an fp32 / fp64 CPU tensor outside autocast, or on any CPU tensor with grad mode off;
    'joint'  fastgan's joint_linear with an empty z range (one GEMM, bias and activation in place, one C++ autograd
             node deriving from the output's sign): auto, a 2-D CPU tensor under autocast or in half precision,
             JOINT_LINEAR_ACTS, gain != 0, no clamp. The fused form's numerics (the same half-precision GEMM output,
             then bias and activation in fp32, rounded once; the forward is bit-identical) and as fast or faster
             (issue 29, bf16 on mnist5k, interleaved, against eager: lsgan 0.985, 0.990, 0.977x where the fused form
             read 0.953, 0.967, 0.957x; gan 0.959x against 0.960x). Under no_grad at gain 1 (e.g. G's forward for
             the critic's steps) there is no backward to serve and torch's form runs instead: wgan bf16 on mnist5k,
             interleaved against eager, 0.987 / 1.000 / 1.004x where joint read 0.974 / 0.979 / 0.983x (2026-12-07);
    'fused'  otherwise: F.linear without the bias, then fastgan.bias_act.
    """
    if act not in NATIVE_LINEAR_CPU or not (clamp is None or clamp == "none") or not _auto_here(impl, x):
        return "fused"
    if torch.is_autocast_enabled("cpu") or x.dtype in (torch.bfloat16, torch.float16):
        if gain == 1.0 and not torch.is_grad_enabled():
            return "torch"
        return "joint" if act in JOINT_LINEAR_ACTS and gain != 0.0 and x.dim() == 2 else "fused"
    return "torch" if gain == 1.0 and x.dtype in (torch.float32, torch.float64) else "fused"


def linear_act_native(impl: str | None, x: torch.Tensor, act: str, gain: float, clamp) -> bool:
    """linear_route(...) == 'torch'."""
    return linear_route(impl, x, act, gain, clamp) == "torch"


def linear_act_joint(impl: str | None, x: torch.Tensor, act: str, gain: float, clamp) -> bool:
    """linear_route(...) == 'joint'."""
    return linear_route(impl, x, act, gain, clamp) == "joint"


def act_native(impl: str | None, x: torch.Tensor, bias, act: str, alpha, gain, clamp) -> bool:
    """True when bias_act(x, bias, act, alpha, gain, clamp) runs as torch's activation under backend `impl` (None: the
    one in force): no bias, auto, x a CPU tensor, NATIVE_ACT_CPU (lrelu with alpha >= 0) at gain 1 (alpha / gain None:
    the activation's defaults -- relu's and lrelu's gain is sqrt(2)) without a clamp. An explicit backend always runs
    fastgan's op."""
    if bias is not None or act not in NATIVE_ACT_CPU or not (clamp is None or clamp == "none"):
        return False
    spec = get_act(act)
    if (spec.default_gain if gain is None else gain) != 1.0 or (spec.default_alpha if alpha is None else alpha) < 0:
        return False
    return x.is_floating_point() and _auto_here(impl, x)


_warned: set = set()
_resolved: dict = {}


def _check_impl(impl, arg="impl") -> str:
    if not isinstance(impl, str) or impl not in IMPLS:
        raise ValueError(f"{arg}: expected one of {', '.join(map(repr, IMPLS))}, got {impl!r}")
    return impl


@torch.compiler.assume_constant_result
def current_backend() -> str:
    """The backend in force here: the innermost use_backend scope, else FASTGAN_BACKEND, else 'auto'.

    Under torch.compile it is read once, when the graph is traced, and its value is baked into the graph (a
    ContextVar read would break the graph at every fastgan op): a compiled function keeps the backend that was in
    force when it was compiled; pass impl= explicitly, or compile again, to change it."""
    v = _scoped.get()
    if v is not None:
        return v
    return _check_impl(os.environ.get("FASTGAN_BACKEND", "auto") or "auto", "FASTGAN_BACKEND")


@contextlib.contextmanager
def use_backend(impl: str):
    """Runs the enclosed fastgan ops with `impl` unless a call passes its own impl=."""
    token = _scoped.set(_check_impl(impl))
    try:
        yield
    finally:
        _scoped.reset(token)


def triton_interpreter() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.lru_cache(maxsize=None)
def _triton_error() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    try:
        importlib.import_module("fastgan._triton")
    except Exception as e:  # noqa: BLE001 - reported to the user as the reason
        return f"the Triton kernels could not be imported ({type(e).__name__}: {e})"
    return None


@functools.lru_cache(maxsize=None)
def _interpreter_error() -> str | None:
    """Why Triton's interpreter cannot run fastgan's kernels here, or None -- probed once with a one-program kernel
    whose loop bound is a kernel argument, as most of fastgan's are. Triton 3.6's interpreter takes such a bound
    through int() of a 1-element array, which NumPy 2.4 refuses ("only 0-dimensional arrays can be converted to
    Python scalars"; issue 28; Triton 3.9's interpreter does not). A GPU compiles the kernels: not affected."""
    import numpy
    import triton
    import triton.language as tl

    @triton.jit
    def _loop_probe(out_ptr, n):
        acc = tl.zeros([1], dtype=tl.float32)
        for _ in range(0, n):
            acc += 1.0
        tl.store(out_ptr + tl.arange(0, 1), acc)

    out = torch.zeros(1)
    try:
        _loop_probe[(1,)](out, 3)
    except Exception as e:  # noqa: BLE001 - the reason, for the user
        hint = " (pip install 'numpy<2.4')" if "0-dimensional" in str(e) else ""
        return (f"Triton {triton.__version__}'s interpreter cannot run a loop over a kernel argument with NumPy "
                f"{numpy.__version__}{hint}: {type(e).__name__}: {e}")
    if out.item() != 3.0:
        return f"Triton {triton.__version__}'s interpreter miscounted a 3-step loop: {out.item()}"
    return None


def why_not(impl: str, device_type: str) -> str | None:
    """None if `impl` can run on tensors of `device_type`, else the reason it cannot."""
    if impl == "reference":
        return None
    if impl == "cpp":
        if device_type != "cpu":
            return f"the cpp backend runs on CPU tensors, got {device_type} tensors (use impl='cuda' or 'triton')"
        return _ext.error()
    if impl == "cuda":
        if device_type != "cuda":
            return f"the cuda backend runs on CUDA tensors, got {device_type} tensors"
        if _ext.error():
            return _ext.error()
        info = _ext.build_info()
        if not info["cuda"]:
            return ("fastgan._C was built without CUDA kernels (torch without CUDA, or nvcc not found, or "
                    "FASTGAN_CUDA=0)")
        if torch.cuda.is_available():
            return arch_mismatch(torch.cuda.get_device_capability(), info["cuda_archs"])
        return None
    if impl == "triton":
        err = _triton_error() or _ext.error()  # the Triton ops take their schemas from the C++ ops
        if err:
            return err
        if device_type == "cuda":
            return None
        if device_type == "cpu":
            if not triton_interpreter():
                return "Triton runs on CPU tensors only under TRITON_INTERPRET=1"
            return _interpreter_error()
        return f"Triton does not run on {device_type} tensors"
    raise ValueError(f"impl: expected one of {', '.join(map(repr, IMPLS))}, got {impl!r}")


def _archs(archs: str) -> list[tuple[int, int]]:
    out = []
    for a in archs.replace(",", ";").split(";"):
        a = a.strip().replace(".", "").rstrip("a")  # "90", "9.0", "90a"
        if a.isdigit() and len(a) >= 2:
            out.append((int(a[:-1]), int(a[-1])))
    return sorted(out)


def arch_mismatch(capability: tuple[int, int], archs: str) -> str | None:
    """None if kernels built for `archs` ("80;90": SASS for each, PTX for the newest) run on a device of compute
    capability `capability`, else why not, naming both."""
    built = _archs(archs)
    if not built:
        return f"fastgan._C names no CUDA archs it was built for ({archs!r})"
    major, minor = capability
    if any(a[0] == major and a[1] <= minor for a in built) or tuple(capability) >= built[-1]:
        return None
    return (f"fastgan._C has CUDA kernels for compute capability {', '.join(f'{a}.{b}' for a, b in built)} (PTX for "
            f"{built[-1][0]}.{built[-1][1]}), this device is {major}.{minor}: rebuild with "
            f"FASTGAN_CUDA_ARCHS=\"{major}{minor}\"")


_ALL = frozenset(IMPLS)


def auto_order(device_type: str, op: str) -> tuple[str, ...]:
    """The candidates auto tries for `op` on tensors of `device_type`, in order."""
    if device_type == "cpu":
        return _AUTO_CPU
    if device_type == "cuda":
        first = AUTO_CUDA[op].first if op in AUTO_CUDA else "cuda"
        return (first, "triton" if first == "cuda" else "cuda", "reference")
    return ("reference",)


def resolve(impl: str | None, device: torch.device | str, op: str, implemented: frozenset = _ALL) -> str:
    """The concrete backend ('reference' | 'cpp' | 'cuda' | 'triton') that runs `op` on `device`.

    `implemented`: the backends `op` has (an op without Triton kernels yet leaves 'triton' out): asking for another
    raises; auto skips it.
    """
    impl = current_backend() if impl is None else _check_impl(impl)
    device_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    key = (impl, device_type, implemented)
    hit = _resolved.get(key)
    if hit is not None:
        return hit
    if impl != "auto":
        reason = why_not(impl, device_type)
        if reason is None and impl not in implemented:
            reason = f"fastgan.{op} has no {impl} implementation (it has: {', '.join(sorted(implemented))})"
        if reason:
            raise RuntimeError(f"fastgan.{op}: impl={impl!r} cannot run on {device_type} tensors: {reason}")
        _resolved[key] = impl
        return impl
    order = [c for c in auto_order(device_type, op) if c in implemented]
    first_reason = why_not(order[0], device_type)
    for cand in order:
        reason = first_reason if cand == order[0] else why_not(cand, device_type)
        if reason is None:
            if cand != order[0] and (device_type, order[0], first_reason) not in _warned:
                _warned.add((device_type, order[0], first_reason))
                warnings.warn(
                    f"fastgan: the {order[0]!r} backend cannot run on {device_type} tensors ({first_reason}); "
                    f"falling back to {cand!r}",
                    RuntimeWarning,
                    stacklevel=3,
                )
            _resolved[key] = cand
            return cand
    raise AssertionError("unreachable: the reference backend always runs")


def reset_cache() -> None:
    """Forgets resolved choices and warnings (tests; after changing TRITON_INTERPRET)."""
    _resolved.clear()
    _warned.clear()
    _triton_error.cache_clear()
    _interpreter_error.cache_clear()


def backend_info() -> dict:
    """What was built and what auto picks per device type."""
    info = {
        "torch": torch.__version__,
        "extension": _ext.build_info(),
        "triton": {"available": _triton_error() is None, "error": _triton_error(),
                   "interpreter": triton_interpreter()},
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "backend": current_backend(),
        "auto": {},
    }
    info["auto"]["cpu"] = next(c for c in _AUTO_CPU if why_not(c, "cpu") is None)
    info["auto"]["cuda"] = None
    if torch.cuda.is_available():
        info["auto"]["cuda"] = {op: next(c for c in auto_order("cuda", op) if why_not(c, "cuda") is None)
                                for op in AUTO_CUDA}
    info["auto_cuda_table"] = {op: {"first": c.first, "measured": c.measured or "not yet (chosen by reasoning)"}
                               for op, c in AUTO_CUDA.items()}
    return info
