"""One declaration per op: the registry of fastgan's ops.

Each op module states its op once, with `declare(...)`: its public name, its backends, its reference, the fake
kernels and autograd of its C++ ops, and its Triton launchers. Everything else is written here, once for all ops:

- resolution: `op.resolve(impl, device)` (fastgan.backend.resolve with the op's backends) and `op.run(impl, device,
  *args)`, which calls the reference or the op's first kernel with the schema's arguments;
- the namespaces: `op.namespace(backend)` is torch.ops.fastgan (the C++ ops: cpp and cuda, the dispatcher picks
  the device) or torch.ops.fastgan_triton (the Triton ops, defined on first use, so importing fastgan never imports
  triton);
- initialisation: the C++ ops get their fake kernels and autograd when the op is declared (if fastgan._C loaded),
  unless their autograd is C++ (`cpp_autograd`: csrc/autograd.cpp, for the ops an iteration calls dozens of times,
  whose Python autograd cost more than their kernels); the Triton ops are defined with the C++ ops' schemas
  (csrc/registration.cpp is the one statement of every schema) and get the Python autograd on first use;
- the end of the chain: the last derivative an op implements raises NotImplementedError when differentiated again.

Bench and tests ask the registry which ops exist and which backends each has: `OPS`, `get(name)`, `backends(name)`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Optional, Tuple

import torch

from .. import _ext
from ..backend import IMPLS, resolve

__all__ = ["Op", "OPS", "declare", "get", "backends", "schema"]

CPP_NS, TRITON_NS = "fastgan", "fastgan_triton"


@dataclass(eq=False)
class Op:
    """An op of fastgan: see declare()."""

    name: str
    backends: frozenset
    kernels: tuple
    reference: Callable
    fakes: Mapping[str, Callable]
    autograd: Callable[[object, str], None]
    triton: Callable[[], Mapping[str, Callable]] | None
    last: str | None
    cpp_autograd: bool = False
    _ns: dict = field(default_factory=dict, repr=False)

    def resolve(self, impl: str | None, device) -> str:
        """The concrete backend that runs this op on `device` for `impl` (fastgan.backend.resolve)."""
        return resolve(impl, device, self.name, self.backends)

    def namespace(self, backend: str):
        """The torch.ops namespace holding this op's kernels on a resolved, runnable backend (not 'reference')."""
        ns = self._ns.get(backend)
        if ns is None:
            if backend == "triton":
                self._define_triton()
                ns = getattr(torch.ops, TRITON_NS)
            elif backend in ("cpp", "cuda"):  # resolve() has checked that the extension is loaded
                ns = getattr(torch.ops, CPP_NS)
            else:
                raise ValueError(f"backend: expected 'cpp', 'cuda' or 'triton', got {backend!r}")
            self._ns[backend] = ns
        return ns

    def triton_module(self):
        """The op's Triton kernels, kernels/<name>.py (fastgan._triton.<name>: the op's stem; imports triton). Scripts
        that walk the kernels (.ci/triton_check.py, bench/static_report.py) iterate OPS through this, and read each
        module's `static_variants()` for its compile-check variants."""
        if "triton" not in self.backends:
            raise ValueError(f"{self.name}: has no Triton backend")
        import importlib  # function-level: importing fastgan never imports triton (docs/design.md)

        return importlib.import_module(f"fastgan._triton.{self.name}")

    def run(self, impl: str | None, device, *args):
        """Resolves `impl` and runs the op's first kernel (or its reference) on the schema's arguments."""
        return self.call(self.resolve(impl, device), *args)

    def call(self, backend: str, *args):
        """Runs the op's first kernel on a backend resolve() returned (or its reference)."""
        if backend == "reference":
            return self.reference(*args)
        return getattr(self.namespace(backend), self.kernels[0])(*args)

    def _register(self, ns_name: str) -> None:
        if ns_name == CPP_NS:  # a triton_op traces its own fake
            for kernel, fake in self.fakes.items():
                torch.library.register_fake(f"{CPP_NS}::{kernel}")(fake)
            if self.cpp_autograd:
                missing = [k for k in self.kernels
                           if not torch._C._dispatch_has_kernel_for_dispatch_key(f"{CPP_NS}::{k}", "Autograd")]
                if missing:
                    raise RuntimeError(f"fastgan.{self.name}: declared with C++ autograd, but fastgan._C registers "
                                       f"none for {missing} (an extension built from older sources: rebuild it)")
                return
        self.autograd(getattr(torch.ops, ns_name), ns_name)
        if self.last is not None:
            _end_of_chain(f"{ns_name}::{self.last}", self.name)

    def _define_triton(self) -> None:
        if self.triton is None or "triton" not in self.backends:
            raise RuntimeError(f"fastgan.{self.name} has no Triton kernels")
        from torch.library import triton_op

        launchers = self.triton()
        if set(launchers) != set(self.kernels):
            raise AssertionError(f"fastgan.{self.name}: Triton launchers {sorted(launchers)} != kernels "
                                 f"{sorted(self.kernels)}")
        for kernel in self.kernels:
            triton_op(f"{TRITON_NS}::{kernel}", _with_schema(launchers[kernel], kernel), mutates_args=())
        self._register(TRITON_NS)


