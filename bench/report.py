"""Reading results files (bench/results/<machine>-<date>.json, written by `pytest bench/ --fastgan-save`): a Markdown
report with PNG plots that a person can read alone, and the comparison of two files.

    python -m bench report bench/results/X.json          # -> bench/results/X.md (+ X-*.png)
    python -m bench compare OLD.json NEW.json [--threshold 0.1]

Every row: median, spread (IQR), peak memory, throughput, speedup vs eager, vs torch.compile (or "fails: <reason>"
when compile could not run the case), % of the case's floor (bytes / measured copy bandwidth or FLOPs / measured
GEMM rate). Pure functions of the JSON: tested on small fake results (tests/test_bench_harness.py).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["compare", "format_compare", "load", "rows", "write_report"]

# scaling plots: x key, group prefix
FAMILIES = {"mmd2": ("n", "mmd2-n"), "minibatch_discrimination": ("B", "minibatch_discrimination-B")}


def load(path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"results file {path} does not exist") from None
    except ValueError as e:
        raise ValueError(f"results file {path}: not JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"results file {path}: expected an object with a 'benchmarks' list (pytest bench/ "
                         f"--fastgan-save writes one)")
    return data


def _case_params(case: dict) -> dict:
    return {k: str(v) for k, v in (case.get("params") or {}).items() if k != "impl"}


def rows(results: dict) -> list[dict]:
    """One row per case, sorted by group then impl (eager, compile, then fastgan's)."""
    fails = results.get("failures", [])
    out = []
    for c in results["benchmarks"]:
        e, s = c.get("extra_info", {}), c["stats"]
        median = s["median"]
        items = e.get("items")
        out.append({
            "group": c["group"], "impl": e.get("impl", c.get("name")), "median_s": median, "iqr_s": s.get("iqr"),
            "rounds": s.get("rounds"), "peak_bytes": e.get("peak_bytes"),
            "throughput": items / median if items and median > 0 else None, "unit": e.get("unit"),
            "speedup_vs_eager": e.get("speedup_vs_eager"), "speedup_vs_compile": e.get("speedup_vs_compile"),
            "pct_of_floor": e.get("pct_of_floor"), "floor_s": e.get("floor_s"), "floor": e.get("floor"),
            "other_cpu_load": e.get("other_cpu_load"), "extra": e, "params": _case_params(c),
        })
    order = {"eager": 0, "compile": 1}
    out.sort(key=lambda r: (r["group"], order.get(r["impl"], 2), r["impl"]))
    for r in out:  # a baseline that could not run this case: its reason
        r["compile_failure"] = next((f["reason"] for f in fails if f.get("impl") == "compile"
                                     and f.get("params") == r["params"]), None)
    return out


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _si(v: float | None, unit: str | None) -> str:
    if v is None:
        return "-"
    for scale, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:.2f} {p}{unit or ''}/s"
    return f"{v:.1f} {unit or ''}/s"


def _vs_compile(r: dict) -> str:
    if r["speedup_vs_compile"] is not None:
        return f"{r['speedup_vs_compile']:.2f}x"
    if r["compile_failure"]:
        why = r["compile_failure"]
        return f"fails: {why if len(why) <= 100 else why[:99] + '…'}"
    return "-"


def _machine_lines(results: dict) -> list[str]:
    m, s = results.get("machine_info", {}), results.get("session", {})
    git = m.get("git") or {}
    gpu = m.get("gpu")
    lines = [f"- device: **{s.get('device', '?')}**; CPU {m.get('cpu', '?')} ({m.get('cpu_affinity', '?')} cores "
             f"usable, torch threads {s.get('torch_threads', m.get('torch_threads', '?'))})"]
    if gpu:
        tel = gpu.get("telemetry") or {}
        mem = _fmt(gpu.get('memory_bytes') and gpu['memory_bytes'] / 2**30, '.0f')
        lines.append(f"- GPU: {gpu.get('name')} (sm {gpu.get('capability')}, {mem} GiB, CUDA {gpu.get('cuda')}); "
                     f"telemetry at the end: " + (", ".join(f"{k} {v}" for k, v in tel.items()) if tel else "none"))
    lines.append(f"- torch {m.get('torch')}, triton {m.get('triton')}, fastgan {m.get('fastgan')} "
                 f"(commit {git.get('commit', '?')}{' + local changes' if git.get('dirty') else ''}), "
                 f"Python {m.get('python')}")
    bw, gemm = s.get("copy_bandwidth_Bps"), s.get("gemm_rate_flops")
    lines.append(f"- floors measured in this run: copy bandwidth {_fmt(bw and bw / 1e9, '.1f')} GB/s, fp32 GEMM rate "
                 f"{_fmt(gemm and gemm / 1e9, '.1f')} GFLOP/s")
    if s.get("quick"):
        lines.append("- **quick run** (--quick): one case per benchmark, few rounds — indicative, not a record")
    load = s.get("other_cpu_load_at_start")
    if load is not None and load >= 0.2:
        lines.append(f"- WARNING: other processes used {load:.2f} cores at the start: timings are noisy")
    return lines


