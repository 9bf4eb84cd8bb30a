import sys, time, numpy as np
sys.path.insert(0, sys.argv[1])
import fastopt
from fastopt import _core
shape = tuple(int(v) for v in sys.argv[2].split(","))
rng = np.random.default_rng(0)
x = rng.standard_normal(shape).astype(np.float32)
C = shape[1]
g = np.ones(C, np.float32); b = np.zeros(C, np.float32)
rm = np.zeros(C, np.float32); rv = np.ones(C, np.float32)
def t(f, k=15):
    f(); ts = []
    for _ in range(k):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return np.median(ts) * 1e6
y = np.empty_like(x)
tr = t(lambda: fastopt.batch_norm_forward(x, g, b, rm, rv, training=True))
ev = t(lambda: fastopt.batch_norm_forward(x, g, b, rm, rv, training=False))
rd = t(lambda: x.sum(dtype=np.float32))
cp = t(lambda: np.copyto(y, x))
print(f"{shape}: train {tr:.0f} us, eval (normalize only) {ev:.0f} us, train-eval (stats) {tr-ev:.0f} us; numpy sum {rd:.0f} us, copyto {cp:.0f} us")
