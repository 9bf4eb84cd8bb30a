"""Where numba sgd_step's per-call CPU time goes at 10^3 float32 (process_time, 20000 calls each).
PYTHONPATH=. python benchmarks/runs/2026-12-01/meas/numba_call_overhead.py"""
import time

import numpy as np

import fastopt
from fastopt.backends.numba import optim
from fastopt.backends.numba._lists import table

p = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
g = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
addresses, _, starts = table([p], [g], None)
s = [np.float32(x) for x in (0.01, 0.0, 1.0, 0.0, 1.0)]
cases = {
    "fastopt.sgd_step(backend='numba') (whole call)":
        lambda: fastopt.sgd_step(p, g, lr=0.01, backend="numba"),
    "fastopt.sgd_step(backend='numpy') (validation + float64 reference)":
        lambda: fastopt.sgd_step(p, g, lr=0.01, backend="numpy"),
    "backends.numba.optim.sgd (no validation)":
        lambda: optim.sgd([p], [g], None, lr=0.01, momentum=0.0, dampening=0.0,
                          weight_decay=0.0, nesterov=False, maximize=False, first_step=False),
    "table([p], [g], None) alone": lambda: table([p], [g], None),
    "serial njit kernel called directly (dispatch + loop)":
        lambda: optim._sgd[1](addresses, starts, p, *s, 0, False),
    "plain NumPy p -= 0.01 * g": lambda: p.__isub__(np.float32(0.01) * g),
}
for f in cases.values():
    f()
print(f"# {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC; CPU us per call, median of 5")
for name, f in cases.items():
    r = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(4000):
            f()
        r.append((time.process_time() - t0) / 4000 * 1e6)
    print(f"  {name:70} {sorted(r)[2]:8.2f} us")