def _table(rs: list[dict]) -> list[str]:
    head = ("| impl | median ms | IQR ms | peak MB | throughput | vs eager | vs torch.compile | % of floor |",
            "|---|---:|---:|---:|---:|---:|---|---:|")
    body = [f"| {r['impl']} | {r['median_s'] * 1e3:.3f} | {_fmt(r['iqr_s'] and r['iqr_s'] * 1e3, '.3f')} | "
            f"{_fmt(r['peak_bytes'] and r['peak_bytes'] / 1e6, '.1f')} | {_si(r['throughput'], r['unit'])} | "
            f"{_fmt(r['speedup_vs_eager'], '.2f')}x | {_vs_compile(r)} | {_fmt(r['pct_of_floor'], '.0f')}% |"
            for r in rs]
    return [*head, *body]


def losses(rs: list[dict]) -> list[str]:
    """The plain statements of where a fastgan implementation is slower than eager or torch.compile; a gap smaller
    than the larger IQR of the two rows is said to be within the run's noise (pytest-benchmark measures the rows of
    a group one after the other: an interleaved A/B, bench/ab_steps.py, decides those)."""
    out = []
    by = {(r["group"], r["impl"]): r for r in rs}
    for r in rs:
        if not r["impl"].startswith("fastgan"):
            continue
        for base in ("eager", "compile"):
            v = r[f"speedup_vs_{base}"]
            if v is not None and v < 1:
                b = by.get((r["group"], base))
                iqr = max((x["iqr_s"] or 0.0) for x in (r, b)) if b else 0.0
                noise = b is not None and r["median_s"] - b["median_s"] < iqr
                out.append(f"- {r['group']}: {r['impl']} is **slower than {base}** ({v:.2f}x: "
                           f"{r['median_s'] * 1e3:.3f} ms)" + (" -- within the rows' IQR" if noise else ""))
    return out


