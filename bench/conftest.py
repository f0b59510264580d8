"""The one benchmark harness of every bench/bench_*.py (docs/design.md, "Benchmarks"), on pytest-benchmark.

    pytest bench/bench_bias_act.py --device cpu --benchmark-min-rounds 5 [--fastgan-save]

- A bench module is its cases' setup and floors only. It declares `OP`: the registry name of the op it measures
  (fastgan.ops.OPS), or the names of every op its steps may run; `pytest_generate_tests` here parametrises `impl`
  over bench.common.impls(OP, device) (eager, compile, fastgan-<backend> for each backend of the op that can run
  here), crossed with the module's own @pytest.mark.parametrize cases. Each case ends with the `measure` fixture
  (bench.common.measure: warm-up, group, extra_info, timed rounds, % of floor, peak memory).
- At session start the CPU allocator is tuned (fastgan.tune_cpu_allocator(); FASTGAN_BENCH_ALLOCATOR=default keeps
  the system's), so every implementation is measured under the same malloc: with glibc's default, each >32 MB
  tensor is a fresh page-faulting mmap whose cost would swamp the kernels being compared.
- The session's copy bandwidth, allocator and machine description go into pytest-benchmark's machine_info (so into
  --benchmark-json / --benchmark-autosave files) and into every case's extra_info.
- At session end, for each group, each implementation's median is compared with eager's and compile's medians of
  the same session: `speedup_vs_eager`, `speedup_vs_compile` go into extra_info (before pytest-benchmark writes its
  JSON), and a compact table is printed.
- --threads N sets torch's thread count (recorded; on a shared machine, 1 thread keeps timings stable).
- --fastgan-save writes bench/results/<machine>-<date>.json (machine info + every case), merged by group into the
  file of the same name if one exists (so several bench_<op>.py runs of one day share one file).

Test files are named bench_*.py (not test_*): this conftest collects them (see pytest_collect_file).
"""
from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import pytest
import torch

import fastgan
from fastgan.benchmarking import copy_bandwidth, cpu_sample, gemm_rate, other_cpu_load
from fastgan.ops import OPS

from . import common

RESULTS = Path(__file__).resolve().parent / "results"
BASELINES = common.BASELINES
_session: dict = {}  # filled at session start: device, allocator, copy bandwidth, machine info


def pytest_addoption(parser):
    g = parser.getgroup("fastgan benchmarks")
    g.addoption("--device", choices=("cpu", "cuda"), default=None,
                help="device of the benchmarked tensors (default: cuda if available, else cpu)")
    g.addoption("--threads", type=int, default=None,
                help="torch.set_num_threads(N) for the session (default: torch's, i.e. all cores); on a shared "
                     "machine 1 thread keeps timings stable when another process holds a core")
    g.addoption("--fastgan-save", action="store_true", default=False,
                help="write bench/results/<machine>-<date>.json with machine info, ratios and floors")
    g.addoption("--fastgan-quick", action="store_true", default=False,
                help="one case per benchmark function (its QUICK parameters, else the first of each), every impl")
    g.addoption("--fastgan-results", default=None,
                help="the results file to write with --fastgan-save (default bench/results/<machine>-<date>.json)")


def quick_selection(items) -> list:
    """--fastgan-quick: of each benchmark function's parameter combinations, the one its module names in QUICK
    ({param: value}, or {param: (values, ...)}: one case per value; the rest of the params: their first value in
    collection order), with every impl."""
    chosen: dict = {}
    keep = []
    for item in items:
        spec = getattr(item, "callspec", None)
        if spec is None:
            keep.append(item)
            continue
        params = {k: v for k, v in spec.params.items() if k != "impl"}
        want = {k: v if isinstance(v, tuple) else (v,) for k, v in getattr(item.module, "QUICK", {}).items()}
        if any(k in params and params[k] not in v for k, v in want.items()):
            continue
        key = (item.module.__name__, item.originalname, *(params.get(k) for k, v in want.items() if len(v) > 1))
        if chosen.setdefault(key, params) == params:
            keep.append(item)
    return keep


def cases_together(items) -> list:
    """The items reordered so that every impl of one case (same function, same parameters but impl) runs back to
    back. pytest's own order runs all cases of one impl first: on a shared VM whose speed drifts 10-20 % over
    minutes, eager and fastgan of a case were then measured minutes apart (observed: the f-GAN steps read 0.83-0.95x
    sequentially where an interleaved A/B gave 0.96x, and lsgan 1.30x for the same 0.97x)."""
    first: dict = {}
    keyed = []
    for i, item in enumerate(items):
        spec = getattr(item, "callspec", None)
        params = tuple(sorted((k, repr(v)) for k, v in spec.params.items() if k != "impl")) if spec else (i,)
        key = (getattr(item.module, "__name__", ""), getattr(item, "originalname", item.name), params)
        keyed.append((first.setdefault(key, i), i, item))
    return [item for _, _, item in sorted(keyed, key=lambda t: (t[0], t[1]))]


