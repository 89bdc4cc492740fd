#!/usr/bin/env bash
# Development build of sal_ext._C with the CUDA kernels compiled for the CPU emulator of
# csrc/emu/ (no GPU, no nvcc), in place (sal_ext/_C*.so), so that the tests' "cuda" variants and
# `with sal_ext.ops.emulate_cuda():` run the CUDA kernels' own code on the CPU.
#   tools/emu_build.sh [plain|tsan|asan] [build-dir]
#     plain  the emulator alone (default)
#     tsan   + ThreadSanitizer (run python with LD_PRELOAD=$(gcc -print-file-name=libtsan.so))
#     asan   + AddressSanitizer and UndefinedBehaviorSanitizer, C++ kernels included
#            (LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)",
#             ASAN_OPTIONS=detect_leaks=0)
# A later `tools/dev_build.sh` (or pip install) replaces the in-place module again.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-plain}
case $kind in
  plain) san="" ;;
  tsan) san=thread ;;
  asan) san=address ;;
  *) echo "usage: tools/emu_build.sh [plain|tsan|asan] [build-dir]" >&2; exit 2 ;;
esac
build=${2:-build/emu-$kind}
py=${PYTHON:-python}
# RelWithDebInfo: not stripped (the emulator reads the symbol table) and symbolised reports
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAL_EXT_INPLACE=ON \
  -DSAL_EXT_CUDA=OFF -DSAL_EXT_CUDA_EMU=ON -DSAL_EXT_NATIVE=OFF -DSAL_EXT_SANITIZE=$san \
  -DPython_EXECUTABLE="$(command -v $py)" -Dpybind11_DIR="$($py -m pybind11 --cmakedir)" > /dev/null
cmake --build "$build" -j2
