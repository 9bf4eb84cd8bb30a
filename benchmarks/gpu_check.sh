#!/usr/bin/env bash
# GPU check of the cuda backend: ONE call, under 10 minutes, on a fresh GPU
# machine (no package index needed), from the repository root:
#
#   bash benchmarks/gpu_check.sh [all | env | build | test | sanitize | bench | install]...
#
#   env       device and driver; picks cupy-cuda13x or cupy-cuda12x from the
#             CUDA version the driver reports (nvidia-smi); uses the machine's
#             cupy when it is that one, else installs it from carried wheels
#             (.whl/, pip --no-index) or, only where an index answers, from it.
#   build     the C++ extension in place (scripts/dev-build.sh: the emulation
#             and bit-for-bit tests compare with the cpp backend).
#   test      what needs the GPU or its toolchain: tests/test_cuda.py (kernels vs
#             the float64 reference and the cpp backend, class optimizers and
#             fastopt.torch on CUDA, trajectories against torch CUDA, loops past
#             one grid, side streams, graph capture), test_cuda_torch.py
#             (fastopt.torch optimizers and layers on CUDA tensors, torch's
#             stream), test_cuda_launch.py (persistent grid, unaligned and
#             vector paths past one grid), test_cuda_loader.py and
#             test_cuda_compile.py (the machine's nvcc/NVRTC), with pytest -n
#             auto; the *_emulated.py files (CPU only, run by CI) only with
#             GPU_CHECK_EMULATED=1. Fails if the cuda backend is unavailable.
#   sanitize  compute-sanitizer memcheck, racecheck and synccheck on a small
#             subset (cupy's pool off, a sync after each launch); skipped, with
#             the reason, where the sanitizer cannot attach (e.g. gVisor).
#   bench     benchmarks/bench_cuda.py (full when enough time is left, else --quick).
#   install   (not in `all`) pip-installs fastopt from a copy of the checkout
#             and checks the wheel carries the .cu/.h sources.
#   all       env build test sanitize bench (the default).
#
# Logs and results go to $OUT when set (the device tool brings that folder
# back), else benchmarks/results/gpu-check/. PYTHON (python3) picks the
# interpreter; GPU_CHECK_BUDGET (570) the seconds the whole run may take.
# Reads the GPU's state only; never changes clocks or modes, never resets it.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
OUTDIR=${OUT:-$ROOT/benchmarks/results/gpu-check}
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-570}
export PYTHONUNBUFFERED=1 PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUTDIR"
status=0
SUMMARY=()

say() { echo; echo "== $* (t=${SECONDS}s)"; }
fail() { echo "FAILED: $*"; SUMMARY+=("FAILED $*"); status=1; }
ok() { SUMMARY+=("ok     $*"); }
skip() { echo "SKIPPED: $*"; SUMMARY+=("skip   $*"); }
left() { echo $((BUDGET - SECONDS)); }

stage_env() {
  say "device"
  if ! command -v nvidia-smi >/dev/null; then fail "no nvidia-smi: not a GPU machine (nothing installed)"; return; fi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv \
    2>&1 | tee "$OUTDIR/device.txt" || true
  local cuda_major want have
  cuda_major=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\)\..*/\1/p' | head -1)
  if [ -z "$cuda_major" ]; then  # driver 580+ is CUDA 13
    local drv; drv=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
    cuda_major=$([ "${drv%%.*}" -ge 580 ] 2>/dev/null && echo 13 || echo 12)
  fi
  want=$([ "$cuda_major" -ge 13 ] && echo cupy-cuda13x || echo cupy-cuda12x)
  have=$("$PY" -c 'import importlib.metadata as m
names = []
for n in ("cupy-cuda13x", "cupy-cuda12x", "cupy"):
    try:
        m.version(n); names.append(n)
    except m.PackageNotFoundError:
        pass
print(" ".join(names))' 2>/dev/null)
  echo "driver supports CUDA $cuda_major: want $want; installed: ${have:-none}"
  if [[ " $have " != *" $want "* ]] || ! "$PY" -c 'import cupy' 2>/dev/null; then
    say "install $want (no index needed)"
    if ls .whl/${want//-/_}-*.whl >/dev/null 2>&1; then
      "$PY" -m pip install -q --no-index --no-deps --find-links .whl "$want" || fail "install $want from .whl"
    else
      timeout 90 "$PY" -m pip install -q --retries 0 --timeout 10 "$want" \
        || fail "$want: not installed, no wheel in .whl/ and no index reachable"
    fi
  fi
  "$PY" -c 'import numpy, cupy; print("numpy", numpy.__version__, "cupy", cupy.__version__)' \
    2>&1 | tee -a "$OUTDIR/device.txt"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' \
    2>&1 | tee -a "$OUTDIR/device.txt" || true
  "$PY" -c 'import xdist' 2>/dev/null || echo "pytest-xdist missing: tests run serially"
}

stage_build() {
  say "build the C++ extension in place"
  if PYTHON="$PY" timeout 240 bash scripts/dev-build.sh >"$OUTDIR/build.log" 2>&1; then ok build
  else tail -30 "$OUTDIR/build.log"; fail "build (C++ extension)"; fi
  "$PY" -m fastopt info 2>&1 | tee "$OUTDIR/info.txt"
}

require_cuda() {
  "$PY" -c 'import fastopt.backends as b, sys; why = b.unavailable_reason("cuda"); print("cuda backend:", why or "available"); sys.exit(why is not None)'
}

stage_test() {
  say "GPU tests (tests/test_cuda*.py)"
  require_cuda || { fail "cuda backend unavailable: the GPU tests would only skip"; return; }
  local par=(); "$PY" -c 'import xdist' 2>/dev/null && par=(-n auto)
  local t=$(( $(left) - 200 )); [ $t -gt 240 ] && t=240; [ $t -lt 60 ] && t=60
  # tests/test_cuda_emulated.py needs no GPU (CI runs it): only with GPU_CHECK_EMULATED=1
  local files=(tests/test_cuda.py tests/test_cuda_torch.py tests/test_cuda_launch.py
               tests/test_cuda_loader.py tests/test_cuda_compile.py)
  [ -n "${GPU_CHECK_EMULATED:-}" ] && files+=(tests/test_cuda_emulated.py tests/test_cuda_torch_emulated.py)
  timeout "$t" "$PY" -m pytest "${par[@]}" -q -ra -p no:cacheprovider "${files[@]}" \
      2>&1 | tee "$OUTDIR/pytest.log"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ]; then ok "GPU tests"; elif [ "$rc" -eq 124 ]; then fail "GPU tests timed out after ${t}s"
  else fail "GPU tests (rc $rc)"; fi
}

