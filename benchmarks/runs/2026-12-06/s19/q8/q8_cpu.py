"""8-bit Adam (float32 params, both states 8-bit), one thread, CPU time per element,
best of rounds: the block loop's compute, with little memory traffic at 2^18 (L2).

    FASTOPT_NUM_THREADS=1 PYTHONPATH=. python benchmarks/runs/2026-12-06/s19/q8/q8_cpu.py
"""
import time

import numpy as np
import fastopt

rng = np.random.default_rng(0)
for n in (1 << 18, 10 ** 6):
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    m = fastopt.quantize(g * 0.1, signed=True)
    v = fastopt.quantize(g * g * 0.01, signed=False)
    fastopt.adam_step(p, g, m, v, step=10, lr=1e-3)
    reps = max(1, 2 * 10 ** 7 // n)
    best = 1e9
    for _ in range(9):
        t = time.process_time()
        for _ in range(reps):
            fastopt.adam_step(p, g, m, v, step=10, lr=1e-3)
        best = min(best, (time.process_time() - t) / reps)
    print(f"n={n}: {best / n * 1e9:.3f} ns per element")
