#!/bin/bash
# Issue 19's layer benchmark, the committed ops (before) and this session's (after) alternated:
# bash ab_layers.sh OUTDIR BEFORE_PKG AFTER_PKG (each a folder holding a fastopt/ package)
out=$1; before=$2; after=$3
for model in cnn mlp; do
  for v in before after; do
    pkg=$before; [ $v = after ] && pkg=$after
    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824 \
      PYTHONPATH=$pkg python benchmarks/bench_torch_layers.py --model $model --samples 11 --threads 1 \
      > $out/${model}_$v.txt 2>&1
  done
done
