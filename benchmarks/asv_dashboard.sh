#!/usr/bin/env bash
# Runs the asv suite and publishes the HTML dashboard in one go:
#   benchmarks/asv_dashboard.sh            # quick run (each benchmark once)
#   benchmarks/asv_dashboard.sh --full     # asv's full statistics
#   FASTOPT_ASV_SUBSET=1 benchmarks/asv_dashboard.sh   # a tiny subset (tests)
# Extra arguments go to `asv run` (e.g. --bench Optimizers). Times the fastopt
# importable in this Python; the working tree is used when fastopt is not
# installed (build it first: scripts/dev-build.sh). Dashboard: benchmarks/html
# (open index.html through `asv preview`, or any static web server).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}
QUICK=--quick
if [[ "${1:-}" == "--full" ]]; then QUICK=; shift; fi
if ! "$PY" -c "import fastopt" 2>/dev/null; then
  # asv's benchmark runner drops PYTHONPATH and reads ASV_PYTHONPATH instead
  export ASV_PYTHONPATH="$(cd .. && pwd)${ASV_PYTHONPATH:+:$ASV_PYTHONPATH}"
  export PYTHONPATH="$ASV_PYTHONPATH"
fi
"$PY" -c "import fastopt, sys; print('timing fastopt', fastopt.__version__, 'from', fastopt.__file__, file=sys.stderr)"
"$PY" -m asv machine --yes --config asv.conf.json >/dev/null
# With --python=same (an "existing" environment) asv saves results only when
# told which commit they belong to: the checked-out one.
HASH=()
if COMMIT=$(git -C .. rev-parse HEAD 2>/dev/null); then HASH=(--set-commit-hash "$COMMIT"); fi
# asv exits 2 when some benchmark failed; the dashboard is still worth publishing.
rc=0
"$PY" -m asv run --config asv.conf.json --python=same $QUICK "${HASH[@]}" "$@" || rc=$?
"$PY" -m asv publish --config asv.conf.json
# The dashboard loads its JavaScript libraries from CDNs; use local copies when
# Debian's libjs-* packages are installed, so it also works offline.
"$PY" offline_dashboard.py html
echo "dashboard: $PWD/html/index.html  (asv preview --config $PWD/asv.conf.json)"
exit "$rc"
