"""Training iterations of the main job, eager twins against fastgan's fused nets, fp32 and bf16, interleaved in one
process (issue 29): what `fastgan train MODEL --data DATA [--precision P] [--backend B]` runs per iteration.

    python -m bench.ab_steps --models gan,bigan --data mnist5k --precisions fp32,bf16 --steps 100 --block 10
    python -m bench.ab_steps --models bigan --precisions bf16 --profile 20     # + torch.profiler's top ops per arm

Every arm is a Trainer at the recipe's defaults on DATA (mnist5k: R1 on the cross-entropy D) with one backend and
one precision; the iteration is the trainer's own (StepContext, autocast over the whole iteration for bf16). Prints
per (model, precision) the arms' ms per iteration and fastgan's speed against eager (> 1: faster).
"""
from __future__ import annotations

import argparse

import torch

from .interleave import interleaved, one_iteration, table, threads_note


def _arm(model, data, precision, backend, steps, seed):
    from fastgan.train import Trainer, config_for

    t = Trainer(config_for(model, data=data, steps=steps, seed=seed, backend=backend, precision=precision,
                           progress=False, eval_at_end=False))
    t.recipe.train(True)
    half = {"bf16": torch.bfloat16}.get(precision)
    return one_iteration(t, torch.autocast("cpu", dtype=half) if half is not None else None)


def _profile(run, iterations: int, rows: int = 15) -> str:
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iterations):
            run()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="gan,bigan")
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--backends", default="eager,auto")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--block", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", type=int, default=0, metavar="N", help="profile N iterations of each arm instead")
    args = p.parse_args(argv)
    backends = args.backends.split(",")
    for model in args.models.split(","):
        for precision in args.precisions.split(","):
            arms = {f"{model} {precision} {b}": _arm(model, args.data, precision, b, 10**6, args.seed)
                    for b in backends}
            if args.profile:
                for name, run in arms.items():
                    print(f"\n## {name}: {args.profile} iterations\n{_profile(run, args.profile)}")
                continue
            times = interleaved(arms, args.steps, args.block)
            print(f"\n{model} on {args.data}, {precision}: {threads_note(args.steps, args.block)}")
            print(table(times, baseline=f"{model} {precision} {backends[0]}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
