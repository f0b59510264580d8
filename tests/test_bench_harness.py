"""The benchmark harness's own logic (no timing): floors, the report from a small fake results file, compare, the
--quick selection, the one command's pytest arguments."""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import common, report  # noqa: E402
from bench.__main__ import main as bench_main  # noqa: E402
from bench.__main__ import pytest_args  # noqa: E402
from bench.conftest import cases_together, quick_selection  # noqa: E402


def case(group, impl, median, iqr=0.001, vs_eager=None, vs_compile=None, **extra):
    return {"group": group, "name": f"test[{impl}]", "params": {"impl": impl, **extra.pop("params", {})},
            "stats": {"median": median, "iqr": iqr, "rounds": 5},
            "extra_info": {"impl": impl, "speedup_vs_eager": vs_eager, "speedup_vs_compile": vs_compile, **extra}}


def fake_results():
    return {
        "machine_info": {"cpu": "Fake CPU", "cpu_affinity": 2, "torch": "2.13.0", "git": {"commit": "abc"}},
        "session": {"device": "cpu", "copy_bandwidth_Bps": 2e10, "gemm_rate_flops": 1e11, "torch_threads": 2},
        "benchmarks": [
            case("mmd2-n1024-d64", "eager", 0.010, vs_eager=1.0, vs_compile=0.8, n=1024, d=64, items=2048,
                 unit="samples", peak_bytes=40e6, params={"n,d": "n1024-d64"}),
            case("mmd2-n1024-d64", "compile", 0.008, vs_eager=1.25, vs_compile=1.0, n=1024, d=64,
                 params={"n,d": "n1024-d64"}),
            case("mmd2-n1024-d64", "fastgan-cpp", 0.005, vs_eager=2.0, vs_compile=1.6, n=1024, d=64, items=2048,
                 unit="samples", peak_bytes=1e5, pct_of_floor=80.0, floor_s=0.004, floor="6 d P / gemm_rate",
                 params={"n,d": "n1024-d64"}),
            case("mmd2-n4096-d64", "eager", 0.160, vs_eager=1.0, n=4096, d=64, peak_bytes=640e6,
                 params={"n,d": "n4096-d64"}),
            case("mmd2-n4096-d64", "fastgan-cpp", 0.050, vs_eager=3.2, n=4096, d=64, peak_bytes=4e5,
                 params={"n,d": "n4096-d64"}),
            case("train-step-bigan-B128", "eager", 0.050, vs_eager=1.0, params={"model": "bigan"}),
            case("train-step-bigan-B128", "fastgan-cpp", 0.060, vs_eager=0.8333, params={"model": "bigan"}),
        ],
        "failures": [{"fullname": "bench/bench_train_step.py::test_train_step[compile-bigan]", "impl": "compile",
                      "params": {"model": "bigan"}, "reason": "torch.compile cannot run the step: boom"}],
    }


def test_floor_arithmetic(monkeypatch):
    import fastgan.benchmarking as fb

    monkeypatch.setattr(fb, "copy_bandwidth", lambda device: 2e10)
    monkeypatch.setattr(fb, "gemm_rate", lambda device, dtype=torch.float32: 1e11)
    assert fb.byte_floor_s(4e9, "cpu") == pytest.approx(0.2)
    assert fb.flop_floor_s(3e11, "cpu") == pytest.approx(3.0)


def test_impls_come_from_the_registry(monkeypatch):
    """bench.common.impls: eager, compile, then fastgan-<backend> for the backends every named op has (the registry)
    that can run on the device (why_not), never 'reference' or Triton's CPU interpreter."""
    have = {"a": frozenset({"reference", "cpp", "cuda", "triton"}), "b": frozenset({"reference", "cpp", "cuda"})}
    monkeypatch.setattr(common, "registry", SimpleNamespace(backends=have.__getitem__))
    monkeypatch.setattr(common, "why_not", lambda b, dev: None)
    assert common.impls("a", "cpu") == ["eager", "compile", "fastgan-cpp"]
    assert common.impls("a", "cuda") == ["eager", "compile", "fastgan-cuda", "fastgan-triton"]
    assert common.impls(("a", "b"), "cuda") == ["eager", "compile", "fastgan-cuda"]
    monkeypatch.setattr(common, "why_not", lambda b, dev: "no nvcc" if b == "cuda" else None)
    assert common.impls("a", "cuda") == ["eager", "compile", "fastgan-triton"]
    assert common.unavailable_impls("cuda") == {"fastgan-cuda": "no nvcc"}


