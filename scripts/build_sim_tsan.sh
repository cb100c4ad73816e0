#!/usr/bin/env bash
# Builds build/sim-tsan/pcn_sim_tsan, the CUDA simulator under ThreadSanitizer
# (docs/simulator.md), which tests/test_simulator.py runs when it exists:
#   scripts/build_sim_tsan.sh && build/sim-tsan/pcn_sim_tsan shared_race kernels
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
BUILD=build/sim-tsan
mkdir -p build
cmake -S . -B "$BUILD" "${GEN[@]}" -DPYCONVNET_SIM=ON -DPYCONVNET_SIM_TSAN=ON \
  -DPython_EXECUTABLE="$("$PY" -c 'import sys; print(sys.executable)')" \
  -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" >"$BUILD.configure.log" 2>&1 || { cat "$BUILD.configure.log"; exit 1; }
cmake --build "$BUILD" --target pcn_sim_tsan -j "$(nproc)"
echo "built $BUILD/pcn_sim_tsan"
