import time, numpy as np, fastopt
from fastopt.backends.numba import _fast, _direct
n = 1000
rng = np.random.default_rng(0)
p = rng.standard_normal(n).astype(np.float32); g = rng.standard_normal(n).astype(np.float32)
dy = rng.standard_normal(n).astype(np.float32); mask = rng.integers(0, 255, (n+7)//8, dtype=np.uint8)
u1 = (rng.random(n) < 0.5).astype(np.float32) * 2
fastopt.sgd_step(p, g, lr=0.01, backend="numba")
fastopt.dropout_backward(dy, mask, 0.5, backend="numba")
def t(f, k=2000):
    best = []
    for _ in range(7):
        t0 = time.process_time()
        for _ in range(k): f()
        best.append((time.process_time() - t0) / k * 1e6)
    return sorted(best)[3]
key = [k for k in _direct.SGD.entries][0]
entry = _direct.SGD.entries[key]
print(key)
cells = {
 "sgd whole": lambda: fastopt.sgd_step(p, g, lr=0.01, backend="numba"),
 "sgd _fast.sgd": lambda: _fast.sgd(p, g, None, 0.01, 0.0, 1.0, 0.0, 1.0, False, False, "numba"),
 "sgd entry": lambda: entry(p, g, None, 0.01, 0.0, 1.0, 0.0, 1.0, 0, False),
 "numpy p-=lr*g": lambda: np.subtract(p, 0.01 * g, out=p),
 "drop-bwd whole": lambda: fastopt.dropout_backward(dy, mask, 0.5, backend="numba"),
 "numpy dy*u1": lambda: dy * u1,
 "empty_like": lambda: np.empty_like(dy),
 "noop py fn": lambda: None,
}
for k, f in cells.items(): print(f"{k:18s} {t(f):.2f} us")
