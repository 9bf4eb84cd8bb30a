#!/usr/bin/env bash
# Do the float32 tests catch a wrong formula? Applies each formula mutation below to a
# throwaway copy of the working tree's shared header (csrc/include/fastopt/optim.h), rebuilds
# the extension there, and runs only the float32 cpp-vs-reference optimizer tests. Every
# mutant must make them fail; the script exits 1 if any survives (2 on a setup error).
#
#   scripts/mutation-check.sh            # all mutants, ~1 min per mutant on 2 cores
#   PYTHON=/path/to/python scripts/mutation-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$work"
cd "$work"

# name | exact text in optim.h | its mutation
MUTANTS=$(cat <<'EOF'
adam: eps not scaled by the bias correction (the Adam paper's 'efficient' form, eps-hat = eps)|p = p - s.step_size * m / (fo_sqrt(vhat) / s.bc2_sqrt + s.eps);|p = p - s.step_size * m / ((fo_sqrt(vhat) + s.eps) / s.bc2_sqrt);
adam: AMSGrad normalizes by v instead of max(vmax, v)|    vhat = vmax;|    vhat = v;
rmsprop: eps inside the sqrt|    avg = fo_sqrt(square_avg) + s.eps;|    avg = fo_sqrt(square_avg + s.eps);
rmsprop centered: eps inside the sqrt|    avg = fo_sqrt(square_avg - grad_avg * grad_avg) + s.eps;|    avg = fo_sqrt(square_avg - grad_avg * grad_avg + s.eps);
adagrad: eps inside the sqrt|p = p - s.clr * g / (fo_sqrt(state_sum) + s.eps);|p = p - s.clr * g / fo_sqrt(state_sum + s.eps);
sgd: dampening ignored|buf = FIRST ? g : s.momentum * buf + s.one_minus_dampening * g;|buf = FIRST ? g : s.momentum * buf + g;
sgd: Nesterov look-ahead with g and buf swapped|const T d = (MOMENTUM == 2) ? g + s.momentum * buf : buf;|const T d = (MOMENTUM == 2) ? buf + s.momentum * g : buf;
EOF
)

header=csrc/include/fastopt/optim.h
cp "$header" "$header.orig"
PYTHON="$PY" bash scripts/dev-build.sh >build.log 2>&1 || { cat build.log; exit 2; }
survivors=0
while IFS='|' read -r name before after; do
  cp "$header.orig" "$header"
  "$PY" - "$header" "$before" "$after" <<'EOF' || exit 2
import sys
path, before, after = sys.argv[1:]
text = open(path).read()
if text.count(before) != 1:
    sys.exit(f"mutation-check: {before!r} is not in {path} exactly once; update the mutant")
open(path, "w").write(text.replace(before, after))
EOF
  PYTHON="$PY" bash scripts/dev-build.sh >build.log 2>&1 || { cat build.log; exit 2; }
  set +e
  PYTHONPATH=. "$PY" -m pytest -q -p no:cacheprovider -x tests/test_optim.py \
    -k "test_matches_float64_reference and float32 and cpp" >test.log 2>&1
  rc=$?
  set -e
  if [ "$rc" = 1 ]; then
    echo "killed   $name ($(grep -m1 -oE '[0-9]+ failed' test.log || echo failed))"
  elif [ "$rc" = 0 ]; then
    echo "SURVIVED $name"
    survivors=$((survivors + 1))
  else
    cat test.log; echo "mutation-check: pytest exited $rc"; exit 2
  fi
done <<<"$MUTANTS"
cp "$header.orig" "$header"
[ "$survivors" = 0 ] && echo "all mutants killed by the float32 tests" || exit 1
