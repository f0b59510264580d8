#!/usr/bin/env bash
# Compile-only check of every csrc/cuda/*.cu with nvcc (no link, no GPU needed): one object per file, for sm_90,
# in a temporary directory. One line per file; exits non-zero if any file fails. Skips (exit 0) only when nvcc is
# not installed. Extra nvcc flags can be passed as arguments, e.g. `.ci/nvcc_check.sh -gencode arch=compute_80,code=sm_80`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

NVCC="${NVCC:-$(command -v nvcc || true)}"
if [[ -z "$NVCC" && -x /usr/local/cuda/bin/nvcc ]]; then NVCC=/usr/local/cuda/bin/nvcc; fi
if [[ -z "$NVCC" ]]; then
  echo "nvcc_check: SKIPPED: nvcc is not installed (set NVCC=/path/to/nvcc to run this check)"
  exit 0
fi

PYTHON="${PYTHON:-python}"
TI="$("$PYTHON" -c 'import torch, os; print(os.path.dirname(torch.__file__))')/include"
PYINC="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"

defs=(-DFASTGAN_WITH_CUDA)
# CPU-only torch wheels ship the c10/cuda headers but not the generated c10/cuda/impl/cuda_cmake_macros.h
# (it only sets Windows export macros); tell c10/cuda/CUDAMacros.h not to include it.
if [[ ! -f "$TI/c10/cuda/impl/cuda_cmake_macros.h" ]]; then defs+=(-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE); fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

shopt -s nullglob
files=(csrc/cuda/*.cu)
if (( ${#files[@]} == 0 )); then
  echo "nvcc_check: no csrc/cuda/*.cu files"
  exit 0
fi

echo "nvcc_check: $("$NVCC" --version | tail -n 2 | head -n 1)"
fail=0
for f in "${files[@]}"; do
  obj="$tmp/$(basename "${f%.cu}").o"
  start=$SECONDS
  if "$NVCC" -std=c++20 -O3 --expt-relaxed-constexpr -Xcompiler -fPIC "${defs[@]}" \
      -I csrc/include -I "$TI" -I "$TI/torch/csrc/api/include" -I "$PYINC" \
      -gencode arch=compute_90,code=sm_90 "$@" -c "$f" -o "$obj" >"$tmp/log" 2>&1; then
    echo "OK    $f ($((SECONDS - start)) s)"
    if [[ -s "$tmp/log" ]]; then sed 's/^/      /' "$tmp/log"; fi  # warnings
  else
    echo "FAIL  $f ($((SECONDS - start)) s)"
    sed 's/^/      /' "$tmp/log"
    fail=1
  fi
done
exit "$fail"
