#!/usr/bin/env bash
# A gate to run before merging: builds BASE and HEAD in asv's virtualenvs
# (asv.conf.json), runs the gate benchmarks at both and exits non-zero when
# one is more than 10% worse at HEAD, or fails there.
#   benchmarks/asv_compare.sh main HEAD
#   FASTOPT_ASV_SUBSET=1 benchmarks/asv_compare.sh main HEAD      # a small subset
#   GATE='Optimizers.track_twin_ratio' benchmarks/asv_compare.sh main HEAD
# The gate (GATE, a regex of benchmark names, default track_twin_ratio) is each
# runner's CPU time per call divided by the same-traffic twin's, the two timed
# interleaved in one window, on one thread (FASTOPT/OMP/NUMBA_NUM_THREADS default
# to 1 here): on a shared machine a time moves by 30% between windows and by 10x
# under load, where that ratio holds (docs/notes-bench.md).
# It misses a change that slows the twin as much as the kernels (the twin runs on
# fastopt's thread pool); GATE=time_step gates on raw times instead (quiet
# machines only). Extra arguments go to `asv continuous` (e.g. --quick,
# --show-stderr). track_gbps is never a gate: asv counts a larger value as worse.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 BASE HEAD [asv continuous arguments]" >&2
  exit 2
fi
BASE=$1 HEAD=$2
shift 2
cd "$(dirname "$0")"
PY=${PYTHON:-python}
GATE=${GATE:-track_twin_ratio}
export FASTOPT_NUM_THREADS=${FASTOPT_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
  NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-1}
BASE_SHA=$(git rev-parse "$BASE^{commit}")
HEAD_SHA=$(git rev-parse "$HEAD^{commit}")
"$PY" -m asv machine --yes --config asv.conf.json >/dev/null
# exit status 1: some benchmark got worse than at BASE by more than --factor, or failed
"$PY" -m asv continuous --config asv.conf.json --factor 1.1 --bench "$GATE" "$@" \
  "$BASE_SHA" "$HEAD_SHA"