class FakeBenchmark:
    """pytest-benchmark's fixture as measure() uses it: group, extra_info, a call that runs fn, stats after it."""

    def __init__(self, disabled=False):
        self.group, self.extra_info, self.stats, self.disabled, self.calls = None, {}, None, disabled, 0

    def __call__(self, fn):
        for _ in range(1 if self.disabled else 3):
            fn()
        self.calls += 1
        if not self.disabled:
            self.stats = SimpleNamespace(stats=SimpleNamespace(median=0.5))


def test_measure_is_the_case_tail():
    calls = []

    def run():
        calls.append(torch.ones(1000))  # 4000 bytes of tensor memory per call

    bench = FakeBenchmark()
    common.measure(bench, bench.extra_info, "fastgan-cpp", "cpu", run, group="op-S-fwd", warmup=2,
                   floor_s=lambda: 0.25 if len(calls) == 2 else None, items=10, unit="samples", n=4,
                   lazy=lambda: len(calls))  # lazy values: after the warm-up, before the timed rounds
    e = bench.extra_info
    assert bench.group == "op-S-fwd" and bench.calls == 1 and len(calls) == 2 + 3 + 1  # warm-up, rounds, peak
    assert e["impl"] == "fastgan-cpp" and e["n"] == 4 and e["lazy"] == 2 and e["floor_s"] == 0.25
    assert e["pct_of_floor"] == pytest.approx(50.0) and e["items"] == 10 and e["unit"] == "samples"
    assert e["peak_bytes"] >= 4000 and "other_cpu_load" in e
    off = FakeBenchmark(disabled=True)  # --benchmark-disable: a smoke run records no ratios
    common.measure(off, off.extra_info, "eager", "cpu", lambda: None, group="g", warmup=1, floor_s=1.0, items=1,
                   unit="samples")
    assert off.extra_info == {"impl": "eager", "floor_s": 1.0}


def test_measure_records_what_compile_cannot_run():
    def boom():
        raise RuntimeError("no double backward\nmore")

    kw = dict(group="g", warmup=1, floor_s=1.0, items=1, unit="samples", compile_fails="the step")
    with pytest.raises(pytest.xfail.Exception, match="torch.compile cannot run the step: RuntimeError: no double"):
        common.measure(FakeBenchmark(), {}, "compile", "cpu", boom, **kw)
    with pytest.raises(RuntimeError):  # any other impl's error is a failure
        common.measure(FakeBenchmark(), {}, "eager", "cpu", boom, **kw)


def test_rows_throughput_failures_and_losses():
    rs = report.rows(fake_results())
    assert [r["impl"] for r in rs[:3]] == ["eager", "compile", "fastgan-cpp"]  # baselines first in a group
    fast = rs[2]
    assert fast["throughput"] == pytest.approx(2048 / 0.005)
    step = [r for r in rs if r["group"].startswith("train-step") and r["impl"] == "fastgan-cpp"][0]
    assert step["compile_failure"] == "torch.compile cannot run the step: boom"
    assert report._vs_compile(step) == "fails: torch.compile cannot run the step: boom"
    assert report.losses(rs) == ["- train-step-bigan-B128: fastgan-cpp is **slower than eager** (0.83x: 60.000 ms)"]


def test_report_markdown_and_plots(tmp_path):
    src = tmp_path / "m-2026-01-01.json"
    src.write_text(json.dumps(fake_results()))
    md = report.write_report(src)
    text = md.read_text()
    assert md == tmp_path / "m-2026-01-01.md"
    assert "copy bandwidth 20.0 GB/s, fp32 GEMM rate 100.0 GFLOP/s" in text
    assert "| fastgan-cpp | 5.000 | 1.000 | 0.1 | 409.60 ksamples/s | 2.00x | 1.60x | 80% |" in text
    assert "fails: torch.compile cannot run the step: boom" in text
    assert "slower than eager** (0.83x" in text
    assert (tmp_path / "m-2026-01-01-speedups.png").stat().st_size > 0
    assert (tmp_path / "m-2026-01-01-scaling-mmd2.png").stat().st_size > 0  # two sizes of mmd2: a scaling plot
    assert "m-2026-01-01-scaling-mmd2.png" in text
    assert "exceed 100 %" not in text
    res = fake_results()
    res["benchmarks"][2]["extra_info"]["pct_of_floor"] = 130.0
    res["failures"][0]["reason"] = "x" * 300
    src.write_text(json.dumps(res))
    text = report.write_report(src).read_text()
    assert "1 row(s) exceed 100 % of their floor (mmd2-n1024-d64)" in text
    assert "fails: " + "x" * 99 + "…" in text  # a long reason is cut in the table ...
    assert "x" * 300 in text  # ... and whole in the list of cases that could not run


