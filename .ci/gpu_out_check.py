"""The GPU check's return contract (issue 28), checked on the folder `bash bench/gpu.sh [--dry-run]` filled as $OUT:
the device tool returns at most 8 files from $OUT, none more than 2 folders down, so the check must leave no more; the
ones docs/benchmarks.md promises are there (summary.txt, gpu.tgz, smoke.json, info.json; bench.json and bench.md when
the benchmark ran); the archive opens and holds every step's log the summary names; the smoke stage answered yes.

    python .ci/gpu_out_check.py OUT_DIR        (exit 1 with the reasons when the contract is broken)
"""
from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

MAX_FILES = 8
MAX_DEPTH = 2  # folders below $OUT
REQUIRED = ("summary.txt", "gpu.tgz", "smoke.json", "info.json")


def problems(out: Path) -> list[str]:
    out = Path(out)
    found = [p for p in out.rglob("*") if p.is_file() or p.is_symlink()]
    errs = []
    if len(found) > MAX_FILES:
        errs.append(f"{len(found)} files in {out} (the device returns {MAX_FILES}): "
                    + ", ".join(str(p.relative_to(out)) for p in found))
    deep = [p for p in found if len(p.relative_to(out).parts) - 1 > MAX_DEPTH]
    if deep:
        errs.append(f"more than {MAX_DEPTH} folders down: " + ", ".join(str(p.relative_to(out)) for p in deep))
    errs += [f"missing {name}" for name in REQUIRED if not (out / name).is_file()]
    if (out / "gpu.tgz").is_file():
        try:
            with tarfile.open(out / "gpu.tgz") as tar:
                names = {Path(n).name for n in tar.getnames()}
        except (tarfile.TarError, OSError) as e:
            errs.append(f"gpu.tgz does not open: {e}")
            names = set()
        if (out / "summary.txt").is_file():
            for line in (out / "summary.txt").read_text().splitlines()[1:]:
                step = line.split()[0] if line.split() else ""
                if step and not step.startswith("(") and line.split()[1] not in ("SKIPPED", "no") \
                        and f"{step}.log" not in names and not line.startswith("nvcc") and not line.startswith(" "):
                    errs.append(f"gpu.tgz lacks {step}.log")
    if (out / "smoke.json").is_file():
        try:
            smoke = json.loads((out / "smoke.json").read_text())
        except json.JSONDecodeError as e:
            errs.append(f"smoke.json is not JSON: {e}")
        else:
            if not smoke.get("all_ok"):
                errs.append("smoke.json: not every answer is yes")
    return errs


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    errs = problems(Path(argv[0]))
    for e in errs:
        print(f"gpu.sh's return contract: {e}")
    if not errs:
        print(f"gpu.sh's return contract holds: {len(list(Path(argv[0]).rglob('*')))} entries in {argv[0]}")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
