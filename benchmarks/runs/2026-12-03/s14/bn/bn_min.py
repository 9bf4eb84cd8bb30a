"""Batch norm (cpp, float32, (N, 32, 64), one thread): the fastest of REPEAT calls of the
training forward, the eval forward and the training backward, in us. For alternated
processes of two builds (PYTHONPATH), where medians of one process are too noisy.
    PYTHONPATH=... python benchmarks/runs/2026-12-03/s14/bn/bn_min.py N REPEAT"""
import sys, time, numpy as np, fastopt
from fastopt import _core
_core.set_num_threads(1)
N, rep = int(float(sys.argv[1])), int(sys.argv[2])
shape, C = (N, 32, 64), 32
rng = np.random.default_rng(0)
x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
dy = rng.standard_normal(shape).astype(np.float32)
w, b = rng.random(C).astype(np.float32) + 0.5, rng.standard_normal(C).astype(np.float32)
rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
_, mean, invstd = fastopt.batch_norm_forward(x, w, b, rm, rv, training=True, backend="cpp")
cells = {
    "fwd train": lambda: fastopt.batch_norm_forward(x, w, b, rm, rv, training=True, backend="cpp"),
    "fwd eval": lambda: fastopt.batch_norm_forward(x, w, b, rm, rv, training=False, backend="cpp"),
    "bwd train": lambda: fastopt.batch_norm_backward(dy, x, w, mean, invstd, backend="cpp"),
}
best = {k: 1e9 for k in cells}
for _ in range(rep):
    for k, f in cells.items():
        t0 = time.perf_counter(); f(); best[k] = min(best[k], time.perf_counter() - t0)
print("  ".join(f"{k} {v * 1e6:7.1f}" for k, v in best.items()))
