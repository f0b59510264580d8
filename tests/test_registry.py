"""The op registry (fastgan/ops/registry.py): every C++ op belongs to one declared op, the Triton ops have the C++
ops' schemas, and the registry's own errors are clear."""
import pytest
import torch
from conftest import IMPL_DEVICE, impl_params

import fastgan
from fastgan import backend
from fastgan.ops import registry


def _cpp_ops() -> set:
    return {n.split("::", 1)[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith("fastgan::")}


def _schema(ns: str, kernel: str) -> str:
    return str(getattr(getattr(torch.ops, ns), kernel).default._schema).removeprefix(f"{ns}::")


def test_every_cpp_op_belongs_to_one_declared_op():
    declared = [k for op in registry.OPS.values() for k in op.kernels]
    assert len(declared) == len(set(declared)), "a kernel is declared by two ops"
    assert set(declared) == _cpp_ops()
    for op in registry.OPS.values():
        assert set(op.fakes) == set(op.kernels), f"{op.name}: a C++ op without a fake kernel (torch.compile)"
        assert {"reference", "cpp"} <= op.backends


@pytest.mark.parametrize("impl", impl_params(("triton",)))
@pytest.mark.parametrize("name", sorted(registry.OPS))
def test_triton_schemas_agree_with_the_cpp_schemas(name, impl):
    op = registry.get(name)
    assert op.namespace("triton") is torch.ops.fastgan_triton  # defines the Triton ops on first use
    for kernel in op.kernels:
        # a Python custom op's int is a SymInt (torch's inference rule; it takes the C++ op's int64 values alike)
        assert _schema("fastgan_triton", kernel).replace("SymInt ", "int ") == _schema("fastgan", kernel)


@pytest.mark.parametrize("impl", impl_params(("cpp", "triton")))
@pytest.mark.parametrize("name", sorted(registry.OPS))
def test_run_resolves_like_the_backend_rule(name, impl):
    op = registry.get(name)
    assert op.resolve(impl, IMPL_DEVICE[impl]) == impl
    assert op.resolve("reference", "cpu") == "reference"


def test_registry_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="name: expected one of 'bias_act'"):
        registry.get("bias_ac")
    with pytest.raises(ValueError, match="declared twice"):
        registry.declare("bias_act", kernels=("bias_act",), backends=("reference",), reference=None, fakes={},
                         autograd=None)
    with pytest.raises(ValueError, match="backends: expected a subset"):
        registry.declare("new_op", kernels=(), backends=("reference", "opencl"), reference=None, fakes={},
                         autograd=None)
    assert "new_op" not in registry.OPS
    with pytest.raises(ValueError, match="backend: expected 'cpp', 'cuda' or 'triton'"):
        registry.get("bias_act").namespace("reference")


def test_public_names_do_not_shadow_modules():
    """fastgan.ops.<name> is one thing: every submodule name there is the submodule (no public function hides it),
    and the same holds for fastgan itself. One stem per op (docs/design.md): op X's module is fastgan.ops.X, its
    function the top-level fastgan.X, defined there."""
    import importlib
    import pkgutil
    import types

    for pkg in (fastgan, fastgan.ops, fastgan.nn, importlib.import_module("fastgan.train")):
        for m in pkgutil.iter_modules(pkg.__path__):
            if hasattr(pkg, m.name):
                assert getattr(pkg, m.name) is importlib.import_module(f"{pkg.__name__}.{m.name}"), \
                    f"{pkg.__name__}.{m.name} is shadowed"
    for name in registry.OPS:
        mod = fastgan.ops.module(name)
        assert isinstance(getattr(fastgan.ops, name), types.ModuleType) and getattr(fastgan.ops, name) is mod
        assert getattr(fastgan, name) is getattr(mod, name) and name in fastgan.__all__
        assert mod.OP is registry.OPS[name]  # the module declares the op of its name
    with pytest.raises(ValueError, match="name: expected an op of fastgan.ops.OPS"):
        fastgan.ops.module("mmd")


def test_backends_are_what_the_op_runs_on():
    assert registry.backends("kernel_sum") == frozenset({"reference", "cpp", "triton", "cuda"})
    assert set(backend.AUTO_CUDA) == set(registry.OPS)
