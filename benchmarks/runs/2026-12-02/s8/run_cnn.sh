#!/bin/bash
# The CNN step of issue 19 for one checkout: run_cnn.sh TREE OUT (a fresh inductor
# cache, no page faults on either side, one thread).
cd "$1" || exit 1
TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824 \
  PYTHONPATH=. python benchmarks/bench_torch_layers.py --model cnn --samples 11 --threads 1 > "$2" 2>&1
