#!/usr/bin/env bash
# Stand-alone timings of batch norm's row loops (session 9), one thread, minima:
#   bash benchmarks/runs/2026-12-02/s9/harness/run.sh > benchmarks/runs/2026-12-02/s9/harness/harness.txt
# "before" = csrc/cpu/batchnorm_rows.cpp at 2d9c337, "after" = the working tree.
# drv.cpp: rows_moments against a plain read of x and row-major / chunked variants
# (shifted.h); drv3.cpp: the backward sums (rows_sums) against chunked sums of 8 and 4
# rows and a read of dy and x; drv4.cpp: rows_dx against a read-read-write twin.
set -euo pipefail
H=$(cd "$(dirname "$0")" && pwd); R=$(cd "$H/../../../../.." && pwd); S=$R/csrc
T=$(mktemp -d); git -C "$R" show 2d9c337:csrc/cpu/batchnorm_rows.cpp > "$S/cpu/_rows_before_tmp.cpp"
trap 'rm -f "$S/cpu/_rows_before_tmp.cpp"; rm -rf "$T"' EXIT
F="-O3 -std=c++17 -ffp-contract=off -fno-math-errno -fno-trapping-math -I$S/include -I$S/cpu -I$H"
for side in before after; do
  rows=$S/cpu/batchnorm_rows.cpp; [ $side = before ] && rows=$S/cpu/_rows_before_tmp.cpp
  g++ $F "-DVARIANT=chunked<4,8>(x.data(), R, W, sh.data(), ts.data(), tq.data())" "$H/drv.cpp" "$rows" -o "$T/drv_$side" 2>/dev/null
  g++ $F "$H/drv3.cpp" "$rows" -o "$T/drv3_$side" 2>/dev/null
  g++ $F "$H/drv4.cpp" "$rows" -o "$T/drv4_$side" 2>/dev/null
done
date -u; uptime
for round in 1 2; do
  for side in before after; do
    for R_ in 16 48 4883; do echo "$side statistics: $("$T/drv_$side" $R_ 100)"; done
    for R_ in 16 4883; do echo "$side backward sums: $("$T/drv3_$side" $R_ 60)"; done
    echo "$side backward dx: $("$T/drv4_$side" 4883 40)"
  done
done
uptime
