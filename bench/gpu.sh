#!/usr/bin/env bash
# The GPU check: one prepared call on a lent GPU machine (device time is ~15 minutes in all, start-up included, at
# most 10 per call), so the whole plan is budgeted to finish in 8 minutes on a 16-core H100/H200 with a cold Triton
# cache. Every step has its own time limit; a step that fails or runs out of time is reported and the next one runs.
#
#   bash bench/gpu.sh            # on the GPU machine; logs and results go to $OUT (default /tmp/fastgan-gpu)
#   bash bench/gpu.sh --dry-run  # the same plumbing on a CPU machine (CI): no build, the CPU part of the selected
#                                # tests, one benchmark case, the auto table and the copy to $OUT
#
# Plan (limit per step; expected on an H200 with 16 cores):
#   0. preflight       15 s  nvidia-smi, nvcc --version against torch.version.cuda (same major), the test / bench imports
#   1. build          210 s  pip install -e . with the CUDA kernels (FASTGAN_CUDA_ARCHS=90, MAX_JOBS = cores); if it
#                            fails: a CPU-only build (FASTGAN_CUDA=0), so the Triton tests still run    (~120 s)
#   2. tests, cuda     60 s  every op test on the cuda backend (-k cuda): fwd / bwd / double bwd vs the reference (~30 s)
#   3. tests, train    60 s  one iteration of every recipe on cuda and triton under sync debug "error", the
#                            weight-gradient skip on device threads, AMP, the penalty tests             (~40 s)
#   4. tests, triton   90 s  every op test on the triton backend (-k triton; cold cache: compiles)   (~80 s)
#   5. benchmark       90 s  python -m bench run --quick --device cuda: every op at its quick shape, the BiGAN and
#                            WGAN-GP steps (not the BEGAN or bring-your-own-model cases: CPU-suite only);
#                            eager, torch.compile, cuda, triton; nvidia-ml-py telemetry  (~80 s)
#   6. auto table       5 s  bench/auto_table.py: the measured per-op choice of auto on CUDA tensors -> gpu-auto.md
#   then everything is copied to $OUT: logs, junit XML, results JSON, the Markdown report and plots, gpu-auto.md.
# Worst case: 15 + 210 + 60 + 60 + 90 + 90 + 5 = 530 s; expected ~6 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; fi
OUT="${OUT:-/tmp/fastgan-gpu}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
T0=$SECONDS
status=()   # one line per step for the summary

step() {  # step NAME LIMIT_S CMD...: runs CMD with a time limit, logs to $OUT/NAME.log, records the outcome
  local name=$1 limit=$2
  shift 2
  local t=$SECONDS
  echo "== $name (limit ${limit} s)"
  timeout -s INT -k 10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  local how="ok"
  if ((rc == 124 || rc == 137 || rc == 130)); then how="TIMED OUT"; elif ((rc != 0)); then how="FAILED rc=$rc"; fi
  tail -n 4 "$OUT/$name.log" | sed 's/^/   /'
  status+=("$(printf '%-14s %-12s %4d s' "$name" "$how" $((SECONDS - t)))")
  return $rc
}

TESTS_OPS=(tests/test_bias_act.py tests/test_joint_linear.py tests/test_mmd.py tests/test_minibatch_disc.py)
TESTS_TRAIN=(tests/test_routing.py tests/test_penalties.py tests/test_train_amp.py)
PYTEST=(python -m pytest -q -p no:cacheprovider -rs)

if ((DRY)); then
  DEVICE=cpu
  step preflight 60 python -c "import torch, pytest, pytest_benchmark, fastgan, fastgan._triton; print(fastgan.backend_info())"
  # the CPU part of the selected tests: the resolution-rule routing of every op and recipe (the GPU-only ones skip)
  step tests-train 300 "${PYTEST[@]}" tests/test_routing.py -k "cuda or triton" --junitxml="$OUT/tests-train.xml"
  step bench 300 python -m bench run --quick --device cpu -k "test_bias_act and fwd and not bwd" --out "$OUT/bench"
else
  DEVICE=cuda
  export MAX_JOBS="${MAX_JOBS:-$(nproc)}" FASTGAN_CUDA_ARCHS="${FASTGAN_CUDA_ARCHS:-90}"
  {
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    echo "nvcc: $(nvcc --version | tail -n 2 | head -n 1)"
    python - <<'EOF'
import re, subprocess, torch
import pytest, pytest_benchmark, pynvml, triton  # noqa: F401 (the test and bench imports)
nvcc = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout
v = re.search(r"release (\d+)\.(\d+)", nvcc)
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), triton {triton.__version__}, nvcc {v.group(0) if v else '?'}")
if v is None or torch.version.cuda is None or v.group(1) != torch.version.cuda.split(".")[0]:
    raise SystemExit(f"nvcc {v.group(0) if v else 'not found'} and torch's CUDA {torch.version.cuda} differ in major")
EOF
  } >"$OUT/preflight.log" 2>&1
  pre=$?
  cat "$OUT/preflight.log"
  status+=("$(printf '%-14s %-12s' preflight "$([[ $pre == 0 ]] && echo ok || echo "FAILED rc=$pre")")")
  cuda_ok=0
  if ((pre == 0)) && step build 210 env FASTGAN_CUDA=1 pip install --no-build-isolation --no-deps -e .; then
    cuda_ok=1
  else
    echo "   the CUDA build failed: building the CPU kernels only, so that the Triton tests still run"
    step build-cpu 150 env FASTGAN_CUDA=0 pip install --no-build-isolation --no-deps -e .
  fi
  python -m fastgan info >"$OUT/info.json" 2>&1
  if ((cuda_ok)); then
    step tests-cuda 60 "${PYTEST[@]}" "${TESTS_OPS[@]}" -k cuda --junitxml="$OUT/tests-cuda.xml"
  fi
  step tests-train 60 "${PYTEST[@]}" "${TESTS_TRAIN[@]}" --junitxml="$OUT/tests-train.xml"
  step tests-triton 90 "${PYTEST[@]}" "${TESTS_OPS[@]}" -k triton --junitxml="$OUT/tests-triton.xml"
  step bench 90 python -m bench run --quick --device cuda -k "not byo and not began" --out "$OUT/bench"
fi

res=$(ls -t "$OUT"/bench/*-quick.json 2>/dev/null | head -n 1)
if [[ -n "$res" ]]; then
  step auto-table 30 python -m bench.auto_table "$res" --out "$OUT/gpu-auto.md"
else
  status+=("auto-table     no results file")
fi
python -m fastgan info >"$OUT/info.json" 2>&1 || true

echo "== summary ($((SECONDS - T0)) s, device $DEVICE)"
printf '%s\n' "${status[@]}" | tee "$OUT/summary.txt"
if grep -q -e FAILED -e "TIMED OUT" "$OUT/summary.txt"; then exit 1; fi
exit 0
