#!/usr/bin/env bash
# Developer build: compiles pyconvnet._C into build/dev and copies it next to the package, so
# `python -m pytest` runs against the working tree without reinstalling. Users run `pip install .`.
#   PYCONVNET_CUDA=0 scripts/build_inplace.sh    # CPU-only, faster to compile
#   PYTHON=/path/to/python scripts/build_inplace.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
BUILD=build/dev${PYCONVNET_CUDA:+-cuda$PYCONVNET_CUDA}
mkdir -p build
cmake -S . -B "$BUILD" "${GEN[@]}" -DPython_EXECUTABLE="$("$PY" -c 'import sys; print(sys.executable)')" \
  -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" >"$BUILD.configure.log" 2>&1 || { cat "$BUILD.configure.log"; exit 1; }
grep 'pyconvnet:' "$BUILD.configure.log" || true
cmake --build "$BUILD" -j "$(nproc)"
# Copy then rename: overwriting the file in place would crash (SIGBUS) any running process that
# has the old module mapped.
for so in "$BUILD"/_C*.so; do
  cp "$so" "pyconvnet/.$(basename "$so").tmp" && mv -f "pyconvnet/.$(basename "$so").tmp" "pyconvnet/$(basename "$so")"
done
echo "built $(ls pyconvnet/_C*.so)"
