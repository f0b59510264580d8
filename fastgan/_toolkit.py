"""Finding the CUDA toolkit to build the extension with (standard library only: setup.py loads this file by path).

torch guesses CUDA_HOME from the folder above the `nvcc` on the PATH. Where that `nvcc` is a launcher -- a script or
a link in /usr/local/bin that execs the toolkit's own -- the guess is a folder without libcudart, and the extension's
link fails with `cannot find -lcudart` (issue 28, seen on the CPU machines with CUDA 13.0). So the build asks nvcc
where it lives instead: `nvcc --dryrun` prints its own bin folder as `_HERE_`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def is_toolkit(folder) -> bool:
    """A CUDA toolkit folder: bin/nvcc and a linkable libcudart.so (lib64/ or targets/<arch>/lib/)."""
    if not folder or not (Path(folder) / "bin" / "nvcc").is_file():
        return False
    libs = [Path(folder) / "lib64", Path(folder) / "lib"] + sorted(Path(folder).glob("targets/*/lib"))
    return any((d / "libcudart.so").exists() for d in libs)


def nvcc_home(nvcc: str) -> list[str]:
    """The toolkit folders an nvcc executable names for itself (its `_HERE_`/.. in `--dryrun`), then its real path's."""
    cands = []
    try:
        out = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull], capture_output=True,
                             text=True, timeout=60)
        text = out.stdout + out.stderr
    except (OSError, subprocess.SubprocessError):
        text = ""
    for line in text.splitlines():
        if line.startswith("#$ _HERE_="):
            cands.append(str(Path(line.split("=", 1)[1].strip()).resolve().parent))
    cands.append(str(Path(nvcc).resolve().parent.parent))
    return cands


def find_cuda_toolkit(environ=None) -> tuple[str | None, str]:
    """(toolkit folder or None, how it was found). CUDA_HOME / CUDA_PATH first when they hold a toolkit (when set
    but not a toolkit, say so and keep looking), then where the nvcc on the PATH says it lives, then /usr/local/cuda."""
    environ = os.environ if environ is None else environ
    notes = []
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if environ.get(var):
            if is_toolkit(environ[var]):
                return environ[var], f"{var}"
            notes.append(f"{var}={environ[var]} is not a toolkit (no bin/nvcc or lib64/libcudart.so); ignored")
    nvcc = shutil.which("nvcc", path=environ.get("PATH"))
    if nvcc:
        for cand in nvcc_home(nvcc):
            if is_toolkit(cand):
                return cand, "; ".join(notes + [f"the nvcc on the PATH ({nvcc})"])
        notes.append(f"the nvcc on the PATH ({nvcc}) names no toolkit with libcudart.so")
    if is_toolkit("/usr/local/cuda"):
        return "/usr/local/cuda", "; ".join(notes + ["/usr/local/cuda"])
    return None, "; ".join(notes + ["no CUDA toolkit found"])
