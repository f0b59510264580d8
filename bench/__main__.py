"""The benchmark suite's one command (also `fastgan bench ...` from a source checkout):

    python -m bench [run] [--quick] [--device cpu|cuda] [--threads N] [-k EXPR] [--out DIR]   # every op and step
                                                                                  # benchmark, every impl available,
                                                                                  # then the Markdown report
    python -m bench report bench/results/X.json [--out X.md]
    python -m bench compare OLD.json NEW.json [--threshold 0.10]                  # exit 1 if a case regressed

run: pytest-benchmark over bench/bench_*.py with --fastgan-save; the results go to
bench/results/<machine>-<date>.json (--quick: ...-quick.json, one case per benchmark and few rounds: under 5 minutes on
2 CPU cores) and the report next to it (.md + PNG plots).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def results_path(device: str, quick: bool, out: str | None = None) -> Path:
    from . import common

    folder = Path(out) if out else HERE / "results"
    return folder / f"{common.machine_slug(device)}-{common.today()}{'-quick' if quick else ''}.json"


def pytest_args(device: str, quick: bool, threads: int | None, k: str | None, results: Path) -> list[str]:
    args = [str(HERE), "-q", "-p", "no:cacheprovider", "-rx", "--device", device, "--fastgan-save",
            "--fastgan-results", str(results)]
    args += ["--fastgan-quick", "--benchmark-min-rounds", "3", "--benchmark-max-time", "0.05"] if quick else \
        ["--benchmark-min-rounds", "10", "--benchmark-max-time", "1.0"]
    if threads:
        args += ["--threads", str(threads)]
    if k:
        args += ["-k", k]
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "run")
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the benchmarks and write the results file and the report")
    r.add_argument("--quick", action="store_true", help="one case per benchmark, few rounds (< 5 min on 2 cores)")
    r.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    r.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    r.add_argument("-k", default=None, help="pytest -k expression selecting benchmarks")
    r.add_argument("--out", default=None, help="folder of the results file and report (default: bench/results)")
    rep = sub.add_parser("report", help="the Markdown report (+ PNG plots) of a results file")
    rep.add_argument("results")
    rep.add_argument("--out", default=None)
    c = sub.add_parser("compare", help="compare two results files (exit 1 if a case regressed)")
    c.add_argument("old")
    c.add_argument("new")
    c.add_argument("--threshold", type=float, default=0.10, help="fraction slower that counts as a regression")
    args = p.parse_args(argv)
    from . import report

    if args.cmd == "report":
        print(report.write_report(args.results, args.out))
        return 0
    if args.cmd == "compare":
        diff = report.compare(report.load(args.old), report.load(args.new), args.threshold)
        print(report.format_compare(diff))
        return 1 if any(d["flag"] == "regression" for d in diff) else 0
    import pytest
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    results = results_path(device, args.quick, args.out)
    results.parent.mkdir(parents=True, exist_ok=True)
    rc = pytest.main(pytest_args(device, args.quick, args.threads, args.k, results))
    if results.exists():
        print(f"results: {results}\nreport:  {report.write_report(results)}")
    else:
        print("no results were written (no benchmark ran)")
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())
