"""The GPU check's return contract (.ci/gpu_out_check.py; CI runs it on `bash bench/gpu.sh --dry-run`'s $OUT): the
checker itself, on folders made here -- it passes what the device can return whole and fails each way of breaking it."""
import importlib.util
import io
import json
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gpu_out_check", ROOT / ".ci" / "gpu_out_check.py")
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def _out(tmp_path, steps=("preflight", "smoke"), smoke_ok=True, extra=()):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.txt").write_text("fastgan GPU check: 12 s of 400 s\n" + "".join(
        f"{s:13s} ok               3 s  (limit 30 s)\n" for s in steps)
        + "nvcc seconds per file:\n  52.1 kernel_sum.cu\n")
    (out / "smoke.json").write_text(json.dumps({"all_ok": smoke_ok}))
    (out / "info.json").write_text("{}")
    with tarfile.open(out / "gpu.tgz", "w:gz") as tar:
        for s in steps:
            data = b"log"
            info = tarfile.TarInfo(f"./{s}.log")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    for rel in extra:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text("x")
    return out


def test_a_returnable_folder_passes(tmp_path):
    assert check.problems(_out(tmp_path, extra=("bench.json", "bench.md", "gpu-auto.md"))) == []


@pytest.mark.parametrize("extra, smoke_ok, match", [
    ([f"f{i}.txt" for i in range(5)], True, "9 files"),
    (["a/b/c/deep.txt"], True, "more than 2 folders down"),
    ([], False, "not every answer is yes"),
])
def test_each_breach_is_named(tmp_path, extra, smoke_ok, match):
    errs = check.problems(_out(tmp_path, smoke_ok=smoke_ok, extra=extra))
    assert any(match in e for e in errs), errs


def test_a_missing_file_and_a_log_missing_from_the_archive(tmp_path):
    out = _out(tmp_path)
    (out / "info.json").unlink()
    with open(out / "summary.txt", "a") as f:
        f.write("bench         FAILED rc=1      9 s  (limit 60 s)\n")
    errs = check.problems(out)
    assert "missing info.json" in errs and "gpu.tgz lacks bench.log" in errs, errs
