#!/usr/bin/env bash
# Registers, stack frame and spills of every CUDA kernel for sm_90 (nvcc -Xptxas -v),
# one line per kernel, with the run-time compile's options. Needs only nvcc.
#   bash scripts/cuda-regs.sh [arch]      (default sm_90)
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-sm_90}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for cu in csrc/cuda/*.cu; do
  nvcc -std=c++17 --fmad=false -Icsrc/include -Icsrc/cuda -arch="$arch" -cubin -Xptxas -v \
      -o "$out/o.cubin" "$cu" 2>&1 |
    awk -v f="$(basename "$cu")" '
      /Compiling entry function/ { match($0, /\047[^\047]+\047/); k = substr($0, RSTART + 1, RLENGTH - 2) }
      /bytes stack frame/ { sf = $0; sub(/^ *(ptxas info *: *)?/, "", sf) }
      /Used [0-9]+ registers/ { match($0, /Used [0-9]+ registers/); r = substr($0, RSTART + 5, RLENGTH - 15)
                                printf "%-14s %-40s regs %3s  %s\n", f, k, r, sf }'
done
