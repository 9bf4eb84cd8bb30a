#!/usr/bin/env bash
# Runs the asv suite and publishes the HTML dashboard in one go:
#   benchmarks/asv_dashboard.sh                # the working tree, quick (no build)
#   benchmarks/asv_dashboard.sh --history 5    # build and time main~5..main, quick
#   benchmarks/asv_dashboard.sh --full         # asv's full statistics
#   FASTOPT_ASV_SUBSET=1 benchmarks/asv_dashboard.sh   # a tiny subset
# Extra arguments go to `asv run` (e.g. --bench Optimizers). Without
# --history it times the fastopt importable in this Python (the working tree
# when fastopt is not installed: build it first with scripts/dev-build.sh)
# and records it against the checked-out commit; with --history N each
# commit is built in its own virtualenv (asv.conf.json). Dashboard:
# benchmarks/html (open it through `asv preview`, or any static web server).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}
QUICK=--quick
HISTORY=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --full) QUICK=; shift ;;
    --history) HISTORY=$2; shift 2 ;;
    *) break ;;
  esac
done
"$PY" -m asv machine --yes --config asv.conf.json >/dev/null
# asv exits 2 when some benchmark failed; the dashboard is still worth publishing.
rc=0
if [[ -n "$HISTORY" ]]; then
  "$PY" -m asv run --config asv.conf.json $QUICK "$@" "main~$HISTORY..main" || rc=$?
else
  if ! "$PY" -c "import fastopt" 2>/dev/null; then
    # asv's benchmark runner drops PYTHONPATH and reads ASV_PYTHONPATH instead
    export ASV_PYTHONPATH="$(cd .. && pwd)${ASV_PYTHONPATH:+:$ASV_PYTHONPATH}"
    export PYTHONPATH="$ASV_PYTHONPATH"
  fi
  "$PY" -c "import fastopt, sys; print('timing fastopt', fastopt.__version__, 'from', fastopt.__file__, file=sys.stderr)"
  # With --python=same (an "existing" environment) asv saves results only when
  # told which commit they belong to: the checked-out one.
  HASH=()
  if COMMIT=$(git -C .. rev-parse HEAD 2>/dev/null); then HASH=(--set-commit-hash "$COMMIT"); fi
  "$PY" -m asv run --config asv.conf.json --python=same $QUICK "${HASH[@]}" "$@" || rc=$?
fi
"$PY" -m asv publish --config asv.conf.json
# The dashboard loads its JavaScript libraries from CDNs; use local copies when
# Debian's libjs-* packages are installed, so it also works offline.
"$PY" offline_dashboard.py html
echo "dashboard: $PWD/html/index.html  (asv preview --config $PWD/asv.conf.json)"
exit "$rc"
