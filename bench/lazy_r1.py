"""The time of a training iteration with R1 on every step of D vs lazy R1 (--r1-every K), interleaved in one process.

    python -m bench.lazy_r1 --model gan --data mnist5k --steps 200 --block 20 --every 1,16,0 [--two-forward]

Every arm is its own Trainer at the recipe's defaults with extra r1 = the data's gamma (1 on mnist5k) and r1_every =
K (K = 0: R1 off); the arms take blocks of --block iterations in turn (A, B, C, A, B, C, ...) until each has run
--steps, so a change in the machine's load touches every arm alike. --two-forward adds the old R1 step (D's loss
forward, then gradient_penalty's own forward over the real batch) as an arm, for the one-forward change itself.
Prints per arm: the median and the mean of the blocks' ms per iteration, and the total. The first block of every arm
is a warm-up (not counted).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def _arms(args):
    from fastgan.penalties import gradient_penalty
    from fastgan.train import Trainer, config_for

    arms = {}
    for k in [int(s) for s in args.every.split(",")]:
        extra = {"r1": args.gamma, "r1_every": k} if k else {"r1": 0.0}
        arms[f"r1 every {k}" if k else "r1 off"] = Trainer(config_for(args.model, data=args.data, steps=args.steps,
                                                                      seed=args.seed, progress=False,
                                                                      eval_at_end=False, extra=extra))
    if args.two_forward:
        t = Trainer(config_for(args.model, data=args.data, steps=args.steps, seed=args.seed, progress=False,
                               eval_at_end=False, extra={"r1": args.gamma}))

        def two_forward(ctx, real, i=0, critic=None, r=t.recipe):  # the R1 step before the one-forward change
            D = r.nets["D"] if critic is None else critic
            return D(*real), gradient_penalty(D, real if len(real) > 1 else real[0], kind="r1", weight=args.gamma,
                                              scaler=ctx.scaler, fused=False if r.kw["eager"] else None)

        t.recipe.real_logits = two_forward
        arms["r1 every 1, two forwards (old)"] = t
    return arms


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gan")
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--block", type=int, default=20)
    p.add_argument("--every", default="1,16", help="the arms' K (0: R1 off)")
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--two-forward", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from fastgan.train.recipes import StepContext

    arms = _arms(args)
    times = {name: [] for name in arms}
    for t in arms.values():
        t.recipe.train(True)
    rounds = -(-args.steps // args.block) + 1  # + the warm-up block
    for r in range(rounds):
        for name, t in arms.items():
            t0 = time.perf_counter()
            for _ in range(args.block):
                ctx = StepContext(opts=t.opts, scaler=t.scaler, step=t.step)
                t.recipe.step(ctx, t.next_batch, t.gen)
                t.step += 1
            dt = (time.perf_counter() - t0) / args.block
            if r:
                times[name].append(dt)
    print(f"{args.model} on {args.data}, {torch.get_num_threads()} threads, blocks of {args.block} iterations "
          f"interleaved, {rounds - 1} blocks per arm after one warm-up block")
    print("| arm | ms / iteration, median of blocks | mean | min | max |\n|---|---|---|---|---|")
    for name, ts in times.items():
        ms = [1e3 * x for x in ts]
        print(f"| {name} | {statistics.median(ms):.1f} | {statistics.mean(ms):.1f} | {min(ms):.1f} | {max(ms):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
