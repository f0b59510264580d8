"""The GPU check's first stage (bench/gpu.sh): a yes / no for every op x GPU backend and one training step per recipe
family on each backend, in well under its time limit, so the one GPU call answers "does it run" before anything
deeper. On a CPU (the dry run) the same code runs the cpp backend and Triton under the interpreter.

    python -m bench.gpu_smoke [--device cuda|cpu] [--out smoke.json]

Per op and backend (bias_act twice: lrelu, the hot path, whose second derivative is 0, and swish), at one
small shape in fp32 (TF32 off): the forward, the input gradients (backward) and the
gradient of the squared gradient norm (double backward, as a gradient penalty takes it) against the op's
pure-PyTorch reference on the same device, to the test suite's fp32 tolerance (relative 1e-5, absolute 1e-5 times
the largest expected magnitude). Per recipe family (fastgan.train.recipes' modules) and backend: one training
iteration of a tiny model whose losses come back finite. The results file is rewritten after every item, so a kill
keeps what finished; exit status 1 if any answer is no.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

TOL = 1e-5  # the suite's fp32 tolerance (tests/conftest.py TOL)
# one recipe per family, chosen to reach every op: bigan (joint_linear, bias_act, R1 double backward), wgan-gp (the
# fused penalty), mmdgan (kernel_sum), improved (minibatch discrimination; the same family as mmdgan)
RECIPES = {"adversarial": ("bigan",), "critic": ("wgan-gp",), "moments": ("mmdgan", "improved"),
           "autoencoding": ("wae-mmd",), "energy": ("began",), "info": ("infogan",)}
TINY = dict(hidden=16, z_dim=4, batch_size=32, progress=False, eval_at_end=False)


def _op_cases(device):
    """{op name: (inputs needing gradients, function of (inputs, impl))} at one small shape each."""
    import fastgan

    g = torch.Generator(device="cpu").manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g).to(device).requires_grad_(True)

    x, b = r(64, 96), r(96)
    jx, jz, jw, ju, jb = r(64, 80), r(64, 16), r(96, 80), r(96, 16), r(96)
    mx, my = r(64, 8), r(48, 8)
    md = r(40, 6, 3)
    return {
        "bias_act": ((x, b), lambda t, impl: fastgan.bias_act(*t, act="lrelu", clamp=256, impl=impl)),
        "bias_act/swish": ((x, b), lambda t, impl: fastgan.bias_act(*t, act="swish", impl=impl)),  # k'' != 0
        "joint_linear": ((jx, jz, jw, ju, jb), lambda t, impl: fastgan.joint_linear(*t, act="lrelu", impl=impl)),
        "kernel_sum": ((mx, my), lambda t, impl: fastgan.mmd2(*t, bandwidths=(1.0, 2.0, 4.0), impl=impl)),
        "minibatch_discrimination": ((md,), lambda t, impl: fastgan.minibatch_discrimination(*t, impl=impl)),
    }


def _three_orders(fn, inputs, impl):
    """(output, input gradients, gradients of the squared gradient norm) of fn at `inputs`."""
    out = fn(inputs, impl)
    w = torch.linspace(-1.0, 1.0, out.numel(), device=out.device, dtype=out.dtype).reshape(out.shape)
    grads = torch.autograd.grad((out * w).sum(), inputs, create_graph=True)
    penalty = sum((gr * gr).sum() for gr in grads)
    if not penalty.requires_grad:  # a piecewise-linear op (lrelu): the second derivative is 0 everywhere
        return [out.detach()], [gr.detach() for gr in grads], [torch.zeros_like(t) for t in inputs]
    grads2 = torch.autograd.grad(penalty, inputs, allow_unused=True)
    grads2 = [torch.zeros_like(t) if gr is None else gr for t, gr in zip(inputs, grads2)]
    return [out.detach()], [gr.detach() for gr in grads], grads2


def _max_err(got, want) -> float:
    """The largest error in units of the tolerance (<= 1: within it)."""
    worst = 0.0
    for a, e in zip(got, want):
        if a.shape != e.shape:
            return float("inf")
        scale = max(1.0, e.abs().max().item()) if e.numel() else 1.0
        err = ((a - e).abs() / (TOL * scale + TOL * e.abs())).max().item() if e.numel() else 0.0
        worst = max(worst, err if err == err else float("inf"))  # NaN -> inf
    return worst


def check_op(name, inputs, fn, impl):
    ref = _three_orders(fn, inputs, "reference")
    got = _three_orders(fn, inputs, impl)
    res = {}
    for stage, a, e in zip(("fwd", "bwd", "bwd2"), got, ref):
        err = _max_err(a, e)
        res[stage] = {"ok": err <= 1.0, "err_over_tol": round(err, 4)}
    return res


def check_recipe(model, impl, device):
    from fastgan.train import Trainer, config_for

    t = Trainer(config_for(model, **TINY, backend=impl, steps=2, device=device))
    t.recipe.train(True)
    ctx = t.context()
    logs = {}
    for _ in range(2):  # the first iteration compiles / initialises lazily; the second is a plain step
        logs = t.recipe.step(ctx, t.next_batch, t.gen)
        t.recipe.end_iteration(ctx)
    bad = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float, torch.Tensor))
           and not torch.isfinite(torch.as_tensor(v, dtype=torch.float64)).all()}
    return {"ok": not bad, **({"non_finite": bad} if bad else {})}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="smoke.json")
    args = p.parse_args(argv)
    import fastgan
    from fastgan import backend

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    impls = ("cuda", "triton") if args.device == "cuda" else ("cpp", "triton")
    out = Path(args.out)
    report = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
              "torch": torch.__version__, "backends": {i: backend.why_not(i, args.device) or "runs" for i in impls},
              "ops": {}, "recipes": {}, "seconds": {}}

    def save():
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, out)

    def item(section, key, impl, fn):
        t0 = time.perf_counter()
        try:
            if backend.why_not(impl, args.device):
                res = {"ok": False, "error": f"cannot run: {backend.why_not(impl, args.device)}"}
            else:
                res = fn()
        except Exception as e:  # noqa: BLE001 - the answer is "no", with the reason
            res = {"ok": False, "error": f"{type(e).__name__}: {str(e)[:400]}",
                   "where": traceback.format_exc(limit=-3)[-600:]}
        if args.device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        ok = res.get("ok", all(v["ok"] for v in res.values() if isinstance(v, dict)))
        report[section].setdefault(key, {})[impl] = res
        report["seconds"][f"{section}/{key}/{impl}"] = round(dt, 2)
        save()
        detail = " ".join(f"{k}={'yes' if v['ok'] else 'NO'}" for k, v in res.items()
                          if isinstance(v, dict) and "ok" in v)
        print(f"{section:8s} {key:26s} {impl:7s} {'yes' if ok else 'NO ':3s} {dt:6.1f} s  {detail}"
              f"{'  ' + res['error'] if 'error' in res else ''}", flush=True)
        return ok

    ok = True
    print(f"fastgan {fastgan.__version__} on {report['device']}: {report['backends']}", flush=True)
    for impl in impls:  # every op on one backend, then the next: a failing family does not hide the other
        for name, (inputs, fn) in _op_cases(args.device).items():
            ok &= item("ops", name, impl, lambda: check_op(name, inputs, fn, impl))
    for impl in impls:
        for family, models in RECIPES.items():
            for model in models:
                ok &= item("recipes", f"{family}/{model}", impl, lambda: check_recipe(model, impl, args.device))
    report["all_ok"] = bool(ok)
    save()
    print(f"smoke: {'every answer yes' if ok else 'some answers NO'} -> {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
