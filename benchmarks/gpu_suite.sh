#!/usr/bin/env bash
# The GPU suite, in one call, on a machine with an NVIDIA GPU (no network needed; PyTorch with
# CUDA there for the comparisons). From the repository root:
#
#     bash benchmarks/gpu_suite.sh OUTDIR
#
# 1. device and tool versions (nvidia-smi, nvcc, Python, PyTorch)
# 2. build and install: pip install --no-build-isolation --no-deps .
# 3. the whole test suite, CUDA tests included: python3 -m pytest -q tests
# 4. benchmarks/bench_kernels.py on cuda:0 at batch 128, against cuDNN/cuBLAS
# 5. benchmarks/bench_e2e.py on cuda:0 at batch 128, against PyTorch; then
#    benchmarks/bench_columns.py (one device vs the two columns on cuda:0 + cuda:1) where the
#    machine has 2 CUDA devices (skipped, and recorded so, with fewer)
# 6. compute-sanitizer memcheck over the CUDA tests of the op test files
# 7. the CUDA tests again with PYCONVNET_SYNC_LAUNCHES=1 (a fault is reported at its launch)
# 8. python -m pyconvnet.train --device cuda for TRAIN_EPOCHS epochs (default 2), into e2e.txt
#
# OUTDIR receives up to 10 files, no subfolders: suite.log (versions, each step's status and
# time, the summary tables), build.log, tests.log (steps 3 and 7), kernels.txt, kernels.json,
# e2e.txt, e2e.json, columns.txt, columns.json (2 devices only), sanitizer.log. A failing or timed-out step is recorded and the suite goes on; the
# exit status is 1 if any step failed. Everything fits in SUITE_BUDGET_S seconds (default 480):
# each step runs under its own limit clipped to what is left, and a step with under 30 s left is
# skipped (and recorded so). Environment: PYTHON (default python3), PYCONVNET_COMMIT (the commit
# being measured, for copies of the tree without .git), SUITE_BUDGET_S, BATCH (default 128).
set -uo pipefail

OUT=${1:?usage: bash benchmarks/gpu_suite.sh OUTDIR}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
BATCH=${BATCH:-128}
BUDGET=${SUITE_BUDGET_S:-480}
START=$(date +%s)
DEADLINE=$((START + BUDGET))
SUITE="$OUT/suite.log"
: >"$SUITE"
FAILED=0
SUMMARY=()

if [[ -z "${PYCONVNET_COMMIT:-}" ]]; then
  if git rev-parse --short=12 HEAD >/dev/null 2>&1; then
    PYCONVNET_COMMIT=$(git rev-parse --short=12 HEAD)
    [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] && PYCONVNET_COMMIT+="+dirty"
  else
    PYCONVNET_COMMIT="unknown (no .git here: set PYCONVNET_COMMIT)"
  fi
fi
export PYCONVNET_COMMIT

say() { echo "$*" | tee -a "$SUITE"; }

# run_step NAME MAX_SECONDS LOG COMMAND...: runs COMMAND with its output appended to LOG, under
# min(MAX_SECONDS, time left); records ok / FAILED / TIMEOUT / SKIPPED and the duration. With
# OPTIONAL_STEP=1 (steps 6-7: done if time allows) a timeout is recorded but is no failure.
run_step() {
  local name=$1 max=$2 log=$3
  shift 3
  local left=$((DEADLINE - $(date +%s)))
  if ((left < 30)); then
    SUMMARY+=("$(printf '%-22s SKIPPED: %ss of the %ss budget left' "$name" "$left" "$BUDGET")")
    say "--- $name: SKIPPED (${left}s left)"
    return 0
  fi
  local limit=$((max < left ? max : left))
  say "--- $name (limit ${limit}s): $*"
  echo "=== $name (limit ${limit}s): $* ===" >>"$log"
  local t0 rc status
  t0=$(date +%s)
  timeout --kill-after=15 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  local dt=$(($(date +%s) - t0))
  case $rc in
    0) status="ok" ;;
    124 | 137)
      if [[ -n "${OPTIONAL_STEP:-}" ]]; then
        status="TIMEOUT after ${limit}s (optional: partial)"
      else
        status="TIMEOUT after ${limit}s"; FAILED=1
      fi ;;
    *) status="FAILED (exit $rc)"; FAILED=1 ;;
  esac
  echo "=== $name: $status in ${dt}s ===" >>"$log"
  SUMMARY+=("$(printf '%-20s %-26s %5ss  -> %s' "$name" "$status" "$dt" "$(basename "$log")")")
  say "--- $name: $status in ${dt}s"
}

