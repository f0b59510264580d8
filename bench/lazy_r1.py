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

from .interleave import interleaved, one_iteration, table, threads_note


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
    arms = _arms(args)
    for t in arms.values():
        t.recipe.train(True)
    times = interleaved({name: one_iteration(t) for name, t in arms.items()}, args.steps, args.block)
    print(f"{args.model} on {args.data}, {threads_note(args.steps, args.block)}")
    print(table(times))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
