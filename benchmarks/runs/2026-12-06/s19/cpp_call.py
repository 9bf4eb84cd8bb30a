"""The cpp fast path's small-call cost with the generated pre-check's default shortcuts,
CPU time per call, best of rounds (run from each tree: PYTHONPATH=. python THIS)."""
import os
import sys
import numpy as np
import fastopt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_us  # noqa: E402

rng = np.random.default_rng(0)
p, g, m, v = (rng.random(10, dtype=np.float32) for _ in range(4))
x = rng.random((8, 4), dtype=np.float32)
ga, be = np.ones(4, np.float32), np.zeros(4, np.float32)
rm, rv = np.zeros(4, np.float32), np.ones(4, np.float32)
cases = {
    "sgd_step(p, g, lr=1e-3)": lambda: fastopt.sgd_step(p, g, lr=1e-3),
    "adam_step(p, g, m, v, step=3, lr=1e-3)": lambda: fastopt.adam_step(p, g, m, v, step=3, lr=1e-3),
    "batch_norm_forward(x, ..., training=True)": lambda: fastopt.batch_norm_forward(x, ga, be, rm, rv, training=True),
}
for name, fn in cases.items():
    fn()
    print(f"{name:44s} {best_us(fn):6.3f} us")
