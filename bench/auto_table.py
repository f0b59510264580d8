"""The measured `auto` table for CUDA tensors (fastgan.backend.AUTO_CUDA): per op, the faster of its two GPU kernel
families in a benchmark results file, by the geometric mean over the op's cases of time(cuda) / time(triton).

    python -m bench.auto_table bench/results/<machine>-<date>-quick.json [--out gpu-auto.md]

Prints (and writes with --out) a Markdown table and the AUTO_CUDA entries to paste into fastgan/backend.py; an op
measured on one family only, or on neither, is reported as such and keeps its reasoned entry.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

FAMILIES = ("fastgan-cuda", "fastgan-triton")


def op_of(benchmark: dict) -> str | None:
    """The op a benchmark measures: its file is bench/bench_<op>.py, the op's stem (None for the other files)."""
    from fastgan.ops import OPS

    stem = Path(benchmark.get("fullname", "").split("::")[0]).stem.removeprefix("bench_")
    return stem if stem in OPS else None


def measure(benchmarks: list[dict]) -> dict[str, dict]:
    """{op: {"cases": n, "ratio": geomean time(cuda) / time(triton) or None, "only": family or None}}."""
    by_case: dict = {}
    for b in benchmarks:
        impl = b.get("params", {}).get("impl")
        op = op_of(b)
        if op is None or impl not in FAMILIES:
            continue
        by_case.setdefault((op, b["group"]), {})[impl] = b["stats"]["median"]
    out: dict = {}
    for (op, _group), times in sorted(by_case.items()):
        row = out.setdefault(op, {"logs": [], "families": set()})
        row["families"] |= set(times)
        if len(times) == 2 and min(times.values()) > 0:
            row["logs"].append(math.log(times["fastgan-cuda"] / times["fastgan-triton"]))
    result = {}
    for op, row in out.items():
        ratio = math.exp(sum(row["logs"]) / len(row["logs"])) if row["logs"] else None
        only = next(iter(row["families"])) if len(row["families"]) == 1 else None
        result[op] = {"cases": len(row["logs"]), "ratio": ratio, "only": only}
    return result


def render(results_file: str, measured: dict[str, dict]) -> str:
    from fastgan.backend import AUTO_CUDA

    name = Path(results_file).name
    lines = ["# auto on CUDA tensors, measured", "",
             f"From `{name}`: per op, the geometric mean over its benchmark cases of time(cuda) / time(triton).", "",
             "| op | cases | cuda / triton | measured choice | table today |", "|---|---|---|---|---|"]
    snippet = []
    for op, choice in AUTO_CUDA.items():
        m = measured.get(op)
        if m is None or m["ratio"] is None:
            why = "not measured" if m is None else f"only {m['only']} ran"
            lines.append(f"| {op} | 0 | — | {why} | {choice.first} ({'measured' if choice.measured else 'reasoned'}) |")
            continue
        first = "cuda" if m["ratio"] <= 1.0 else "triton"
        lines.append(f"| {op} | {m['cases']} | {m['ratio']:.2f} | {first} | {choice.first} |")
        faster = min(m["ratio"], 1 / m["ratio"])
        snippet.append(f'    "{op}": AutoChoice("{first}", "{name}", "{first} {1 / faster:.2f}x faster over '
                       f'{m["cases"]} cases"),')
    lines += ["", "AUTO_CUDA entries for fastgan/backend.py:", "", "```python", *snippet, "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.auto_table", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    data = json.loads(Path(args.results).read_text())
    text = render(args.results, measure(data.get("benchmarks", [])))
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
