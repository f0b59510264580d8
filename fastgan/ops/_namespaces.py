"""Which op namespace runs a resolved backend: torch.ops.fastgan (the C++ ops: cpp and cuda, the dispatcher picks the
device) or torch.ops.fastgan_triton (the Triton ops, defined and given their autograd on first use, so importing
fastgan never imports triton)."""
from __future__ import annotations

from typing import Callable

import torch


class OpNamespaces:
    """ops(backend) -> the namespace holding an op's implementation on that (resolved, runnable) backend.

    define_triton(): defines the op's fastgan_triton:: ops; register(ns_name, with_fake): gives the ops of a namespace
    their fake kernels (C++ ops only: a triton_op traces its own) and autograd. Both run once, on first use."""

    def __init__(self, define_triton: Callable[[], None], register: Callable[[str, bool], None]):
        self._define_triton, self._register = define_triton, register
        self._cache: dict = {}

    def __call__(self, backend: str):
        ns = self._cache.get(backend)
        if ns is None:
            if backend == "triton":
                self._define_triton()
                self._register("fastgan_triton", False)
                ns = torch.ops.fastgan_triton
            else:  # cpp / cuda: resolve() has checked that the extension is loaded
                ns = torch.ops.fastgan
            self._cache[backend] = ns
        return ns


def end_of_chain(qualname: str, message: str) -> None:
    """Registers the autograd of op `qualname` (the last derivative an op implements) as raising NotImplementedError
    with `message`: differentiating once more fails loudly instead of silently returning no gradient."""

    def backward(ctx, *grads):
        raise NotImplementedError(message)

    torch.library.register_autograd(qualname, backward, setup_context=lambda ctx, inputs, output: None)
