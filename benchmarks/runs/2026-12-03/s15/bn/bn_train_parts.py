import sys, numpy as np, fastopt
from fastopt import _core
from fastopt.bench.timer import interleaved
_core.set_num_threads(int(sys.argv[1]))
N = int(sys.argv[2])
shape = (N, 32, 64)
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
r = interleaved(v, repeat=int(sys.argv[3]) if len(sys.argv) > 3 else 11, min_time=0.02)
for k, t in r.items(): print(f"{k:10s} {t.median*1e3:8.3f} ms  min {min(t.samples)*1e3:8.3f}" if hasattr(t,'samples') else f"{k:10s} {t.median*1e3:8.3f} ms")
