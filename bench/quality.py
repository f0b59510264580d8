"""Sample and representation quality of the recipes on real data: what the speed benchmarks do not show.

    python -m bench.quality --data mnist5k --models gan,bigan --seeds 0,1,2 [--steps N] [--runs runs/quality]
    python -m bench.quality --data gmm8 --models mmdgan,improved --seeds 0,1,2
    python -m bench.quality --models gan --seeds 0,1,2 --precision fp32,bf16      # a row per (model, precision)
    python -m bench.quality curves OUT.png before=RUN_DIR after=RUN_DIR     # training curves of runs side by side

Trains each model once per seed at its defaults (fastgan.train.config_for; --steps / --hidden override for shorter
runs), through the one trainer, each run in its own directory under --runs (a run whose results.json exists is read,
not trained again: a long table can be built in several sittings). Writes, under --results (default
bench/results/quality/<data>/), `<data>.md` — one row per model: the mean +- std over seeds of the classifier Frechet
distance, the classifier score, 1NN accuracy in the model's features (where it has them), MMD^2 to the test split,
modes covered and the high-quality fraction (2-D mixtures), the throughput — and each model's samples picture of the
first seed (`<model>-samples.png`), plus `<data>.json` with every run's results. Nothing here times anything against
a threshold; the figures are measurements to read.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = (("fd", "classifier FD", 1.0, ".1f"), ("fd_real", "FD train vs test", 1.0, ".2f"),
           ("kid", "KID", 1.0, ".3f"), ("precision", "precision %", 100.0, ".1f"),
           ("recall", "recall %", 100.0, ".1f"), ("classifier_score", "classifier score", 1.0, ".2f"),
           ("1nn_accuracy_hidden", "1NN hidden %", 100.0, ".2f"), ("1nn_accuracy", "1NN acc %", 100.0, ".2f"),
           ("mmd2", "MMD^2", 1.0, ".4f"), ("modes_covered", "modes", 1.0, ".1f"),
           ("high_quality", "high quality %", 100.0, ".1f"), ("steps_per_s", "steps/s", 1.0, ".1f"))


def _list(text: str, kind=str) -> list:
    return [kind(s.strip()) for s in text.split(",") if s.strip()]


def label(model: str, precision: str) -> str:
    """A row's name and its runs' directory stem: the model, with the precision unless it is fp32."""
    return model if precision == "fp32" else f"{model}-{precision}"


def run_one(model: str, data: str, seed: int, runs: Path, steps: int | None, hidden: int | None, split,
            precision: str = "fp32") -> dict:
    from fastgan.train import Trainer, config_for

    out = runs / data / f"{label(model, precision)}-seed{seed}"
    done = out / "results.json"
    if done.is_file():
        return json.loads(done.read_text())
    if out.exists():
        shutil.rmtree(out)  # an interrupted run: start it again from scratch
    cfg = config_for(model, data=data, seed=seed, steps=steps, hidden=hidden, out=str(out), precision=precision,
                     progress=False, ckpt_every=10 ** 9)
    return Trainer(cfg, split=split).run()


def summary_row(runs: list[dict]) -> dict:
    row = {}
    for key, *_ in COLUMNS:
        vals = [r[key] for r in runs if r.get(key) is not None]
        if vals:
            row[key] = (statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0)
    return row


def markdown(data: str, table: dict, note: str) -> str:
    cols = [c for c in COLUMNS if any(c[0] in summary_row(r) for r in table.values())]
    lines = [f"# Recipes on {data}: quality at their defaults", "", note, "",
             "Mean ± std over the seeds of each row (the samples picture: its first seed).", "",
             "| model | steps | seeds | " + " | ".join(c[1] for c in cols) + " | samples |",
             "|---|---|---|" + "---|" * len(cols) + "---|"]
    for model, runs in table.items():
        row = summary_row(runs)
        cells = []
        for key, _, scale, fmt in cols:
            if key not in row:
                cells.append("—")
                continue
            mean, std = row[key]
            cells.append(format(scale * mean, fmt) + (f" ± {format(scale * std, fmt)}" if len(runs) > 1 else ""))
        pic = f"![{model}]({model}-samples.png)" if (runs and runs[0].get("_samples")) else "—"
        seeds_of = ", ".join(str(r.get("seed")) for r in runs)
        lines.append(f"| {model} | {runs[0]['steps'] if runs else '—'} | {seeds_of} | " + " | ".join(cells)
                     + f" | {pic} |")
    return "\n".join(lines) + "\n"


def curves(argv) -> int:
    """python -m bench.quality curves OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--title T]: the runs' training
    curves (metrics.jsonl) in one figure."""
    from fastgan import metrics as ev

    p = argparse.ArgumentParser(prog="python -m bench.quality curves")
    p.add_argument("out")
    p.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    runs = {}
    for item in args.runs:
        label, sep, run = item.partition("=")
        if not sep:
            p.error(f"expected LABEL=RUN_DIR, got {item!r}")
        runs[label] = ev.read_metrics(Path(run) / "metrics.jsonl")
    print(ev.save_curves(runs, args.out, title=args.title))
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["curves"]:
        return curves(argv[1:])
    p = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--models", required=True, help="comma-separated recipe names (fastgan.train.RECIPES)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--steps", type=int, default=None, help="override every model's default length")
    p.add_argument("--hidden", type=int, default=None, help="override the hidden width")
    p.add_argument("--precision", default="fp32", help="comma-separated: fp32, bf16, fp16 (a row per model and "
                   "precision; rows other than fp32 are named MODEL-PRECISION)")
    p.add_argument("--runs", default="runs/quality", help="where the run directories go (not committed)")
    p.add_argument("--results", default=None, help="default bench/results/quality/<data>")
    p.add_argument("--note", default="", help="a paragraph for the top of the Markdown file")
    p.add_argument("--only-finished", action="store_true",
                   help="train nothing: tabulate the runs that have finished (each row lists its seeds)")
    args = p.parse_args(argv)

    from fastgan import data as data_mod
    from fastgan.train import RECIPES

    models, seeds, precisions = _list(args.models), _list(args.seeds, int), _list(args.precision)
    unknown = [m for m in models if m not in RECIPES]
    if unknown or not models or not seeds:
        p.error(f"--models: unknown {unknown}; expected names from {sorted(RECIPES)}" if unknown
                else "--models and --seeds must not be empty")
    results = Path(args.results) if args.results else HERE / "results" / "quality" / args.data.replace(":", "_")
    results.mkdir(parents=True, exist_ok=True)
    store = results / f"{args.data.replace(':', '_')}.json"
    table = json.loads(store.read_text()) if store.is_file() else {}
    split = data_mod.load(args.data)
    runs_root = Path(args.runs)
    for model, precision in ((m, pr) for m in models for pr in precisions):
        name, rows = label(model, precision), []
        for seed in seeds:
            run = runs_root / args.data / f"{name}-seed{seed}"
            if args.only_finished and not (run / "results.json").is_file():
                continue
            res = {**run_one(model, args.data, seed, runs_root, args.steps, args.hidden, split, precision),
                   "seed": seed}
            if not rows and (run / "samples.png").is_file():
                shutil.copyfile(run / "samples.png", results / f"{name}-samples.png")
                res["_samples"] = True
            rows.append(res)
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {res[k]:.4g}" for k, *_ in COLUMNS
                                                       if isinstance(res.get(k), (int, float))), flush=True)
        if not rows:
            continue
        table[name] = rows
        store.write_text(json.dumps(table, indent=2) + "\n")
        (results / f"{args.data.replace(':', '_')}.md").write_text(markdown(args.data, table, args.note))
    print(f"results: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
