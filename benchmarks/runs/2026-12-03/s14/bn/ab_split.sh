#!/usr/bin/env bash
# Alternated rounds of batch norm's kernels: /work/ab/bn_before (5d2fee6's
# package) against /work/ab/bn_after (the row reductions built with
# -mprefer-vector-width=256, the elementwise row passes apart), 1 and 2 threads.
D=$(dirname "$0")
for r in 1 2 3; do
  for t in 1 2; do
    for v in bn_before bn_after; do
      FASTOPT_NUM_THREADS=$t OMP_NUM_THREADS=$t PYTHONPATH=/work/ab/$v /work/venv/bin/python -m fastopt bench kernels \
        --kernels bn-forward,bn-backward --sizes 524288,1e7 --backends cpp,torch --repeat 9 --no-progress \
        > "$D/split_${v#bn_}_t${t}_r$r.txt" 2>&1
    done
  done
done
