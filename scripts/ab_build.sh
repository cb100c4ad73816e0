#!/usr/bin/env bash
# Builds the CPU engine of another commit as a reference for scripts/ab_compare.py, which times
# it against the working tree's in one process (both loaded side by side, calls alternated), so
# that a change of a few percent shows through a machine whose speed drifts from minute to minute.
#   scripts/ab_build.sh [REF]        # REF: a commit (default HEAD); prints the module's path
#   PYTHON=/path/to/python scripts/ab_build.sh HEAD~1
# The reference is compiled with its own pybind11 internals id (PYBIND11_COMPILER_TYPE), so that
# its types do not clash with the working tree's module in the same interpreter. It lives in
# build/ab/<commit> (a git worktree there, and its build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
REF=$(git rev-parse --short "${1:-HEAD}")
DIR=build/ab/$REF
if [ ! -d "$DIR/src" ]; then
  mkdir -p "$DIR"
  git worktree add --detach "$DIR/src" "$REF" >/dev/null
fi
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
cmake -S "$DIR/src" -B "$DIR/build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DPYCONVNET_CUDA=0 \
  -DCMAKE_CXX_FLAGS='-DPYBIND11_COMPILER_TYPE=\"_ab\"' \
  -DPython_EXECUTABLE="$("$PY" -c 'import sys; print(sys.executable)')" \
  -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" >"$DIR/configure.log" 2>&1 || { cat "$DIR/configure.log"; exit 1; }
cmake --build "$DIR/build" -j "$(nproc)" >"$DIR/build.log" 2>&1 || { tail -40 "$DIR/build.log"; exit 1; }
ls "$PWD/$DIR"/build/_C*.so
