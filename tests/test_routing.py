"""Every backend name works for every op and every recipe (issue 16 A/B): on the CPU by the resolution rule — what a
recipe asks of each op, resolved as on a GPU where every kernel family runs — and for real on a GPU (one iteration of
every recipe on each backend, under torch.cuda.set_sync_debug_mode("error"): no host sync in a training step)."""

import pytest
import torch

import fastgan
from fastgan import backend
from fastgan.ops import registry
from fastgan.train import RECIPES, Trainer, config_for, evaluation

TINY = dict(hidden=16, z_dim=4, batch_size=32, progress=False, eval_at_end=False)


def implemented(op: str) -> frozenset:
    return registry.backends(op)


@pytest.fixture
def every_backend_runs(monkeypatch):
    """A GPU machine where every kernel family runs (the resolution rule only; nothing is launched)."""
    backend.reset_cache()
    monkeypatch.setattr(backend, "why_not", lambda impl, device_type: None)
    yield
    backend.reset_cache()


@pytest.mark.parametrize("op", sorted(registry.OPS))
def test_every_op_has_both_kernel_families_and_an_auto_entry(op, every_backend_runs):
    assert {"cuda", "triton", "cpp", "reference"} <= implemented(op)
    assert op in backend.AUTO_CUDA
    for impl in ("reference", "cpp", "triton", "cuda"):
        dev = "cpu" if impl == "cpp" else "cuda"
        assert backend.resolve(impl, dev, op, implemented(op)) == impl
    assert backend.resolve("auto", "cuda", op, implemented(op)) == backend.AUTO_CUDA[op].first
    assert backend.resolve("auto", "cpu", op, implemented(op)) == "cpp"


def test_the_auto_table_names_only_real_ops_and_says_what_is_measured():
    assert set(backend.AUTO_CUDA) == set(registry.OPS)
    for op, choice in backend.AUTO_CUDA.items():
        assert choice.first in ("cuda", "triton") and choice.why, op
    table = fastgan.backend_info()["auto_cuda_table"]
    assert all("measured" in row for row in table.values())


def test_auto_on_cuda_falls_back_to_the_other_family_with_one_warning(monkeypatch):
    backend.reset_cache()
    monkeypatch.setattr(backend, "why_not", lambda impl, dev: "simulated" if impl == "cuda" else None)
    op = next(op for op, c in backend.AUTO_CUDA.items() if c.first == "cuda")
    with pytest.warns(RuntimeWarning, match=r"'cuda' backend cannot run on cuda tensors \(simulated\); falling back"):
        assert backend.resolve("auto", "cuda", op, implemented(op)) == "triton"
    backend.reset_cache()


@pytest.mark.parametrize("cap, archs, ok", [
    ((9, 0), "80;90", True), ((8, 6), "80;90", True), ((8, 9), "80", True), ((10, 0), "80;90", True),
    ((12, 0), "90", True), ((7, 5), "80;90", False), ((8, 6), "90", False), ((9, 0), "", False),
])
def test_cuda_arch_check_names_the_device_and_the_build(cap, archs, ok):
    reason = backend.arch_mismatch(cap, archs)
    assert (reason is None) == ok
    if not ok and archs:
        assert f"this device is {cap[0]}.{cap[1]}" in reason and "rebuild with FASTGAN_CUDA_ARCHS" in reason


def _spy_resolve(monkeypatch, seen: list):
    real = backend.resolve

    def spy(impl, device, op, implemented_=frozenset(backend.IMPLS)):
        seen.append((impl if impl is not None else backend.current_backend(), op, implemented_))
        return "reference"  # run the step on the CPU; the rule is checked afterwards

    monkeypatch.setattr(backend, "resolve", spy)
    monkeypatch.setattr(registry, "resolve", spy)  # the one place ops resolve their backend
    return real


@pytest.mark.parametrize("name", ["cuda", "triton", "eager"])
@pytest.mark.parametrize("model", sorted(RECIPES))
def test_every_recipe_accepts_every_gpu_backend(model, name, monkeypatch, every_backend_runs):
    """One iteration and the evaluation with --backend NAME: every fastgan op the recipe's nets, losses and own metrics
    call is asked for NAME (the run's use_backend scope reaches them all, no impl threaded by hand) and NAME resolves
    for it on CUDA tensors (before issue 16, gmmn / mmdgan / improved asked MMD and minibatch discrimination for cuda,
    which they did not have: the first step on a GPU raised). 'eager': the twins run no fastgan op and the ops outside
    them (MMD, minibatch discrimination) are asked for their reference."""
    seen: list = []
    real = _spy_resolve(monkeypatch, seen)
    t = Trainer(config_for(model, **TINY, backend=name, steps=1))
    t.run()
    # the evaluation: the recipe's nets and own metrics on the run's backend; the sample metrics (KID, FD), which run
    # on the backend in force outside the run, left out
    monkeypatch.setattr(evaluation.ev, "generation_metrics", lambda *a: {})
    monkeypatch.setattr(evaluation.ev, "get_classifier", lambda *a: None)
    evaluation.evaluate(t.recipe, t.split)
    evaluation.representation(t.recipe, t.split)  # also called alone: Table 1's untrained rows (train/table1.py)
    want = "reference" if name == "eager" else name
    assert seen or name == "eager", f"{model} called no fastgan op"
    for impl, op, impls in seen:
        assert impl == want, f"{model}: {op} was asked for {impl!r}, not {want!r}"
        assert real(impl, "cuda", op, impls) == want


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@gpu
@pytest.mark.cuda
@pytest.mark.parametrize("name", ["cuda", "triton"])
@pytest.mark.parametrize("model", sorted(RECIPES))
def test_one_iteration_on_the_gpu_without_a_host_sync(model, name):
    """A training iteration (batch, forward, gradients, optimiser steps) issues no host sync: fp32 (an fp16
    GradScaler's step reads found_inf on the host by torch's design). The first iteration warms up (Triton compiles,
    lazy initialisations); the second runs under sync debug mode "error"."""
    t = Trainer(config_for(model, **TINY, backend=name, steps=2, device="cuda"))
    t.recipe.train(True)
    ctx = t.context()
    for debug in (0, "error"):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode(debug)
        try:
            t.recipe.step(ctx, t.next_batch, t.gen)
            t.recipe.end_iteration(ctx)
        finally:
            torch.cuda.set_sync_debug_mode(0)
