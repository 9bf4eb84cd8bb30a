"""8-bit Adam (issue 16) at 10^7 float32 params: now ``fastopt bench 8bit``
(fastopt/bench/quantized.py); this script runs the same table.

    PYTHONPATH=. python benchmarks/quantized_bench.py [n] [repeat]
"""
import sys

from fastopt.bench import quantized

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10 ** 7
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 7
print(quantized.format_report(quantized.run(n, repeat=repeat)))