def _save(plt, fig, stem: Path, suffix: str) -> Path:
    """Writes fig as <stem>-<suffix>.png next to the report and closes it."""
    fig.tight_layout()
    path = stem.with_name(f"{stem.name}-{suffix}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plots(rs: list[dict], stem: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fast = [r for r in rs if r["speedup_vs_eager"] is not None]
    if fast:
        groups = sorted({r["group"] for r in fast})
        impls = sorted({r["impl"] for r in fast}, key=lambda i: ({"eager": 0, "compile": 1}.get(i, 2), i))
        fig, ax = plt.subplots(figsize=(8, max(3.0, 0.35 * len(groups) * max(1, len(impls)) / 2)))
        h = 0.8 / len(impls)
        for k, impl in enumerate(impls):
            ys = [i + k * h for i, g in enumerate(groups)]
            vals = [next((r["speedup_vs_eager"] for r in fast if r["group"] == g and r["impl"] == impl), 0.0)
                    for g in groups]
            ax.barh(ys, vals, height=h, label=impl)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_yticks([i + 0.4 - h / 2 for i in range(len(groups))], groups, fontsize=7)
        ax.set_xlabel("speedup vs eager (median; > 1 is faster)")
        ax.legend(fontsize=7)
        made.append(_save(plt, fig, stem, "speedups"))
    for fam, (key, prefix) in FAMILIES.items():
        pts = [r for r in rs if r["group"].startswith(prefix) and r["extra"].get(key) is not None]
        if len({r["extra"][key] for r in pts}) < 2:
            continue  # a scaling plot needs two sizes at least (a --quick run has one)
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        for impl in sorted({r["impl"] for r in pts}):
            mine = sorted((r for r in pts if r["impl"] == impl and r["extra"].get("d", 64) == 64),
                          key=lambda r: r["extra"][key])
            xs = [r["extra"][key] for r in mine]
            a1.loglog(xs, [r["median_s"] * 1e3 for r in mine], "o-", label=impl)
            mem = [(x, r["peak_bytes"] / 1e6) for x, r in zip(xs, mine) if r["peak_bytes"]]
            if mem:
                a2.loglog(*zip(*mem), "o-", label=impl)
        a1.set(xlabel=key, ylabel="median ms", title=f"{fam}: time")
        a2.set(xlabel=key, ylabel="peak MB", title=f"{fam}: peak memory")
        a1.legend(fontsize=7)
        made.append(_save(plt, fig, stem, f"scaling-{fam}"))
    for axis, key in (("batch", "B"), ("width", "hidden")):  # training steps as the work grows (issue 29)
        pts = [r for r in rs if r["group"].startswith("train-step-scale-") and r["extra"].get("scale_axis") == axis]
        lines = sorted({(r["extra"].get("model"), r["extra"].get("precision"), r["impl"]) for r in pts})
        if len({r["extra"].get(key) for r in pts}) < 2:
            continue
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        for model, prec, impl in lines:
            mine = sorted((r for r in pts if (r["extra"].get("model"), r["extra"].get("precision"), r["impl"])
                           == (model, prec, impl)), key=lambda r: r["extra"][key])
            xs = [r["extra"][key] for r in mine]
            style = "o-" if impl == "eager" else "s--"
            a1.loglog(xs, [r["throughput"] or 0 for r in mine], style, label=f"{model} {prec} {impl}")
            a2.semilogx(xs, [r["pct_of_floor"] or 0 for r in mine], style, label=f"{model} {prec} {impl}")
        a1.set(xlabel=key, ylabel="samples / s", title=f"training step vs {axis}: throughput")
        a2.set(xlabel=key, ylabel="% of the GEMM floor", title=f"training step vs {axis}: % of floor")
        a1.legend(fontsize=6)
        made.append(_save(plt, fig, stem, f"scaling-train-step-{axis}"))
    return made


def write_report(results_path, out=None) -> Path:
    """The Markdown report of a results file (default: next to it, .md) and its PNG plots; returns the .md path."""
    results_path = Path(results_path)
    results = load(results_path)
    out = Path(out) if out else results_path.with_suffix(".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    rs = rows(results)
    plots = _plots(rs, out.with_suffix(""))
    lines = [f"# fastgan benchmark report: {results_path.name}", "", *_machine_lines(results), "",
             "Each table is one benchmark group (same inputs for every implementation, measured in the same run). "
             "Speedups are eager's (or torch.compile's) median over the row's median: > 1 means the row is faster. "
             "% of floor = the case's floor (its bytes at the measured copy bandwidth, or its FLOPs at the measured "
             "GEMM rate) over the row's median: 100 % is the machine's limit.", ""]
    over = [r for r in rs if (r["pct_of_floor"] or 0) > 100]
    if over:
        groups = ", ".join(sorted({r["group"] for r in over}))
        lines += [f"Note: {len(over)} row(s) exceed 100 % of their floor ({groups}): "
                  "there the measured rate (copy bandwidth or GEMM rate, from one large copy / GEMM) underestimates "
                  "what those kernels reach (caches, clock); read their % as relative, not as a bound.", ""]
    slower = losses(rs)
    lines += ["## Where fastgan loses", "", *(slower or ["- nowhere in this run: every fastgan row is at least as fast "
                                                        "as eager and torch.compile where they ran"]), ""]
    if slower:
        lines += ["(pytest-benchmark times a group's rows one after the other; on a small VM that drifts by 5-10 % "
                  "between minutes, read a line within the rows' IQR as noise and confirm any line with an "
                  "interleaved A/B: `python -m bench.ab_steps`, as the figures in docs/ are.)", ""]
    failed = [f for f in results.get("failures", [])]
    if failed:
        lines += ["## Cases an implementation could not run", ""]
        lines += [f"- `{f['fullname']}`: {f['reason']}" for f in failed] + [""]
    for p in plots:
        lines += [f"![{p.stem}]({p.name})", ""]
    for group in sorted({r["group"] for r in rs}):
        g = [r for r in rs if r["group"] == group]
        floor = next((r["floor"] for r in g if r["floor"]), None)
        lines += [f"## {group}", "", *_table(g), ""]
        if floor:
            lines += [f"floor: {floor}", ""]
    out.write_text("\n".join(lines) + "\n")
    return out


def compare(old: dict, new: dict, threshold: float = 0.10) -> list[dict]:
    """Rows (group, impl) present in both: old and new medians, new / old, and a flag: 'regression' when the new
    median is more than `threshold` (a fraction) slower, 'improvement' when more than threshold faster. Cases in
    only one file are listed with the other side None."""
    if not (isinstance(threshold, (int, float)) and threshold >= 0):
        raise ValueError(f"threshold: expected a fraction >= 0, got {threshold!r}")
    a = {(r["group"], r["impl"]): r for r in rows(old)}
    b = {(r["group"], r["impl"]): r for r in rows(new)}
    out = []
    for key in sorted(set(a) | set(b)):
        ra, rb = a.get(key), b.get(key)
        ratio = rb["median_s"] / ra["median_s"] if ra and rb else None
        flag = ""
        if ratio is not None and ratio > 1 + threshold:
            flag = "regression"
        elif ratio is not None and ratio < 1 / (1 + threshold):
            flag = "improvement"
        out.append({"group": key[0], "impl": key[1], "old_s": ra and ra["median_s"], "new_s": rb and rb["median_s"],
                    "ratio": ratio, "flag": flag})
    return out


def format_compare(diff: list[dict]) -> str:
    lines = [f"{'group':<34} {'impl':<16} {'old ms':>10} {'new ms':>10} {'new/old':>8}  flag"]
    for d in diff:
        lines.append(f"{d['group']:<34} {d['impl']:<16} {_fmt(d['old_s'] and d['old_s'] * 1e3, '.3f'):>10} "
                     f"{_fmt(d['new_s'] and d['new_s'] * 1e3, '.3f'):>10} {_fmt(d['ratio'], '.2f'):>8}  {d['flag']}")
    n = sum(d["flag"] == "regression" for d in diff)
    lines.append(f"{n} regression(s)" if n else "no regressions")
    return "\n".join(lines)
