"""Backend selection (docs/design.md, "Backends"): explicit requests raise with the reason, auto falls back once
with one warning."""
import os
import subprocess
import sys
import warnings

import pytest
import torch

import fastgan
from fastgan import _ext, backend


@pytest.fixture
def fresh_backend():
    backend.reset_cache()
    yield
    backend.reset_cache()


def test_scope_and_env(fresh_backend, monkeypatch):
    monkeypatch.delenv("FASTGAN_BACKEND", raising=False)
    assert fastgan.current_backend() == "auto"
    with fastgan.use_backend("reference"):
        assert fastgan.current_backend() == "reference"
        with fastgan.use_backend("cpp"):
            assert fastgan.current_backend() == "cpp"
        assert fastgan.current_backend() == "reference"
    monkeypatch.setenv("FASTGAN_BACKEND", "reference")
    assert fastgan.current_backend() == "reference"
    monkeypatch.setenv("FASTGAN_BACKEND", "fast")
    with pytest.raises(ValueError, match="FASTGAN_BACKEND: expected one of"):
        fastgan.current_backend()
    with pytest.raises(ValueError, match="impl: expected one of"):
        with fastgan.use_backend("fast"):
            pass


def test_scope_selects_the_implementation(fresh_backend):
    x = torch.randn(3, 4)
    with fastgan.use_backend("reference"):
        y = fastgan.bias_act(x, None, act="tanh")
        assert y.grad_fn is None or "fastgan" not in type(y.grad_fn).__name__.lower()
    assert backend.resolve(None, "cpu", "op") == "cpp"
    with fastgan.use_backend("reference"):
        assert backend.resolve(None, "cpu", "op") == "reference"
        assert backend.resolve("cpp", "cpu", "op") == "cpp"  # a per-call impl wins over the scope


def test_explicit_request_that_cannot_run_raises(fresh_backend):
    with pytest.raises(RuntimeError, match="impl='cuda' cannot run on cpu tensors: the cuda backend runs on CUDA"):
        fastgan.bias_act(torch.randn(2, 3), impl="cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="impl='cpp' cannot run on cuda tensors"):
            backend.resolve("cpp", "cuda", "bias_act")


def test_triton_on_cpu_needs_the_interpreter(fresh_backend, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    backend.reset_cache()
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        backend.resolve("triton", "cpu", "bias_act")


def test_auto_falls_back_once_with_one_warning(fresh_backend, monkeypatch):
    monkeypatch.setitem(_ext._state, "module", None)
    monkeypatch.setitem(_ext._state, "error", "fastgan._C could not be imported (simulated)")
    x = torch.randn(3, 4)
    with pytest.warns(RuntimeWarning, match=r"'cpp' backend cannot run on cpu tensors \(fastgan._C could not"):
        y = fastgan.bias_act(x, None, act="relu")
    torch.testing.assert_close(y, torch.relu(x) * 2**0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        fastgan.bias_act(x, None, act="relu")
    with pytest.raises(RuntimeError, match=r"impl='cpp' cannot run on cpu tensors: fastgan._C could not"):
        fastgan.bias_act(x, None, act="relu", impl="cpp")


def test_backend_info():
    info = fastgan.backend_info()
    assert info["extension"]["built"] is True and info["extension"]["error"] is None
    assert info["auto"]["cpu"] == "cpp"
    assert set(info) >= {"torch", "extension", "triton", "auto", "backend", "cuda_device"}
    assert isinstance(info["extension"]["cuda_archs"], str)


def test_allocator_tuning_in_a_fresh_process():
    """tune_cpu_allocator changes process-wide malloc settings: check it in a child process."""
    code = (
        "import fastgan, json; before = fastgan.allocator_info(); after = fastgan.tune_cpu_allocator();"
        "print(json.dumps([before, after]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    import json

    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before["tuned"] is False and after["tuned"] is True
    assert after["settings"]["M_MMAP_MAX"] == 0
    assert after["malloc"].startswith("glibc")
    with pytest.raises(ValueError, match="top_pad"):
        fastgan.tune_cpu_allocator(top_pad=-1)


def test_plain_import_loads_the_extension():
    """`import fastgan` as the first import of a process must load fastgan._C (it links against torch's libraries)."""
    code = "import fastgan; import sys; sys.exit(0 if fastgan.backend_info()['extension']['built'] else 1)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_op_without_a_backend_raises_when_asked_and_auto_skips_it(fresh_backend):
    cpp_only = frozenset({"reference", "cpp"})
    with pytest.raises(RuntimeError, match=r"fastgan.some_op has no triton implementation \(it has: cpp, reference\)"):
        backend.resolve("triton", "cpu", "some_op", cpp_only) if backend.triton_interpreter() else \
            backend.resolve("triton", "cuda", "some_op", cpp_only)
    assert backend.resolve("auto", "cpu", "some_op", frozenset({"reference"})) == "reference"


def test_the_backend_in_force_does_not_break_a_compiled_graph():
    """impl=None reads current_backend() (a ContextVar): under torch.compile it is read once at tracing, so a fastgan
    op in a compiled function costs no graph break, inside a use_backend scope or not."""
    b = torch.randn(8, dtype=torch.float64)

    def f(x):
        return fastgan.bias_act(x, b, act="lrelu") * 2

    x = torch.randn(4, 8, dtype=torch.float64)
    torch._dynamo.reset()
    assert torch._dynamo.explain(f)(x).graph_break_count == 0
    with fastgan.use_backend("cpp"):
        torch._dynamo.reset()
        assert torch._dynamo.explain(f)(x).graph_break_count == 0
        compiled = torch.compile(f, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(x), f(x), rtol=1e-12, atol=1e-12)
    torch._dynamo.reset()
