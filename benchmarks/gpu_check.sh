#!/usr/bin/env bash
# GPU check of the cuda backend, from a fresh checkout on a machine with an
# NVIDIA GPU:
#
#   benchmarks/gpu_check.sh [all | install | test | sanitize | bench | quick]...
#
#   install   venv (with --system-site-packages, so the machine's cupy and torch
#             are visible: the GPU machines here reach no registry), then builds
#             and installs fastopt with the `cuda` extra from a copy of the
#             checkout; tries torch==2.13.0 (optional: the GPU image has its own
#             torch and no registry); checks the installed package carries the
#             .cu/.h sources; `python -m fastopt info`.
#   test      the whole test suite against the INSTALLED package (cwd not on
#             sys.path), the CUDA tests included: fails if the cuda backend is
#             unavailable instead of letting them skip.
#   sanitize  tests/test_cuda.py under `compute-sanitizer --tool memcheck`
#             (CuPy's memory pool off, a sync after every launch).
#   bench     benchmarks/bench_cuda.py (copy bandwidth, Adam 1e8 and 200
#             tensors vs twin and torch fused, batch norm and dropout vs torch).
#   quick     install + test + bench --quick (fits one short call).
#   all       install, test, sanitize, bench (default).
#
# Logs and results go to $OUT when set (the device tool brings that folder
# back), else benchmarks/results/gpu-check/. Settings: PYTHON (python3),
# FASTOPT_GPU_WORK (/tmp/fastopt-gpu), FASTOPT_SKIP_TORCH_INSTALL=1.
# Reads the GPU's state only; never changes clocks, modes or resets it.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUTDIR=${OUT:-$ROOT/benchmarks/results/gpu-check}
WORK=${FASTOPT_GPU_WORK:-/tmp/fastopt-gpu}
VENV=$WORK/venv
SRC=$WORK/src
PY=${PYTHON:-python3}
VPY=$VENV/bin/python
export PYTHONUNBUFFERED=1
mkdir -p "$OUTDIR" "$WORK"
status=0

say() { echo; echo "== $*"; }
fail() { echo "FAILED: $*"; status=1; }

stage_install() {
  say "device"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv || true
  say "venv $VENV (system site-packages of $("$PY" -c 'import sys; print(sys.executable)'))"
  if [ ! -x "$VPY" ]; then
    "$PY" -m venv --system-site-packages "$VENV" || "$PY" -m venv --system-site-packages --without-pip "$VENV" || { fail venv; return; }
  fi
  # When PYTHON is itself a venv (the GPU image's python3 is /opt/torch/.venv),
  # --system-site-packages would show the base interpreter's packages, not its
  # own: add its site-packages (processing their .pth files) explicitly.
  local parent_sites purelib
  parent_sites=$("$PY" -c 'import site, sys; print(repr(site.getsitepackages()) if sys.prefix != sys.base_prefix else "")')
  if [ -n "$parent_sites" ]; then
    purelib=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "import site; list(map(site.addsitedir, $parent_sites))" > "$purelib/_fastopt_parent_env.pth"
    echo "parent environment's packages visible: $parent_sites"
  fi
  if "$VPY" -m pip --version >/dev/null 2>&1; then PIP=("$VPY" -m pip); else PIP=("$PY" -m pip --python "$VPY"); fi
  say "copy of the checkout in $SRC"
  rm -rf "$SRC" && mkdir -p "$SRC"
  (cd "$ROOT" && tar --exclude=./.git --exclude=./build --exclude=./.venv --exclude='*.so' \
      --exclude=./benchmarks/results -cf - .) | tar -xf - -C "$SRC"
  # pyproject's readme must exist for the build (placeholder in the copy only)
  [ -f "$SRC/README.md" ] || echo "# fastopt" > "$SRC/README.md"
  say "build + install fastopt[cuda] (no build isolation: the build tools come from the machine)"
  if ! "${PIP[@]}" install --no-build-isolation --no-index "$SRC[cuda]" 2>&1 | tee "$OUTDIR/install.log"; then
    echo "install with the cuda extra's requirement failed (cupy wheel for another CUDA major?);"
    echo "installing without dependencies and relying on the machine's cupy"
    "${PIP[@]}" install --no-build-isolation --no-deps "$SRC" 2>&1 | tee -a "$OUTDIR/install.log" || { fail install; return; }
  fi
  if [ -z "${FASTOPT_SKIP_TORCH_INSTALL:-}" ]; then
    if "$VPY" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
      echo "torch 2.13.0 already there"
    else
      say "torch==2.13.0 (optional)"
      timeout 600 "${PIP[@]}" install --retries 0 --timeout 15 "torch==2.13.0" >>"$OUTDIR/install.log" 2>&1 \
        || echo "torch==2.13.0 not installable here; torch columns use: $("$VPY" -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>&1 | tail -1)"
    fi
  fi
  say "installed package"
  (cd "$WORK" && "$VPY" -P - <<'EOF') || fail "installed package check"
import fastopt, sys
from fastopt.backends.cuda import loader
dirs = loader.source_dirs()
print("fastopt at", fastopt.__file__)
print("CUDA sources at", dirs)
assert dirs is not None and "site-packages" in str(dirs[0]), "CUDA sources not installed with the package"
EOF
  (cd "$WORK" && "$VPY" -P -m fastopt info) 2>&1 | tee "$OUTDIR/info.txt"
}

require_cuda() {
  (cd "$WORK" && "$VPY" -P -c 'import fastopt.backends as b, sys; why = b.unavailable_reason("cuda"); print("cuda backend:", why or "available"); sys.exit(why is not None)')
}

stage_test() {
  say "tests (installed package)"
  require_cuda || { fail "cuda backend unavailable: the CUDA tests would only skip"; return; }
  (cd "$SRC" && "$VPY" -P -m pytest tests -q -ra -p no:cacheprovider 2>&1 | tee "$OUTDIR/pytest.log")
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "test suite"
}

stage_sanitize() {
  say "compute-sanitizer memcheck on tests/test_cuda.py"
  local cs
  cs=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1)
  if [ -z "$cs" ]; then echo "compute-sanitizer not found: skipped"; return; fi
  require_cuda || { fail "cuda backend unavailable"; return; }
  (cd "$SRC" && FASTOPT_CUDA_NO_POOL=1 FASTOPT_CUDA_SYNC=1 "$cs" --tool memcheck --error-exitcode 99 \
      --print-limit 50 "$VPY" -P -m pytest tests/test_cuda.py -q -x -p no:cacheprovider -k "not torch" \
      2>&1 | tee "$OUTDIR/memcheck.log")
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "memcheck"
}

stage_bench() {
  say "benchmarks/bench_cuda.py $*"
  require_cuda || { fail "cuda backend unavailable"; return; }
  (cd "$WORK" && "$VPY" -P "$SRC/benchmarks/bench_cuda.py" --out "$OUTDIR" "$@") || fail bench
}

ensure_installed() { [ -x "$VPY" ] && [ -d "$SRC/tests" ] || stage_install; }

[ $# -eq 0 ] && set -- all
for stage in "$@"; do
  case "$stage" in
    install) stage_install ;;
    test) ensure_installed; stage_test ;;
    sanitize) ensure_installed; stage_sanitize ;;
    bench) ensure_installed; stage_bench ;;
    quick) stage_install; stage_test; stage_bench --quick ;;
    all) stage_install; stage_test; stage_sanitize; stage_bench ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
say "gpu_check: $([ $status -eq 0 ] && echo PASSED || echo FAILED); logs in $OUTDIR"
exit $status