def pytest_generate_tests(metafunc):
    """impl x the module's cases, for every benchmark function taking `impl` (directly or through `measure`)."""
    if "impl" not in metafunc.fixturenames:
        return
    ops = getattr(metafunc.module, "OP", None)
    if ops is None:
        raise pytest.UsageError(f"{metafunc.module.__name__}: a benchmark module declares OP, the registry name of "
                                f"the op it measures (one of {', '.join(OPS)}) or a tuple of them")
    metafunc.parametrize("impl", common.impls(ops, bench_device(metafunc.config)))


def pytest_collection_modifyitems(session, config, items):
    if config.getoption("fastgan_quick"):
        items[:] = quick_selection(items)
    items[:] = cases_together(items)


def pytest_runtest_makereport(item, call):
    """A case that cannot run for one impl is that impl's result: pytest.xfail (e.g. torch.compile refusing a double
    backward) and pytest.skip in the body (e.g. eager's n x n kernel matrices that do not fit) go into the results
    file with their reason, and into the report ("fails: <reason>", "could not run")."""
    if call.when != "call":
        return
    _session.setdefault("ran", set()).add(item.nodeid)
    if call.excinfo is not None and call.excinfo.errisinstance((pytest.xfail.Exception, pytest.skip.Exception)):
        spec = getattr(item, "callspec", None)
        params = dict(spec.params) if spec else {}
        kind = "xfail" if call.excinfo.errisinstance(pytest.xfail.Exception) else "skipped"
        reason = getattr(call.excinfo.value, "msg", None) or str(call.excinfo.value)
        _session.setdefault("failures", []).append(
            {"fullname": item.nodeid, "impl": params.pop("impl", None), "kind": kind,
             "params": {k: str(v) for k, v in params.items()}, "reason": reason})


def pytest_collect_file(file_path, parent):
    # The project's python_files is test_*.py; benchmarks are bench_*.py and run only when asked for
    # (`pytest bench/...`). Explicit command-line paths are collected by pytest itself: not twice.
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def bench_device(config) -> torch.device:
    dev = config.getoption("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    if dev == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--device cuda: no CUDA device is available")
    return torch.device(dev)


def pytest_sessionstart(session):
    config = session.config
    device = bench_device(config)
    if config.getoption("threads"):
        torch.set_num_threads(config.getoption("threads"))
    note = "FASTGAN_BENCH_ALLOCATOR=default: the system malloc as it is"
    if os.environ.get("FASTGAN_BENCH_ALLOCATOR", "tuned") != "default":
        try:
            fastgan.tune_cpu_allocator()
            note = None
        except RuntimeError as e:  # a preloaded jemalloc/tcmalloc: already fine, and recorded by allocator_info()
            note = f"not tuned: {e}"
    t0 = cpu_sample()
    time.sleep(0.5)
    others = other_cpu_load(t0)  # is the machine quiet? (load averages lag by minutes)
    bw = copy_bandwidth(device)  # measured once, before any case, with the allocator setting in force
    gemm = gemm_rate(device)  # fp32 FLOP/s: the FLOP floors' denominator (cached: the cases reuse it)
    _session.update(
        device=str(device),
        allocator=fastgan.allocator_info(),
        allocator_note=note,
        torch_threads=torch.get_num_threads(),
        copy_bandwidth_Bps=bw,
        gemm_rate_flops=gemm,
        quick=bool(config.getoption("fastgan_quick")),
        other_cpu_load_at_start=others,
        unavailable=common.unavailable_impls(device),
        machine=common.machine_info(device),
        results_path=config.getoption("fastgan_results"),
    )


def pytest_report_header(config):
    if not _session:
        return None
    a = _session["allocator"]
    lines = [f"fastgan bench: device={_session['device']}  "
             f"copy bandwidth={_session['copy_bandwidth_Bps'] / 1e9:.2f} GB/s"
             f"  malloc={a['malloc']} tuned={a['tuned']}  torch threads={torch.get_num_threads()}"]
    others = _session["other_cpu_load_at_start"]
    if others is not None and others >= 0.2:
        lines.append(f"fastgan bench: WARNING: other processes use {others:.2f} cores: timings will be noisy "
                     f"(column 'others' of the summary: the same per case)")
    if _session["allocator_note"]:
        lines.append(f"fastgan bench: allocator {_session['allocator_note']}")
    for impl, why in _session["unavailable"].items():
        lines.append(f"fastgan bench: {impl} not benchmarked: {why}")
    return lines


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    return bench_device(request.config)