SANITIZE_K=${SANITIZE_K:-"(test_against_reference and adam and float32) or test_batch_norm_is_deterministic or test_dropout_mask_kernel_equals_cpu or (test_utils_against_reference and float32) or (test_sync_free_clip and float32) or test_every_family_runs_on_a_non_default_stream or test_grad_norm_independent_of_alignment or test_torch_stream_is_used_when_cupy_has_another_current_stream"}
SANITIZE_FILES=(tests/test_cuda.py tests/test_cuda_launch.py tests/test_cuda_torch.py)

stage_sanitize() {
  say "compute-sanitizer"
  local cs
  cs=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1)
  if [ -z "$cs" ]; then skip "sanitizer: compute-sanitizer not found"; return; fi
  require_cuda || { fail "cuda backend unavailable"; return; }
  # Can it attach here at all? (gVisor: "Device not supported")
  local probe
  probe=$(timeout 60 "$cs" --tool memcheck --error-exitcode 99 "$PY" -c 'import cupy; print(int((cupy.arange(4) + 1).sum()))' 2>&1)
  if ! grep -q '^10$' <<<"$probe"; then
    skip "sanitizer cannot attach here: $(grep -m1 -iE 'error|not supported' <<<"$probe" || echo "${probe:0:200}")"
    return
  fi
  local tool t n=3
  for tool in memcheck racecheck synccheck; do
    # leave ~80 s for the quick benchmarks at the end
    t=$(( ($(left) - 80) / n )); n=$((n - 1)); [ $t -gt 75 ] && t=75
    if [ $t -lt 20 ]; then skip "sanitizer $tool: no time left"; continue; fi
    echo "-- $tool (limit ${t}s)"
    FASTOPT_CUDA_NO_POOL=1 FASTOPT_CUDA_SYNC=1 timeout "$t" "$cs" --tool "$tool" --error-exitcode 99 \
        --print-limit 50 "$PY" -m pytest "${SANITIZE_FILES[@]}" -q -x -p no:cacheprovider -k "$SANITIZE_K" \
        >"$OUTDIR/$tool.log" 2>&1
    local rc=$?
    tail -5 "$OUTDIR/$tool.log"
    case $rc in
      0) ok "sanitizer $tool" ;;
      124) skip "sanitizer $tool: timed out after ${t}s (partial log in $tool.log)" ;;
      *) fail "sanitizer $tool (rc $rc, see $tool.log)" ;;
    esac
  done
}

stage_bench() {
  say "benchmarks/bench_cuda.py"
  require_cuda || { fail "cuda backend unavailable"; return; }
  local mode=() t; t=$(( $(left) - 10 ))
  [ "$t" -lt 200 ] && mode=(--quick)
  [ "$t" -lt 40 ] && { skip "bench: no time left"; return; }
  timeout "$t" "$PY" benchmarks/bench_cuda.py --out "$OUTDIR" "${mode[@]}" 2>&1 | tee "$OUTDIR/bench.txt"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ]; then ok "bench ${mode[*]:-full}"; else fail "bench (rc $rc)"; fi
}

stage_install() {
  say "pip install from a copy of the checkout (no index, no dependencies)"
  local work; work=$(mktemp -d)
  tar --exclude=./.git --exclude=./build --exclude='*.so' --exclude=./.whl -cf - . | tar -xf - -C "$work"
  "$PY" -m pip install -q --no-build-isolation --no-index --no-deps --target "$work/site" "$work" \
    >"$OUTDIR/install.log" 2>&1 || { fail install; return; }
  (cd "$work" && PYTHONPATH="$work/site" "$PY" -P -c '
import fastopt
from fastopt.backends.cuda import loader
d = loader.source_dirs(); print("fastopt at", fastopt.__file__, "CUDA sources at", d)
assert d is not None and "site" in str(d[0])') && ok install || fail "installed package lacks the CUDA sources"
}

[ $# -eq 0 ] && set -- all
for stage in "$@"; do
  case "$stage" in
    env|build|test|sanitize|bench|install) "stage_$stage" ;;
    all) stage_env; stage_build; stage_test; stage_sanitize; stage_bench ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
say "summary"
printf '%s\n' "${SUMMARY[@]}" | tee "$OUTDIR/summary.txt"
echo "gpu_check: $([ $status -eq 0 ] && echo PASSED || echo FAILED) in ${SECONDS}s; logs in $OUTDIR"
exit $status