def test_compare_flags_regressions_and_improvements(tmp_path):
    old = fake_results()
    new = json.loads(json.dumps(old))
    new["benchmarks"][2]["stats"]["median"] = 0.0056  # +12 %: a regression at the 10 % threshold
    new["benchmarks"][0]["stats"]["median"] = 0.0080  # -20 %: an improvement
    new["benchmarks"].pop()  # a case only in the old file
    diff = {(d["group"], d["impl"]): d for d in report.compare(old, new, threshold=0.10)}
    assert diff[("mmd2-n1024-d64", "fastgan-cpp")]["flag"] == "regression"
    assert diff[("mmd2-n1024-d64", "eager")]["flag"] == "improvement"
    assert diff[("mmd2-n1024-d64", "compile")]["flag"] == ""
    assert diff[("train-step-bigan-B128", "fastgan-cpp")]["new_s"] is None
    assert report.compare(old, new, threshold=0.15)[2]["flag"] == ""  # 12 % is within 15 %
    assert "1 regression(s)" in report.format_compare(list(diff.values()))
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(old)), b.write_text(json.dumps(new))
    assert bench_main(["compare", str(a), str(b)]) == 1
    assert bench_main(["compare", str(a), str(a)]) == 0
    with pytest.raises(ValueError, match="threshold"):
        report.compare(old, new, threshold=-1)


def test_bad_results_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        report.load(tmp_path / "bad.json")
    (tmp_path / "odd.json").write_text("[]")
    with pytest.raises(ValueError, match="'benchmarks' list"):
        report.load(tmp_path / "odd.json")


def _item(module, name, **params):
    return SimpleNamespace(module=module, originalname=name, callspec=SimpleNamespace(params=params))


def test_quick_selection_keeps_one_case_per_function_with_every_impl():
    plain = SimpleNamespace(__name__="bench_a")
    step = SimpleNamespace(__name__="bench_step", QUICK={"model": "bigan"})
    items = [_item(plain, "test_op", impl=i, n=n) for n in (64, 256) for i in ("eager", "fastgan-cpp")]
    items += [_item(step, "test_step", impl=i, model=m) for m in ("ae-l1", "bigan", "gan")
              for i in ("eager", "compile")]
    kept = quick_selection(items)
    assert [(it.originalname, it.callspec.params) for it in kept] == [
        ("test_op", {"impl": "eager", "n": 64}), ("test_op", {"impl": "fastgan-cpp", "n": 64}),
        ("test_step", {"impl": "eager", "model": "bigan"}), ("test_step", {"impl": "compile", "model": "bigan"})]


def test_quick_selection_takes_one_case_per_listed_value():
    step = SimpleNamespace(__name__="bench_step", QUICK={"model": ("bigan", "wgan-gp")})
    items = [_item(step, "test_step", impl=i, model=m) for m in ("ae-l1", "bigan", "gan", "wgan-gp")
             for i in ("eager", "fastgan-cuda")]
    kept = [(it.callspec.params["model"], it.callspec.params["impl"]) for it in quick_selection(items)]
    assert kept == [("bigan", "eager"), ("bigan", "fastgan-cuda"), ("wgan-gp", "eager"), ("wgan-gp", "fastgan-cuda")]


def test_auto_table_picks_the_faster_family_per_op(tmp_path):
    from bench import auto_table

    def case(group, impl, median):  # the op: the benchmark's file, bench/bench_<op>.py
        stem = {"mmd2": "kernel_sum", "minibatch": "minibatch_discrimination", "train": "train_step"}.get(
            group.split("-")[0].split("_")[0], group.split("-")[0])
        return {"group": group, "fullname": f"bench/bench_{stem}.py::test_x[{impl}]", "params": {"impl": impl},
                "stats": {"median": median}}

    benchmarks = [case("mmd2-n1024-d64-fwd+bwd", "fastgan-cuda", 2.0),
                  case("mmd2-n1024-d64-fwd+bwd", "fastgan-triton", 1.0),
                  case("mmd2-n4096-d64-fwd+bwd", "fastgan-cuda", 8.0),
                  case("mmd2-n4096-d64-fwd+bwd", "fastgan-triton", 2.0),
                  case("bias_act-S-fwd", "fastgan-cuda", 1.0), case("bias_act-S-fwd", "fastgan-triton", 4.0),
                  case("bias_act-S-fwd", "eager", 0.5), case("minibatch_discrimination-B64-fwd", "fastgan-triton", 1.0),
                  case("train-step-bigan-B128", "fastgan-cuda", 1.0)]
    assert [auto_table.op_of(b) for b in benchmarks[::2]] == ["kernel_sum", "kernel_sum", "bias_act", "bias_act", None]
    m = auto_table.measure(benchmarks)
    assert m["kernel_sum"]["cases"] == 2 and abs(m["kernel_sum"]["ratio"] - 8 ** 0.5) < 1e-12
    assert m["bias_act"]["ratio"] == 0.25 and m["minibatch_discrimination"] == {"cases": 0, "ratio": None,
                                                                                 "only": "fastgan-triton"}
    res = tmp_path / "r.json"
    res.write_text(json.dumps({"benchmarks": benchmarks}))
    assert auto_table.main([str(res), "--out", str(tmp_path / "a.md")]) == 0
    md = (tmp_path / "a.md").read_text()
    assert "| kernel_sum | 2 | 2.83 | triton |" in md and "| bias_act | 1 | 0.25 | cuda |" in md
    assert "only fastgan-triton ran" in md and "| joint_linear | 0 | — | not measured |" in md
    assert '"bias_act": AutoChoice("cuda", "r.json", "cuda 4.00x faster over 1 cases"),' in md


