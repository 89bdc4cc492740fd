#!/usr/bin/env bash
# One script for a GPU machine (the device tool): build against the torch installed there, run
# the CUDA tests, compute-sanitizer (memcheck, racecheck, synccheck) on a small script, and the CUDA
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
{ command -v nvcc; nvcc --version | tail -1; command -v cmake || $py -c "import cmake; print('cmake (pip)')"; } \
  2>&1 | tee -a "$OUT/summary.txt"
# Hopper only here to save build time; the default build covers sm_80 and sm_90.
pip_install() {
  $py -m pip install --no-build-isolation --no-deps -v . \
    -Ccmake.define.SAL_EXT_CUDA_ARCHITECTURES=90 "$@" > "$OUT/build.log" 2>&1
}
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
pip_install; rc=$?
if [ $rc != 0 ] && grep -q externally-managed "$OUT/build.log"; then
  pip_install --break-system-packages; rc=$?
fi
if [ $rc != 0 ]; then echo "BUILD FAILED" | tee -a "$OUT/summary.txt"; tail -40 "$OUT/build.log"; exit 1; fi
grep -i "warning" "$OUT/build.log" | grep -v "^ *WARNING: Running pip\|pip version" | head -20 | tee -a "$OUT/summary.txt"
REPO=$PWD
cd /tmp  # import the installed package, not the sources (from here on nothing runs in $REPO's root)
$py -c "import sal_ext, torch; b = sal_ext.ops.backends(); print(sal_ext.__file__, b, torch.__version__, torch.cuda.get_device_name()); assert b['cuda'] and b['cuda_device'], 'no CUDA kernels or no GPU'" \
  2>&1 | tee -a "$OUT/summary.txt"
if [ "${PIPESTATUS[0]}" != 0 ]; then echo "CUDA BUILD NOT USABLE" | tee -a "$OUT/summary.txt"; exit 1; fi

step "tests (CUDA variants run here)"
# from /tmp: `python -m pytest` puts the working directory on sys.path, and in the repository
# root that would import the source tree's sal_ext (no compiled _C: every CUDA test skipped)
timeout 200 $py -m pytest -q -p no:cacheprovider -rs --rootdir "$REPO" "$REPO/python_tests" -k "cuda or build" \
  > "$OUT/tests.log" 2>&1 || status=1
tail -5 "$OUT/tests.log" | tee -a "$OUT/summary.txt"
grep -c "SKIPPED" "$OUT/tests.log" | sed 's/^/skipped: /' | tee -a "$OUT/summary.txt"

step "compute-sanitizer memcheck + racecheck + synccheck"
# No caching allocator: every tensor is its own cudaMalloc, so memcheck sees an out-of-bounds
# access past a tensor (inside a cached segment it would be invisible). API errors are torch's
# own probes (ours raise in the script); --report-api-errors no keeps them from failing the run.
for tool in memcheck racecheck synccheck; do
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 120 compute-sanitizer --tool $tool --report-api-errors no \
    --error-exitcode 7 $py "$REPO/benchmarks/gpu_sanitize.py" > "$OUT/sanitizer_$tool.log" 2>&1 || status=1
  tail -3 "$OUT/sanitizer_$tool.log" | tee -a "$OUT/summary.txt"
done

step "benchmarks (CUDA)"
timeout 180 $py "$REPO/benchmarks/bench_ops.py" --device cuda --json "$OUT/bench_cuda.json" > "$OUT/bench_cuda.log" 2>&1 || status=1
tail -30 "$OUT/bench_cuda.log" | tee -a "$OUT/summary.txt"
step "done, status $status"
exit $status
