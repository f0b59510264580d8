"""G's moving average (--ema) against the trained G, on the same runs: one training run per (model, seed) at the
recipe's defaults, averages of several half-lives tracked side by side (the average never feeds back into training,
so one run serves every half-life), each evaluated with the same latents (fastgan.train.evaluation, seed = the run's).

    python -m bench.ema_fd --data digits --models gan,bigan --seeds 0,1,2 --kimg 1,10,40 --out runs/ema.json
    python -m bench.ema_fd ... --steps 2500 --decay-start 1 --out runs/ema-2500.json   # = the default run at step
                                                      2500, before its learning rate decays

Prints a Markdown table: classifier FD per seed and mean +- std for the trained G and each half-life.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def run(model: str, data: str, seed: int, kimgs: list, steps: int | None, decay_start: float | None) -> dict:
    from fastgan.train import Trainer, config_for
    from fastgan.train.ema import EMA
    from fastgan.train.evaluation import evaluate

    cfg = config_for(model, data=data, seed=seed, steps=steps, ema=kimgs[0], progress=False, eval_at_end=False,
                     decay_start=decay_start)
    t = Trainer(cfg)
    others = {k: EMA(t.recipe.nets["G"], k * 1000, cfg.ema_rampup, cfg.batch_size) for k in kimgs[1:]}
    first = t.ema.update

    def update(net, step):
        first(net, step)
        for e in others.values():
            e.update(net, step)

    t.ema.update = update
    res = t.run()
    out = {"train_time_s": res["train_time_s"], "raw": evaluate(t.recipe, t.split, seed=seed)}
    for k, e in {kimgs[0]: t.ema, **others}.items():
        out[f"ema{k:g}"] = evaluate(t.recipe, t.split, seed=seed, ema=e)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits")
    p.add_argument("--models", default="gan,bigan")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--kimg", default="1,10,40", help="the half-lives (thousands of images)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--decay-start", type=float, default=None, help="TrainConfig.decay_start (default the recipe's)")
    p.add_argument("--out", required=True, help="a JSON file: every run's results (read back, not rerun)")
    args = p.parse_args(argv)
    kimgs = [float(k) for k in args.kimg.split(",")]
    path = Path(args.out)
    done = json.loads(path.read_text()) if path.exists() else {}
    for model in args.models.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            key = f"{model}/{args.data}/{seed}"
            if key not in done:
                done[key] = run(model, args.data, seed, kimgs, args.steps, args.decay_start)
                path.write_text(json.dumps(done, indent=1))
                print(key, {k: round(v["fd"], 2) for k, v in done[key].items() if isinstance(v, dict)}, flush=True)
    print("| model | G | FD per seed | FD mean ± std |\n|---|---|---|---|")
    for model in args.models.split(","):
        rows = [v for k, v in done.items() if k.startswith(f"{model}/{args.data}/")]
        for g in ["raw"] + [f"ema{k:g}" for k in kimgs]:
            fds = [r[g]["fd"] for r in rows if g in r]
            if fds:
                sd = statistics.stdev(fds) if len(fds) > 1 else 0.0
                print(f"| {model} | {'trained G' if g == 'raw' else g[3:] + ' kimg EMA'} | "
                      f"{', '.join(f'{f:.2f}' for f in fds)} | {statistics.mean(fds):.2f} ± {sd:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
