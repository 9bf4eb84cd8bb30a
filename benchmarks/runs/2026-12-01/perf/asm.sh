#!/bin/bash
# asm of one csrc/cpu file, same flags as the build minus LTO
src=$1; out=/tmp/asm_$(basename $src .cpp)
/usr/bin/c++ -I/work/wt/perf/csrc/include -O3 -DNDEBUG -std=c++17 -fPIC -fvisibility=hidden -ffp-contract=off -fno-math-errno -c $src -o $out.o && objdump -d --no-show-raw-insn -C $out.o > $out.asm
