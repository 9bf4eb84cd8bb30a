#!/usr/bin/env bash
# Issue 19's layer benchmark, before (/tmp/bnr/before: main 13dbb54) and after
# (/tmp/bnr/after: this branch), alternating, one thread, default allocator and
# glibc told not to mmap/trim 2-4 MiB blocks (as tl19):
#   bash benchmarks/runs/2026-12-01/bnrows/run_layers.sh ROUND MODEL [--no-compile]
set -u
. /work/venv/bin/activate
D=benchmarks/runs/2026-12-01/bnrows
for alloc in nommap default; do
  for tag in before after; do
    f=$D/layers_$2_${alloc}_${tag}_$1.txt
    (date -u; uptime) > "$f"
    if [ $alloc = nommap ]; then
      MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824 PYTHONPATH=/tmp/bnr/$tag \
        python benchmarks/bench_torch_layers.py --model $2 --samples 11 --threads 1 ${3:-} >> "$f" 2>&1
    else
      PYTHONPATH=/tmp/bnr/$tag python benchmarks/bench_torch_layers.py --model $2 --samples 11 \
        --threads 1 ${3:-} >> "$f" 2>&1
    fi
    uptime >> "$f"
  done
done
