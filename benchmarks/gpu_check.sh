#!/usr/bin/env bash
# One script for a GPU machine (the device tool): build against the torch installed there, run
# the CUDA tests, compute-sanitizer (memcheck, racecheck) on a small script, and the CUDA
# benchmarks. Logs and the JSON table go to $OUT (default ./gpu_out). Whole run: < ~8 minutes.
#   bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
status=0
step() { echo "== $* ($(date +%T))" | tee -a "$OUT/summary.txt"; }

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$OUT/summary.txt"

step "build (pip install --no-build-isolation .)"
# Hopper only here to save build time; the default build covers sm_80 and sm_90.
if ! $py -m pip install --no-build-isolation --no-deps -v . \
      -Ccmake.define.SAL_EXT_CUDA_ARCHITECTURES=90 > "$OUT/build.log" 2>&1; then
  echo "BUILD FAILED" | tee -a "$OUT/summary.txt"; tail -40 "$OUT/build.log"; exit 1
fi
cd /tmp  # import the installed package, not the sources
$py -c "import sal_ext, torch; print(sal_ext.ops.backends(), torch.__version__, torch.cuda.get_device_name())" \
  2>&1 | tee -a "$OUT/summary.txt"
cd - > /dev/null

step "tests (CUDA variants run here)"
timeout 240 $py -m pytest -q -x -p no:cacheprovider python_tests -k "cuda or build" > "$OUT/tests.log" 2>&1 || status=1
tail -5 "$OUT/tests.log" | tee -a "$OUT/summary.txt"

step "compute-sanitizer memcheck + racecheck"
for tool in memcheck racecheck; do
  timeout 90 compute-sanitizer --tool $tool --error-exitcode 7 $py benchmarks/gpu_sanitize.py \
    > "$OUT/sanitizer_$tool.log" 2>&1 || status=1
  tail -3 "$OUT/sanitizer_$tool.log" | tee -a "$OUT/summary.txt"
done

step "benchmarks (CUDA)"
timeout 180 $py benchmarks/bench_ops.py --device cuda --json "$OUT/bench_cuda.json" > "$OUT/bench_cuda.log" 2>&1 || status=1
tail -30 "$OUT/bench_cuda.log" | tee -a "$OUT/summary.txt"
step "done, status $status"
exit $status
