#!/usr/bin/env bash
# Before (54dd340, unpacked with git archive into $BASE) and after (this tree), alternated,
# the same benchmark module in both: numba whole call / plain NumPy per size, CPU clock.
# usage: bash benchmarks/runs/2026-12-01/bn17/numba_before_after.sh ROUNDS OUTDIR
set -u
BASE=${BASE:-/tmp/bn17_base}
OUT=$(realpath "$2")
for r in $(seq 1 "$1"); do
  for side in before after; do
    dir=$PWD; [ $side = before ] && dir=$BASE
    ( cd "$dir" && date -u +%T && uptime && PYTHONPATH=. python -m fastopt.bench.numba_vs_numpy \
        --sizes 10,100,1e3,1e4,1e5 --clock cpu --repeat 9 --json "$OUT/numba_${side}_r$r.json" ) \
        > "$OUT/numba_${side}_r$r.txt" 2>&1
  done
done
