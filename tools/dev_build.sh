#!/usr/bin/env bash
# Development build: compiles sal_ext._C into sal_ext/ (in place), so `python -c "import sal_ext"`
# from this folder uses it. CPU only by default; `tools/dev_build.sh cuda` also compiles the CUDA
# sources (they compile here without a GPU). Usage: tools/dev_build.sh [cuda] [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
cuda=OFF; if [ "${1:-}" = cuda ]; then cuda=ON; shift; fi
build=${1:-build/dev-$cuda}
py=${PYTHON:-python}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAL_EXT_INPLACE=ON -DSAL_EXT_CUDA=$cuda \
  -DPython_EXECUTABLE="$(command -v $py)" -Dpybind11_DIR="$($py -m pybind11 --cmakedir)" > /dev/null
cmake --build "$build" -j2