def test_the_one_command_builds_its_pytest_run(tmp_path):
    quick = pytest_args("cpu", True, 1, "mmd", tmp_path / "r.json")
    assert "--fastgan-quick" in quick and "--fastgan-save" in quick and quick[quick.index("-k") + 1] == "mmd"
    assert quick[quick.index("--fastgan-results") + 1] == str(tmp_path / "r.json")
    full = pytest_args("cuda", False, None, None, tmp_path / "r.json")
    assert "--fastgan-quick" not in full and full[full.index("--device") + 1] == "cuda"


def test_every_impl_of_a_case_runs_back_to_back():
    mod = SimpleNamespace(__name__="bench_a")
    items = [_item(mod, "test_op", impl=i, n=n) for i in ("eager", "compile", "fastgan-cpp") for n in (64, 256)]
    for it in items:
        it.name = f"test_op[{it.callspec.params['impl']}-{it.callspec.params['n']}]"
    order = [(it.callspec.params["n"], it.callspec.params["impl"]) for it in cases_together(items)]
    assert order == [(64, "eager"), (64, "compile"), (64, "fastgan-cpp"),
                     (256, "eager"), (256, "compile"), (256, "fastgan-cpp")]


def test_quality_table_and_curves(tmp_path, capsys):
    """bench.quality: tiny runs of two models on digits over two seeds -> the Markdown table (mean +- std, the
    samples picture of the first seed), the JSON store, and a second call that reads the finished runs back."""
    from bench import quality

    args = ["--data", "digits", "--models", "gan,ae-l2", "--seeds", "0,1", "--steps", "2", "--hidden", "8",
            "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res"), "--note", "tiny runs"]
    assert quality.main(args) == 0
    md = (tmp_path / "res" / "digits.md").read_text()
    assert "tiny runs" in md and "| gan | 2 | 0, 1 |" in md and "| ae-l2 | 2 | 0, 1 |" in md and " ± " in md
    assert "![gan](gan-samples.png)" in md and (tmp_path / "res" / "gan-samples.png").is_file()
    store = json.loads((tmp_path / "res" / "digits.json").read_text())
    assert [r["seed"] for r in store["gan"]] == [0, 1] and "1nn_accuracy" in store["ae-l2"][0]
    first = (tmp_path / "runs" / "digits" / "gan-seed0" / "results.json").stat().st_mtime_ns
    assert quality.main(args) == 0  # finished runs are read, not trained again
    assert (tmp_path / "runs" / "digits" / "gan-seed0" / "results.json").stat().st_mtime_ns == first
    # --only-finished trains nothing: a seed without a finished run is left out of its row
    assert quality.main([*args[:5], "0,1,2", *args[6:], "--only-finished"]) == 0
    assert not (tmp_path / "runs" / "digits" / "gan-seed2").exists()
    assert "| gan | 2 | 0, 1 |" in (tmp_path / "res" / "digits.md").read_text()
    png = tmp_path / "c.png"
    assert quality.main(["curves", str(png), f"a={tmp_path / 'runs' / 'digits' / 'gan-seed0'}",
                         f"b={tmp_path / 'runs' / 'digits' / 'gan-seed1'}", "--title", "t"]) == 0
    assert png.is_file()
    with pytest.raises(SystemExit):
        quality.main(["--models", "nope", "--runs", str(tmp_path / "r2"), "--results", str(tmp_path / "r2")])
    assert "unknown ['nope']" in capsys.readouterr().err
