#!/bin/bash
# Alternated before/after rounds of the numba fallback against NumPy (session 19).
#   bash benchmarks/runs/2026-12-06/s19/ab.sh ROUNDS OUTDIR
# s19b: the package at 7c09a8d; s19bn: 7c09a8d with this session's bench runners only
# (fastopt/bench/optim.py); main: this session's package. Each runs from its own tree.
set -e
rounds=${1:-2}; out=$(realpath "${2:-.}")
for r in $(seq "$rounds"); do
  for tree in /work/ab/s19b /work/ab/s19bn /work/main; do
    name=$(basename "$tree")
    (cd "$tree" && PYTHONPATH=. /work/venv/bin/python -m fastopt.bench.numba_vs_numpy \
        --kernels sgd,sgd-momentum,nesterov,drop-backward --sizes 1,10,100,1e3,1e4,1e5 \
        --dtype float32,float64 --clock cpu --repeat 7 --json "$out/ab-$name-$r.json" > "$out/ab-$name-$r.txt")
  done
done
