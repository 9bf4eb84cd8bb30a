#!/usr/bin/env bash
# Alternated rounds, before (26f852e's package) and after2 (FMA loop + whole-block split).
D=$(dirname "$0")
for r in 1 2 3; do
  for v in before after2; do
    PYTHONPATH=/work/ab/$v /work/venv/bin/python -m fastopt bench kernels --kernels clip-norm \
      --sizes 1e6,1e7,3e7 --backends cpp,torch --repeat 9 --no-progress > "$D/bench2_${v}_r$r.txt" 2>&1
  done
done