OPS: dict[str, Op] = {}


def declare(name: str, *, kernels, backends, reference, fakes, autograd, triton=None, last=None,
            cpp_autograd=False) -> Op:
    """Declares op `name` (the public function's name: backend resolution, fastgan.backend.AUTO_CUDA, errors).

    kernels: the names of its C++ ops in csrc/registration.cpp, the one it runs first (`run`) first; the Triton ops
        have the same names and schemas in fastgan_triton::.
    backends: the backends it has, among 'reference', 'cpp', 'cuda', 'triton'.
    reference: the pure-PyTorch spec, called by `run` with the first kernel's arguments.
    fakes: kernel name -> its fake (meta) function, for torch.compile and opcheck (C++ ops).
    autograd: autograd(ns, ns_name) registers the autograd of the kernels in namespace ns (the same for both,
        or for the Triton ops only with cpp_autograd).
    triton: a function returning kernel name -> launcher (called with the schema's arguments); it imports the
        Triton kernels, so it runs on first use only.
    last: the kernel whose derivative is not implemented (differentiating it raises NotImplementedError).
    cpp_autograd: the C++ ops' autograd is registered in C++ (csrc/autograd.cpp), with the same structure.
    """
    if name in OPS:
        raise ValueError(f"name: op {name!r} is declared twice")
    unknown = set(backends) - set(IMPLS)
    if unknown or "auto" in backends:
        raise ValueError(f"backends: expected a subset of 'reference', 'cpp', 'cuda', 'triton', got {backends!r}")
    op = Op(name, frozenset(backends), tuple(kernels), reference, dict(fakes), autograd, triton, last, cpp_autograd)
    OPS[name] = op
    if _ext.load() is not None:
        op._register(CPP_NS)
    return op


def get(name: str) -> Op:
    try:
        return OPS[name]
    except KeyError:
        raise ValueError(f"name: expected one of {', '.join(map(repr, OPS))}, got {name!r}") from None


def backends(name: str) -> frozenset:
    """The backends op `name` has ('reference', 'cpp', 'cuda', 'triton')."""
    return get(name).backends


def schema(kernel: str) -> torch._C.FunctionSchema:
    """The schema of C++ op fastgan::`kernel` (csrc/registration.cpp): the Triton op's schema too."""
    err = _ext.error()
    if err:
        raise RuntimeError(f"the Triton ops take their schemas from the C++ ops, and {err}")
    return getattr(getattr(torch.ops, CPP_NS), kernel).default._schema


_TYPES = {"Tensor": torch.Tensor, "Optional": Optional, "List": List, "Tuple": Tuple, "int": int, "float": float,
          "bool": bool, "str": str}


def _with_schema(fn: Callable, kernel: str) -> Callable:
    """`fn` with the annotated signature of C++ op `kernel`, from which triton_op infers the same schema (torch 2.13
    ignores triton_op's `schema=`): the schema is written once, in C++."""
    s = schema(kernel)
    params = [inspect.Parameter(a.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=eval(str(a.type), _TYPES),
                                default=a.default_value if a.has_default_value() else inspect.Parameter.empty)
              for a in s.arguments]  # (defaults too: a schema's trailing defaulted arguments, e.g. kernel_sum's degree)
    rets = [eval(str(r.type), _TYPES) for r in s.returns]
    fn.__signature__ = inspect.Signature(params, return_annotation=rets[0] if len(rets) == 1 else Tuple[tuple(rets)])
    return fn


def _end_of_chain(qualname: str, op_name: str) -> None:
    message = (f"fastgan.{op_name}: third-order derivatives are not implemented ({qualname} has no backward); use "
               "impl='reference' if you need them")

    def backward(ctx, *grads):
        raise NotImplementedError(message)

    torch.library.register_autograd(qualname, backward, setup_context=lambda ctx, inputs, output: None)
