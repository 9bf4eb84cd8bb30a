#!/usr/bin/env bash
# Developer build: compiles fastopt._core into build/dev and copies it next to
# the sources, so `PYTHONPATH=. pytest` runs the working tree. Safe to run
# from several shells at once (flock).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
mkdir -p build/dev
exec 9>build/dev/.lock
flock 9
# Interprocedural optimisation (pybind11's default -flto) off: the link-time
# pass recompiles every translation unit serially and made dev builds take
# tens of minutes on a loaded machine. Wheels (pyproject/scikit-build-core)
# keep pybind11's default. FASTOPT_DEV_LTO=ON restores it here.
# FASTOPT_DEV_MIXED_CLONES=ON builds the mixed loops' AVX2 clone as wheels do.
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INTERPROCEDURAL_OPTIMIZATION="${FASTOPT_DEV_LTO:-OFF}" \
  -DFASTOPT_MIXED_CLONES="${FASTOPT_DEV_MIXED_CLONES:-OFF}" \
  -DPython_EXECUTABLE="$(command -v "$PY")" \
  -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" >/dev/null
cmake --build build/dev
cp build/dev/_core*.so fastopt/
