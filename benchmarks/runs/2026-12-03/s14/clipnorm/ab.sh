#!/usr/bin/env bash
# Alternated rounds of the clip-norm bench: PYTHONPATH=/work/ab/{before,after}
# (the package of 26f852e, and the same with this session's norm loop).
D=$(dirname "$0")
for r in 1 2 3 4; do
  for v in before after; do
    PYTHONPATH=/work/ab/$v /work/venv/bin/python -m fastopt bench kernels --kernels clip-norm \
      --sizes 1e7,3e7 --backends cpp,torch --repeat 9 --no-progress > "$D/bench_${v}_r$r.txt" 2>&1
  done
done
