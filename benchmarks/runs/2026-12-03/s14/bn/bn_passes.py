"""Batch norm's passes at (256, 32, 64) float32 (the bench's shape at 2^19,
the MLP layer's rows), one thread: training forward (statistics + normalize),
eval forward (normalize alone), training/eval backward, and the twins of
their traffic. Medians of interleaved samples (fastopt.bench.timer)."""
import sys, numpy as np, fastopt
from fastopt import _core
from fastopt.bench.timer import interleaved
_core.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
shape = (256, 32, 64)
rng = np.random.default_rng(0)
x = rng.standard_normal(shape).astype(np.float32) * 2 + 0.5
dy = rng.standard_normal(shape).astype(np.float32)
C = 32
w, b = rng.random(C).astype(np.float32) + 0.5, rng.standard_normal(C).astype(np.float32)
rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
_, mean, invstd = fastopt.batch_norm_forward(x, w, b, rm, rv, training=True, backend="cpp")
y = np.empty_like(x); dx = np.empty_like(x)
xf, yf, dyf = x.reshape(-1), y.reshape(-1), dy.reshape(-1)
v = {
 "fwd train": lambda: fastopt.batch_norm_forward(x, w, b, rm, rv, training=True, backend="cpp"),
 "fwd eval": lambda: fastopt.batch_norm_forward(x, w, b, rm, rv, training=False, backend="cpp"),
 "bwd train": lambda: fastopt.batch_norm_backward(dy, x, w, mean, invstd, backend="cpp"),
 "twin r": lambda: _core.bench_twin([xf], [], [], None, None),
 "twin r,w": lambda: _core.bench_twin([xf], [], [yf], None, None),
 "twin rr": lambda: _core.bench_twin([xf, dyf], [], [], None, None),
 "twin rr,w": lambda: _core.bench_twin([xf, dyf], [], [yf], None, None),
}
y0 = fastopt.batch_norm_forward(x, w, b, rm, rv, training=False, backend="cpp")[0]
print(f"page offsets: x {x.ctypes.data % 4096}, dy {dy.ctypes.data % 4096}, y {y0.ctypes.data % 4096}")
del y0
r = interleaved(v, repeat=11, min_time=0.01)
for k, t in r.items(): print(f"{k:10s} {t.median*1e6:8.1f} us")
