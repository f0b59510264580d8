#!/usr/bin/env bash
# Everything GPU-side in one call (for the lent GPU machine: few, full calls): build the extension with CUDA kernels,
# run the whole test suite (CUDA and Triton on the GPU, C++ on the CPU), then the benchmarks on CUDA, saving
# bench/results/<machine>-<date>.json. Logs and results are copied to $OUT when it is set (the device tool).
#   bash bench/gpu.sh                          # build + tests + benchmarks
#   SKIP_BENCH=1 bash bench/gpu.sh             # build + tests (a device call is limited to 10 min: split if needed)
#   SKIP_TESTS=1 BENCH_K="mmd or minibatch" bash bench/gpu.sh   # build + the benchmarks matching a -k expression
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/fastgan-gpu}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MAX_JOBS="${MAX_JOBS:-16}" FASTGAN_CUDA=1 FASTGAN_CUDA_ARCHS="${FASTGAN_CUDA_ARCHS:-90}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"

echo "== build"
t0=$SECONDS
pip install -q --no-build-isolation --no-deps -e . >"$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
echo "built in $((SECONDS - t0)) s"
python -m fastgan info | tee "$OUT/info.json"

tests_rc=0
if [[ -z "${SKIP_TESTS:-}" ]]; then
  echo "== tests"
  python -m pytest -q -rs tests 2>&1 | tee "$OUT/tests.log" | tail -25
  tests_rc=${PIPESTATUS[0]}
fi

if [[ -z "${SKIP_BENCH:-}" ]]; then
  echo "== benchmarks"
  # the suite's one command: results file + Markdown report with plots (python -m bench --help)
  python -m bench run --device cuda ${BENCH_K:+-k "$BENCH_K"} 2>&1 \
    | tee "$OUT/bench.log" | grep -A60 "speedups and floors"
  cp bench/results/*.json bench/results/*.md bench/results/*.png "$OUT/" 2>/dev/null
fi
exit "$tests_rc"