@pytest.fixture
def extra_info(benchmark):
    """This case's benchmark.extra_info, with the session's device, copy bandwidth and allocator already in."""
    benchmark.extra_info.update(
        device=_session["device"],
        copy_bandwidth_Bps=_session["copy_bandwidth_Bps"],
        allocator=_session["allocator"],
    )
    return benchmark.extra_info


@pytest.fixture
def measure(benchmark, extra_info, device, impl):
    """measure(run, *, group, floor_s, items, unit, warmup, compile_fails=None, **info): the end of every case
    (bench.common.measure) for this case's benchmark, impl and device."""
    return functools.partial(common.measure, benchmark, extra_info, impl, device)


def pytest_benchmark_update_machine_info(config, machine_info):
    if _session:
        machine_info["fastgan"] = dict(_session)


# ------------------------------------------------------------------------------------------------- ratios and table
def _median(bench) -> float | None:
    return bench.stats.median if bench and not bench.has_error else None


def _add_ratios(benchmarks) -> None:
    """For each group, eager's and compile's medians / each case's median -> extra_info (same session only).

    A case's `impl` and `group` come from its extra_info (set by the bench file) and the benchmark group.
    """
    groups: dict = {}
    for b in benchmarks:
        if _median(b) is not None and "impl" in b.extra_info:
            groups.setdefault(b.group, {})[b.extra_info["impl"]] = b
    for cases in groups.values():
        for base in BASELINES:
            ref = _median(cases.get(base))
            for b in cases.values():
                b.extra_info[f"speedup_vs_{base}"] = ref / _median(b) if ref else None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    # tryfirst: this wrapper encloses pytest-benchmark's, which writes its JSON files before yielding
    # (the stats are final here; the results file is written now too, so the terminal summary can name it)
    bs = getattr(session.config, "_benchmarksession", None)
    if bs is not None:
        _add_ratios(bs.benchmarks)
        if session.config.getoption("fastgan_save") and any(_median(b) is not None for b in bs.benchmarks):
            session.config._fastgan_saved = _save(bs.benchmarks)
    yield


def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    bs = getattr(terminalreporter.config, "_benchmarksession", None)
    if bs is None or not bs.benchmarks:
        return
    tr = terminalreporter
    tr.write_sep("-", "fastgan: speedups and floors (this session)")
    head = f"{'group':<30} {'impl':<14} {'median ms':>10} {'IQR ms':>8} {'vs eager':>9} {'vs compile':>10} " \
           f"{'floor ms':>9} {'% floor':>8} {'peak MB':>8} {'others':>6}"
    tr.write_line(head)
    for b in sorted((b for b in bs.benchmarks if _median(b) is not None), key=lambda b: (b.group or "", b.name)):
        e = b.extra_info
        tr.write_line(
            f"{(b.group or ''):<30} {e.get('impl', b.name):<14} {b.stats.median * 1e3:>10.3f} "
            f"{b.stats.iqr * 1e3:>8.3f} "
            f"{_fmt(e.get('speedup_vs_eager'), '.2f'):>8}x {_fmt(e.get('speedup_vs_compile'), '.2f'):>9}x "
            f"{_fmt(e.get('floor_s') and e['floor_s'] * 1e3, '.3f'):>9} {_fmt(e.get('pct_of_floor'), '.1f'):>7}% "
            f"{_fmt(e.get('peak_bytes') and e['peak_bytes'] / 1e6, '.1f'):>8} "
            f"{_fmt(e.get('other_cpu_load'), '.2f'):>6}")
    path = getattr(tr.config, "_fastgan_saved", None)
    if path:
        tr.write_line(f"fastgan: wrote {path}")


def _save(benchmarks) -> Path:
    """bench/results/<machine>-<date>.json; groups of this run replace the same groups of an existing file."""
    device = _session["device"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    slug = common.machine_slug(device)
    if torch.device(device).type == "cpu" and _session["torch_threads"] != _session["machine"]["cpu_affinity"]:
        slug += f"-{_session['torch_threads']}t"  # a --threads run is another configuration: its own file
    path = RESULTS / f"{slug}-{common.today()}.json"
    if _session.get("results_path"):
        path = Path(_session["results_path"])
        path.parent.mkdir(parents=True, exist_ok=True)
    cases = [b.as_dict(include_data=False) for b in benchmarks if _median(b) is not None]
    previous = {}
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = {}
    old = previous.get("benchmarks", [])
    ran = _session.get("ran", set())
    failures = [f for f in previous.get("failures", []) if f.get("fullname") not in ran] + _session.get("failures", [])
    groups = {c["group"] for c in cases}
    out = {
        "machine_info": common.machine_info(device),  # again after the run: the GPU's clocks and power now
        "session": {k: v for k, v in _session.items() if k not in ("machine", "failures", "ran")},
        "benchmarks": [c for c in old if c.get("group") not in groups] + cases,
        "failures": failures,
    }
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    return path
