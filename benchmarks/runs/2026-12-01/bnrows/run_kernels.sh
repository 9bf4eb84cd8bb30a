#!/usr/bin/env bash
# Before (main 13dbb54's build, copied to /tmp/bnr/before) and after (this branch,
# /tmp/bnr/after), alternating processes, 1 and 2 threads:
#   bash benchmarks/runs/2026-12-01/bnrows/run_kernels.sh ROUND
set -u
. /work/venv/bin/activate
D=benchmarks/runs/2026-12-01/bnrows
for t in 1 2; do
  for tag in before after; do
    f=$D/kernels_${tag}_t${t}_$1.txt
    (date -u; uptime) > "$f"
    FASTOPT_NUM_THREADS=$t OMP_NUM_THREADS=$t NUMBA_NUM_THREADS=$t PYTHONPATH=/tmp/bnr/$tag \
      python -m fastopt bench kernels --kernels bn-forward,bn-backward --sizes 1e7 \
      --backends cpp,numpy-out --repeat 11 --no-progress --json "${f%.txt}.json" >> "$f" 2>&1
    uptime >> "$f"
    FASTOPT_NUM_THREADS=$t OMP_NUM_THREADS=$t NUMBA_NUM_THREADS=$t PYTHONPATH=/tmp/bnr/$tag \
      python benchmarks/runs/2026-12-01/meas/passes.py --repeat 11 > "$D/passes_${tag}_t${t}_$1.txt" 2>&1
  done
done
