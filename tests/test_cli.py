"""The command line: `fastgan info` and a quick `fastgan demo` run for real (no timing is asserted)."""
import json
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "fastgan", *args], capture_output=True, text=True, timeout=600)


def test_info():
    out = run("info")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["backends"]["extension"]["built"] is True
    assert "malloc" in info["allocator"]


def test_demo_quick():
    out = run("demo", "--quick", "--no-compile", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    assert "max relative difference to the reference" in out.stdout
    assert "fastgan-cpp" in out.stdout and "eager" in out.stdout


def test_bad_arguments():
    out = run("demo", "--device", "tpu")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_plot_errors_name_the_run_directory(tmp_path):
    out = run("plot", str(tmp_path / "missing"))
    assert out.returncode == 2 and "is not a directory" in out.stderr
    out = run("plot", str(tmp_path))
    assert out.returncode == 2 and "metrics.jsonl not found" in out.stderr
