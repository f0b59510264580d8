#!/usr/bin/env bash
# nvcc with a stopwatch: torch's extension build runs $PYTORCH_NVCC in nvcc's place, so setup.py's CUDA compiles go
# through here and each .cu's compile time is appended to $FASTGAN_NVCC_TIMES ("seconds file" per line).
# Used by bench/gpu.sh and bench/gpu_stack.sh to report per-file build times. (bash arithmetic only: no bc there)
nvcc="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"
t0=$(date +%s%N)
"$nvcc" "$@"
rc=$?
src=""
for a in "$@"; do [[ "$a" == *.cu ]] && src="$a"; done
if [[ -n "${FASTGAN_NVCC_TIMES:-}" && -n "$src" ]]; then
  ds=$(( ($(date +%s%N) - t0) / 100000000 ))  # tenths of a second
  printf '%d.%d %s%s\n' $((ds / 10)) $((ds % 10)) "$(basename "$src")" "$([[ $rc == 0 ]] || echo " FAILED rc=$rc")" \
    >>"$FASTGAN_NVCC_TIMES"
fi
exit $rc
