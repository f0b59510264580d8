"""Gradients with respect to inputs only, with fastgan's weight gradients skipped (StyleGAN2's conv2d_gradfix idea).

    grads = fastgan.ops.input_grads(d_out.sum(), points, create_graph=True)   # a gradient penalty's inner gradient

Built-in torch ops skip the gradients nobody asked for by themselves; fastgan's ops are custom autograd nodes, which
the engine asks for every input's gradient, so they would compute their weight and bias gradients (half the GEMMs of
a joint_linear backward) only to have them dropped. `input_grads` runs torch.autograd.grad and marks its graph task:
a fastgan op's backward asks `weight_grads_skipped()` and returns None for its weights while that task runs.

The mark is the autograd engine's graph-task id, recorded by an identity node placed on every output, whose backward
runs before any other node of the task. It follows the task to whatever thread executes it — CPU backward runs on the
calling thread, CUDA backward on the engine's device threads — and no other backward, on this thread or another,
sees it (a thread-local flag would miss the device threads; a process-wide one would strip weight gradients from an
unrelated backward running concurrently).
"""
from __future__ import annotations

from typing import Sequence

import torch

from .. import _ext

__all__ = ["input_grads", "weight_grads_skipped"]

_tasks: set[int] = set()  # graph tasks that want input gradients only (set operations are atomic under the GIL)


def _py_skipped() -> bool:
    return bool(_tasks) and torch._C._current_graph_task_id() in _tasks


# The marks live in C++ when the extension is built, where the C++ autograd kernels (csrc/autograd.cpp) read them;
# the Python ones (Triton ops) read the same marks through these functions.
_C = _ext.load()
_mark, _unmark = (_C.mark_input_grads_task, _C.unmark_input_grads_task) if _C is not None else \
    (_tasks.add, _tasks.discard)
_skipped = _C.weight_grads_skipped if _C is not None else _py_skipped


def weight_grads_skipped() -> bool:
    """True in the backward of a graph task started by input_grads: fastgan ops then skip their weight gradients."""
    return _skipped()


class _MarkTask(torch.autograd.Function):
    """Identity; its backward records the id of the graph task running it."""

    @staticmethod
    def forward(ctx, t, ids):
        ctx.ids = ids
        return t.view_as(t)

    @staticmethod
    def backward(ctx, g):
        tid = torch._C._current_graph_task_id()
        ctx.ids.append(tid)
        _mark(tid)
        return g, None


def input_grads(outputs, inputs, grad_outputs=None, skip_weights: bool = True, **kwargs) -> tuple:
    """torch.autograd.grad(outputs, inputs, grad_outputs, **kwargs) during which fastgan ops compute no gradients for
    their weights (skip_weights=False: plain torch.autograd.grad). The results are the same either way."""
    if not skip_weights:
        return torch.autograd.grad(outputs, inputs, grad_outputs, **kwargs)
    single = isinstance(outputs, torch.Tensor)
    outs: Sequence[torch.Tensor] = (outputs,) if single else tuple(outputs)
    ids: list[int] = []
    marked = tuple(_MarkTask.apply(o, ids) if o.requires_grad else o for o in outs)
    try:
        return torch.autograd.grad(marked[0] if single else marked, inputs, grad_outputs, **kwargs)
    finally:
        for tid in ids:
            _unmark(tid)