# ------------------------------------------------------------------ 1. device and versions
{
  echo "pyconvnet GPU suite — $(date -u '+%Y-%m-%d %H:%M:%S UTC') — commit $PYCONVNET_COMMIT"
  echo "host: $(hostname) — $(uname -srm) — $(nproc) CPUs — budget ${BUDGET}s — batch $BATCH"
  echo
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.memory,clocks.sm,power.limit,driver_version,compute_cap \
      --format=csv 2>&1
  else
    echo "nvidia-smi: not found"
  fi
  echo
  NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  "$NVCC" --version 2>&1 | tail -n 2 || echo "nvcc: not found"
  "$PY" - <<'EOF' 2>&1
import platform, sys
print("python", platform.python_version(), sys.executable)
try:
    import torch
    print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(),
          "device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
except Exception as e:  # the suite still runs pyconvnet alone
    print("torch: not usable:", e)
for m in ("numpy", "pytest", "pybind11", "scikit_build_core"):
    try:
        print(m, __import__(m).__version__)
    except Exception as e:
        print(m, "missing:", e)
EOF
  echo
} >>"$SUITE" 2>&1

# ------------------------------------------------------------------ 2. build and install
# PIP_BREAK_SYSTEM_PACKAGES: the GPU machine's Python may be marked externally managed; the
# machine is throwaway. CMAKE_BUILD_PARALLEL_LEVEL: compile on every core.
run_step build 300 "$OUT/build.log" env PIP_BREAK_SYSTEM_PACKAGES=1 CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$PY" -m pip install --no-build-isolation --no-deps -v .
"$PY" -c "import pyconvnet, pyconvnet.cuda as c; print('pyconvnet', pyconvnet.__version__, 'from', pyconvnet._C.__file__, '| CUDA built:', c.is_built(), '| available:', c.is_available(), c.unavailable_reason())" \
  >>"$SUITE" 2>&1 || say "pyconvnet does not import after the build (see build.log)"

# ------------------------------------------------------------------ 3. tests
run_step tests 150 "$OUT/tests.log" "$PY" -m pytest -q -rfEs -p no:cacheprovider tests

# ------------------------------------------------------------------ 4-5. benchmarks
# bench_kernels stops starting new cases at --time-limit, so its tables and JSON are written
# even when the budget runs short.
left=$((DEADLINE - $(date +%s)))
klimit=$((left - 110 < 240 ? left - 110 : 240))  # keep ~110 s for the end-to-end run
((klimit < 60)) && klimit=60
run_step kernel-benchmark $((klimit + 40)) "$OUT/kernels.txt" \
  "$PY" benchmarks/bench_kernels.py --device cuda:0 --batch "$BATCH" --time-limit "$klimit" --json "$OUT/kernels.json"
run_step e2e-benchmark 150 "$OUT/e2e.txt" \
  "$PY" benchmarks/bench_e2e.py --device cuda:0 --batch "$BATCH" --json "$OUT/e2e.json"

NDEV=$("$PY" -c "import pyconvnet.cuda as c; print(c.device_count())" 2>/dev/null || echo 0)
if ((NDEV >= 2)); then
  OPTIONAL_STEP=1 run_step columns-benchmark 90 "$OUT/columns.txt" \
    "$PY" benchmarks/bench_columns.py --devices cuda:0,cuda:1 --batch "$BATCH" --json "$OUT/columns.json"
