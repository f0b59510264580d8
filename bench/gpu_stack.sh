#!/usr/bin/env bash
# The GPU image's software stack on a CPU machine (issue 28): torch 2.11.0+cu130 and Triton 3.6.0 in a venv beside the
# CUDA 13.0 toolkit here -- the torch, Triton and nvcc the lent GPU machines run (their Python is 3.12; the venv takes
# this machine's). A CUDA build of torch runs without a GPU, so here, in a copy of the tree:
#   1. build fastgan with the CUDA kernels through setup.py (FASTGAN_CUDA=1, sm_90: gpu.sh's flags), each .cu's
#      compile time reported (bench/nvcc_timed.sh), and check that `import fastgan` loads the CUDA build;
#   2. .ci/triton_check.py: every Triton kernel variant compiled for sm_80 / sm_90 by Triton 3.6's compiler;
#   3. (not with --quick) the whole test suite: C++ kernels, Triton under the interpreter; CUDA cases skip.
#
#   bash bench/gpu_stack.sh [--quick] [--no-build]     # CI: --quick (steps 1 and 2)
#
# FASTGAN_GPU_STACK_VENV (default ~/.cache/fastgan/gpu-stack-venv) is created when missing or not of this stack
# (~4.7 GB from the package registry, ~4 minutes); FASTGAN_GPU_STACK_TREE (default ~/.cache/fastgan/gpu-stack-tree)
# is the copy, made afresh each run. numpy < 2.4: Triton 3.6's interpreter cannot run with NumPy 2.4 (fastgan's
# backend probes it and says so); the GPU machines compile the kernels and are not affected.
# Exit status: non-zero when any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
BUILD=1
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    *) echo "usage: bash bench/gpu_stack.sh [--quick] [--no-build]" >&2; exit 2 ;;
  esac
done
VENV="${FASTGAN_GPU_STACK_VENV:-$HOME/.cache/fastgan/gpu-stack-venv}"
TREE="${FASTGAN_GPU_STACK_TREE:-$HOME/.cache/fastgan/gpu-stack-tree}"
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

stack_ok() {
  "$PY" -c "import torch, triton, numpy, sys
ok = torch.__version__ == '2.11.0+cu130' and triton.__version__ == '3.6.0' and tuple(map(int, numpy.__version__.split('.')[:2])) < (2, 4)
sys.exit(0 if ok else 1)" 2>/dev/null
}

t=$SECONDS
if ! stack_ok; then
  echo "== the GPU image's stack: a venv at $VENV (torch 2.11.0+cu130, Triton 3.6.0)"
  python3 -m venv "$VENV"
  "$PY" -m pip install -q torch==2.11.0 triton==3.6.0 "numpy<2.4" "setuptools>=64" wheel ninja pybind11
  "$PY" -m pip install -q pytest pytest-benchmark pytest-xdist hypothesis expecttest mlxtend scikit-learn scipy \
    matplotlib pillow tqdm nvidia-ml-py
  stack_ok || { echo "gpu_stack.sh: the venv at $VENV is not torch 2.11.0+cu130 / Triton 3.6.0" >&2; exit 1; }
fi
"$PY" -c "import torch, triton, numpy, sys; print(f'python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}, numpy {numpy.__version__}')"
echo "   ($((SECONDS - t)) s)"

echo "== a copy of the tree at $TREE"
rm -rf "$TREE" && mkdir -p "$TREE"
git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$TREE"
cd "$TREE"

if ((BUILD)); then
  echo "== build with the CUDA kernels through setup.py (FASTGAN_CUDA=1, sm_90, MAX_JOBS=${MAX_JOBS:-2})"
  rm -f nvcc-times.txt
  t=$SECONDS
  env FASTGAN_CUDA=1 FASTGAN_CUDA_ARCHS=90 MAX_JOBS="${MAX_JOBS:-2}" PYTORCH_NVCC="$TREE/bench/nvcc_timed.sh" \
    FASTGAN_NVCC_TIMES="$TREE/nvcc-times.txt" "$PY" -m pip install -q --no-build-isolation --no-deps -e .
  echo "   build: $((SECONDS - t)) s at MAX_JOBS=${MAX_JOBS:-2}; nvcc seconds per file:"
  sed 's/^/     /' nvcc-times.txt
  "$PY" -c "
import fastgan, sys, torch
from fastgan.ops import OPS
e = fastgan.backend_info()['extension']
print('   import fastgan:', e)
# every kernel of every op with a cuda backend has a CUDA registration (each .cu file registers its own)
missing = [k for op in OPS.values() if 'cuda' in op.backends for k in op.kernels
           if not torch._C._dispatch_has_kernel_for_dispatch_key(f'fastgan::{k}', 'CUDA')]
print('   CUDA kernels registered:', 'all' if not missing else f'missing {missing}')
sys.exit(0 if e['built'] and e['cuda'] and e['cuda_archs'] == '90' and not missing else 1)"
else
  echo "== build, CPU kernels only (--no-build: no CUDA)"
  env FASTGAN_CUDA=0 "$PY" -m pip install -q --no-build-isolation --no-deps -e .
fi

echo "== Triton 3.6 compiles every kernel variant (sm_80, sm_90)"
t=$SECONDS
env -u TRITON_INTERPRET OMP_NUM_THREADS=1 "$PY" .ci/triton_check.py
echo "   ($((SECONDS - t)) s)"

if ((!QUICK)); then
  echo "== the test suite on the GPU image's stack (CPU + Triton interpreter; CUDA cases skip)"
  t=$SECONDS
  "$PY" -m pytest -q -p no:cacheprovider
  echo "   ($((SECONDS - t)) s)"
fi
echo "gpu_stack.sh: all steps passed"
