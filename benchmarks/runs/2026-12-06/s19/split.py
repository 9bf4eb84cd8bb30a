"""Where a small numba call's time goes (n = 10 float32), CPU time per call, best
of rounds: the public call, its parts, and the NumPy baselines.

    PYTHONPATH=. python benchmarks/runs/2026-12-06/s19/split.py
"""
import os
import sys
import numpy as np
import fastopt
from fastopt.backends.numba import _fast, _direct

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_us  # noqa: E402

rng = np.random.default_rng(0)
for n in (10, 100, 1000):
    p = rng.random(n, dtype=np.float32); g = rng.random(n, dtype=np.float32)
    dy = rng.random(n, dtype=np.float32)
    keep = rng.random(n) >= 0.5
    mask = np.packbits(keep, bitorder="little"); mf = keep / 0.5; mb = keep
    fastopt.sgd_step(p, g, lr=1e-3, backend="numba")
    fastopt.dropout_backward(dy, mask, 0.5, backend="numba")
    entry = _direct.SGD_PLAIN.entries[(True, 1, True)]
    dkey = (True, 1, True, True)
    dentry = _direct.DROP_BACKWARD.entries[dkey]
    dx = np.empty_like(dy)
    def plain_sgd():
        p[...] += -1e-3 * g
    rows = {
        "sgd public": lambda: fastopt.sgd_step(p, g, lr=1e-3, backend="numba"),
        "sgd _fast.sgd": lambda: _fast.sgd(p, g, None, 1e-3, 0.0, 1.0, 0.0, 1.0, False, False, "numba"),
        "sgd entry": lambda: entry(p, g, 1e-3, 0.0, 1.0),
        "sgd numpy-plain": plain_sgd,
        "empty lambda": lambda: None,
        "drop public": lambda: fastopt.dropout_backward(dy, mask, 0.5, backend="numba"),
        "drop _fast": lambda: _fast.dropout_backward(dy, mask, 0.5, "numba"),
        "drop entry": lambda: dentry(dy, mask, dx, 0.5),
        "drop empty_like": lambda: np.empty_like(dy),
        "drop numpy-plain": lambda: dy * mf,
        "drop numpy-out": lambda: (np.multiply(dy, mb, out=dx), np.multiply(dx, 2.0, out=dx)),
    }
    for name, fn in rows.items():
        print(f"n={n:5d} {name:18s} {best_us(fn):6.3f} us")
