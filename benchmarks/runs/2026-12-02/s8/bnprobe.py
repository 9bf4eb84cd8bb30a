"""Batch norm (N, 32, S) per element, cpp backend, from L2-sized to DRAM-sized inputs:
   FASTOPT_NUM_THREADS=1 PYTHONPATH=. python benchmarks/runs/2026-12-02/s8/bnprobe.py 64"""
import sys, numpy as np, fastopt
from fastopt import _core, bench
rng = np.random.default_rng(1)
C, S = 32, int(sys.argv[1]) if len(sys.argv) > 1 else 64
for N in (8, 32, 128, 512, 4883):
    x = rng.standard_normal((N, C, S)).astype(np.float32) + 3
    dy = rng.standard_normal((N, C, S)).astype(np.float32)
    g = rng.standard_normal(C).astype(np.float32); b = rng.standard_normal(C).astype(np.float32)
    rm = np.zeros(C, np.float32); rv = np.ones(C, np.float32)
    y, sm, si = fastopt.batch_norm_forward(x, g, b, rm, rv, training=True, backend="cpp")[:3]
    xf = x.reshape(-1)
    v = {
        "train": lambda: fastopt.batch_norm_forward(x, g, b, rm, rv, training=True, backend="cpp"),
        "eval": lambda: fastopt.batch_norm_forward(x, g, b, rm, rv, training=False, backend="cpp"),
        "bwd": lambda: fastopt.batch_norm_backward(dy, x, g, sm, si, backend="cpp"),
        "twin_r": lambda: _core.bench_twin([xf], [], [], None, None),
    }
    t = bench.interleaved(v, repeat=9, min_time=0.02)
    n = x.size
    print(f"N={N:5d} n={n:9d} " + "  ".join(f"{k} {t[k].median/n*1e9:6.3f}" for k in v), "ns/elem", flush=True)
