"""The Triton launchers under symbolic sizes (issue 28, finding 6).

Under torch.compile with dynamic shapes, and in opcheck's test_aot_dispatch_dynamic on CUDA tensors, a triton_op's
launcher runs on fake tensors whose sizes are SymInts. Its tile configuration then branches on them and computes
constexprs (tile sizes, next_power_of_2, grids) that Triton needs as concrete numbers. Those opcheck cases never ran
(the interpreter runs kernels eagerly, so the interpreter tests skip them), so this test drives every launcher of
kernels/ under a FakeTensorMode with a ShapeEnv (every size dynamic) and records each launch instead of running it:
every constexpr and every grid entry must be a plain Python number (a SymInt there is what fails on a GPU).
"""
import math

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily
from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

import fastgan  # noqa: F401  (registers the ops; fastgan._triton below)
from fastgan.activations import ACTIVATIONS

triton = pytest.importorskip("triton")
from fastgan._triton import bias_act, joint_linear, kernel_sum, minibatch_discrimination  # noqa: E402
from fastgan.ops import OPS  # noqa: E402

MODULES = tuple(op.triton_module() for op in OPS.values() if "triton" in op.backends)


class _Recorder:
    """Stands in for wrap_triton: records (kernel name, grid, positional args, keyword args) of each launch."""

    def __init__(self):
        self.launches = []

    def __call__(self, kernel):
        name = getattr(getattr(kernel, "fn", kernel), "__name__", str(kernel))

        def at(grid):
            def launch(*args, **kwargs):
                self.launches.append((name, grid, args, kwargs))
            return launch

        class _Indexable:
            def __getitem__(self, grid):
                return at(grid)

        return _Indexable()


@pytest.fixture
def recorder(monkeypatch):
    rec = _Recorder()
    for mod in MODULES:
        monkeypatch.setattr(mod, "wrap_triton", rec)
    return rec


def _plain(v) -> bool:
    return type(v) in (int, float, bool, str) or v is None


def _symbolic(mode, *shape):
    """A fake tensor of this shape with every size a fresh symbol (made from a real one outside the fake mode)."""
    with unset_fake_temporarily():
        t = torch.randn(*shape)
    ctx = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.DYNAMIC] * t.dim())
    f = mode.from_tensor(t, symbolic_context=ctx)
    assert all(isinstance(n, torch.SymInt) for n in f.shape), f.shape
    return f


def _cases():
    lrelu = ACTIVATIONS["lrelu"].id
    yield "bias_act forward", lambda f: bias_act.forward(f(6, 5, 7), f(5), 1, lrelu, 0.2,
                                                         math.sqrt(2), -1.0)
    yield "bias_act backward", lambda f: bias_act.backward(None, f(6, 5, 7), f(6, 5, 7),
                                                           f(5), 1, lrelu, 0.2, math.sqrt(2), -1.0,
                                                           False, True)
    yield "joint_linear", lambda f: joint_linear.matmul_act(f(9, 20), f(20, 11),
                                                            f(9, 3), f(3, 11),
                                                            f(11), lrelu, 0.2, 1.0)
    yield "minibatch_discrimination forward", lambda f: minibatch_discrimination.forward(f(7, 3, 4), None, True)
    yield "minibatch_discrimination backward", lambda f: minibatch_discrimination.backward(f(7, 3),
                                                                       f(7, 3, 4),
                                                                       f(5, 3, 4))
    yield "mmd kernel_sum", lambda f: kernel_sum.kernel_sum(f(9, 6), f(7, 6), "gaussian",
                                                     [1.0, 2.0], [1.0, 1.0], True, True, True)
    yield "mmd kernel_sum_backward2", lambda f: kernel_sum.kernel_sum_backward2(
        f(9, 6), None, f(9, 6), None, "imq", [1.0], [1.0], True, False)


@pytest.mark.parametrize("name,call", list(_cases()), ids=[c[0] for c in _cases()])
def test_launch_constants_are_concrete_under_symbolic_sizes(recorder, name, call):
    mode = FakeTensorMode(shape_env=ShapeEnv())
    with mode:
        call(lambda *shape: _symbolic(mode, *shape))
    assert recorder.launches, f"{name}: no launch recorded"
    for kernel, grid, args, kwargs in recorder.launches:
        grid = grid if isinstance(grid, tuple) else (grid,)
        assert all(_plain(g) for g in grid), f"{name}: {kernel}'s grid is not concrete: {str(grid)[:300]}"
        bad = {k: str(v)[:100] for k, v in kwargs.items() if not _plain(v)}
        assert not bad, f"{name}: {kernel}'s constexprs / launch options are not concrete: {bad}"
        sym = [i for i, a in enumerate(args) if isinstance(a, (torch.SymInt, torch.SymFloat))]
        assert not sym, f"{name}: {kernel}'s scalar arguments {sym} are symbolic"