else
  echo "columns-benchmark skipped: the two columns need 2 CUDA devices; this machine has $NDEV" | tee "$OUT/columns.txt" >>"$SUITE"
  SUMMARY+=("$(printf '%-22s SKIPPED: %s CUDA device(s); two columns need 2' columns-benchmark "$NDEV")")
fi

# ------------------------------------------------------------------ 6. compute-sanitizer
SAN=$(command -v compute-sanitizer || true)
for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer \
  /usr/local/cuda-*/bin/compute-sanitizer; do
  [[ -z "$SAN" && -x "$c" ]] && SAN=$c
done
if [[ -n "$SAN" ]]; then
  FILES=()
  # Cheapest first: memcheck slows every kernel many times over, and the budget may end it.
  for f in relu sgd dropout softmax lrn max_pool augment linear conv2d; do
    [[ -f "tests/test_$f.py" ]] && FILES+=("tests/test_$f.py")
  done
  # One pytest run (-v: each test's line is logged as it passes, so a run cut short by the
  # budget still shows how far it got).
  OPTIONAL_STEP=1 run_step sanitizer-memcheck 120 "$OUT/sanitizer.log" \
    "$SAN" --tool memcheck --leak-check no --error-exitcode 99 \
    "$PY" -m pytest -v -x -p no:cacheprovider -m cuda "${FILES[@]}"
else
  echo "compute-sanitizer not found (PATH, /usr/local/cuda*/): memcheck skipped" >"$OUT/sanitizer.log"
  SUMMARY+=("$(printf '%-22s SKIPPED: compute-sanitizer not found' sanitizer-memcheck)")
fi

# ------------------------------------------------------------------ 7. synchronous launches
OPTIONAL_STEP=1 run_step tests-sync-launches 90 "$OUT/tests.log" \
  env PYCONVNET_SYNC_LAUNCHES=1 "$PY" -m pytest -q -rfE -p no:cacheprovider -m cuda tests

# ------------------------------------------------------------------ 8. the main job
# python -m pyconvnet.train on the GPU: the full AlexNet on the built-in dataset, TRAIN_EPOCHS
# epochs (default 2; the full default run is 30), logged after the end-to-end benchmark.
OPTIONAL_STEP=1 run_step train-alexnet 150 "$OUT/e2e.txt" \
  env PYTHONUNBUFFERED=1 PYCONVNET_CACHE="$(mktemp -d)" "$PY" -m pyconvnet.train --device cuda \
  --epochs "${TRAIN_EPOCHS:-2}" --out "$(mktemp -d)/run"

# ------------------------------------------------------------------ summary
{
  echo
  echo "=== steps (total $(($(date +%s) - START))s of ${BUDGET}s) ==="
  printf '%s\n' "${SUMMARY[@]}"
  echo
  echo "=== tests ==="
  grep -E "^(FAILED|ERROR)|[0-9]+ (passed|failed|error)|no tests ran" "$OUT/tests.log" 2>/dev/null | tail -n 20
  if [[ -f "$OUT/kernels.txt" ]]; then
    echo
    echo "=== kernel benchmark: header and summary ==="
    grep -E "^# (device|peak|last-level|balance|note|torch|date)" "$OUT/kernels.txt"
    sed -n '/^## Summary/,$p' "$OUT/kernels.txt"
  fi
  if [[ -f "$OUT/e2e.txt" ]]; then
    echo
    echo "=== end-to-end benchmark ==="
    grep -vE "^# (python|note: AVX|timing)|^epoch [0-9]+/[0-9]+ step" "$OUT/e2e.txt" | tail -n 30
  fi
  if [[ -f "$OUT/columns.txt" ]]; then
    echo
    echo "=== two-column benchmark ==="
    grep -vE "^# (timing)" "$OUT/columns.txt" | tail -n 10
  fi
  echo
  echo "=== compute-sanitizer ==="
  grep -E "^=== |ERROR SUMMARY|Invalid|[0-9]+ (passed|failed)|not found" "$OUT/sanitizer.log" 2>/dev/null | tail -n 30
} >>"$SUITE" 2>&1
sed -n '/^=== steps/,$p' "$SUITE"
echo
echo "results in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
exit $FAILED
