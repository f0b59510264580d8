"""Loads the compiled extension fastgan._C once. Importing it runs the C++ op registrations (torch.ops.fastgan.*).

A missing or broken extension is recorded, never retried or rebuilt: backend selection reads `error()`.
"""
from __future__ import annotations

import importlib

_state: dict = {}


def load():
    """Returns the fastgan._C module, or None if it cannot be imported (see error())."""
    if "module" not in _state:
        import torch  # noqa: F401  (loads libc10/libtorch, which fastgan._C links against)

        try:
            _state["module"] = importlib.import_module("fastgan._C")
            _state["error"] = None
        except ImportError as e:  # not built, or built against another torch
            _state["module"] = None
            _state["error"] = (f"fastgan._C could not be imported ({e}); build it with "
                               "`pip install --no-build-isolation -e .`")
    return _state["module"]


def error() -> str | None:
    load()
    return _state["error"]


def build_info() -> dict:
    m = load()
    if m is None:
        return {"built": False, "error": error(), "cuda": False, "cuda_archs": "", "openmp": False, "cpu_arch": ""}
    return {"built": True, "error": None, **m.build_info()}
