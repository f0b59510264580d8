"""The GPU check's preflight (bench/gpu.sh, step 0): the versions, the GPU, the CUDA toolkit setup.py will build
with (fastgan/_toolkit.py: the same search) and nvcc's CUDA major against torch's, and which of the steps' imports
are missing. Exit status 1 when no usable toolkit is found (the build would silently be CPU-only)."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fastgan"))
from _toolkit import find_cuda_toolkit  # noqa: E402  (by path: importing fastgan would load the extension)


def main() -> int:
    print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
          f"triton {triton.__version__}")
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        print(f"GPU {p.name}: sm_{p.major}{p.minor}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.1f} GiB")
    else:
        print("no CUDA device visible to torch")
    home, how = find_cuda_toolkit()
    nvcc = subprocess.run([f"{home}/bin/nvcc", "--version"], capture_output=True, text=True).stdout if home else ""
    v = re.search(r"release (\d+)\.(\d+)", nvcc)
    print(f"CUDA toolkit: {home} (found by: {how}); nvcc {v.group(0) if v else 'none'}")
    missing = [m for m in ("pytest", "pytest_benchmark", "xdist", "pynvml", "hypothesis", "expecttest", "mlxtend",
                           "sklearn", "scipy") if importlib.util.find_spec(m) is None]
    print("missing Python packages:", ", ".join(missing) or "none")
    if home is None or v is None or torch.version.cuda is None:
        print("no usable CUDA toolkit: the build would be CPU-only")
        return 1
    if v.group(1) != torch.version.cuda.split(".")[0]:
        print(f"nvcc {v.group(0)} and torch's CUDA {torch.version.cuda} differ in major")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
