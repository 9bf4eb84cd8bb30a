"""Where a small numba call's time goes now, against the NumPy operations it must
beat: the whole public call, the numba fast-path function without the entry
point's pre-check, the bare compiled overload (its entry point: no typing, no
checks), against NumPy's one or two operations. CPU time, interleaved medians.

    PYTHONPATH=. python benchmarks/runs/2026-12-01/numbacall/floor.py --sizes 1,100,1000
"""
import argparse
import os
import time

import numpy as np

import fastopt
from fastopt.backends.numba import _direct, _fast
from fastopt.bench.timer import interleaved


def variants(n, dt):
    rng = np.random.default_rng(n)
    p, g = (rng.standard_normal(n).astype(dt) for _ in range(2))
    u = (rng.random(n) < 0.5).astype(dt) * 2
    mask = rng.integers(0, 256, (n + 7) // 8, dtype=np.uint8)
    dx = np.empty_like(g)
    fastopt.sgd_step(p, g, lr=1e-3, backend="numba")
    fastopt.dropout_backward(g, mask, 0.5, backend="numba")
    num = np.dtype(dt).num
    sgd = _direct.SGD.entries[((num, 1, True), 0)]
    dbwd = _direct.DROP_BACKWARD.entries[((num, 1, True), True)]
    return {
        "sgd public": lambda: fastopt.sgd_step(p, g, lr=1e-3, backend="numba"),
        "sgd _fast.sgd": lambda: _fast.sgd(p, g, None, 1e-3, 0.0, 1.0, 0.0, 1.0, False, False,
                                           "numba"),
        "sgd bare entry": lambda: sgd(p, g, None, 1e-3, 0.0, 1.0, 0.0, 1.0, 0, False),
        "sgd numpy x[...] += -lr*dx": lambda: p.__setitem__(Ellipsis, p.__iadd__(-1e-3 * g)),
        "drop-bwd public": lambda: fastopt.dropout_backward(g, mask, 0.5, backend="numba"),
        "drop-bwd bare entry": lambda: dbwd(g, mask, dx, 2.0),
        "drop-bwd numpy dy*u": lambda: g * u,
        "np.empty_like": lambda: np.empty_like(g),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,100,1000")
    ap.add_argument("--repeat", type=int, default=15)
    a = ap.parse_args()
    print(f"load {os.getloadavg()}; us per call, CPU time (process_time), medians")
    for n in [int(float(s)) for s in a.sizes.split(",")]:
        for dt in (np.float32, np.float64):
            t = interleaved(variants(n, dt), repeat=a.repeat, min_time=0.005,
                            clock=time.process_time)
            print(f"n={n} {np.dtype(dt).name}: " + ", ".join(
                f"{k} {v.median * 1e6:.2f}" for k, v in t.items()), flush=True)


if __name__ == "__main__":
    main()
