#!/usr/bin/env bash
# A gate to run before merging: builds BASE and HEAD in asv's virtualenvs
# (asv.conf.json), times both with the asv suite and exits non-zero when any
# timing benchmark (time_*) is more than 10% slower at HEAD, or fails there.
#   benchmarks/asv_compare.sh main HEAD
#   benchmarks/asv_compare.sh main HEAD --quick --bench Optimizers
# Extra arguments go to `asv continuous` (e.g. --quick, --bench REGEX,
# FASTOPT_ASV_SUBSET=1 in the environment for a small subset). track_gbps
# benchmarks are left out of the gate: asv counts a larger value as worse.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 BASE HEAD [asv continuous arguments]" >&2
  exit 2
fi
BASE=$1 HEAD=$2
shift 2
cd "$(dirname "$0")"
PY=${PYTHON:-python}
BASE_SHA=$(git rev-parse "$BASE^{commit}")
HEAD_SHA=$(git rev-parse "$HEAD^{commit}")
"$PY" -m asv machine --yes --config asv.conf.json >/dev/null
# exit status 1: some benchmark got slower than BASE by more than --factor
"$PY" -m asv continuous --config asv.conf.json --factor 1.1 --bench 'time_' "$@" \
  "$BASE_SHA" "$HEAD_SHA"
