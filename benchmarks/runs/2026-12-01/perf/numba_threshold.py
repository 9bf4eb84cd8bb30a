"""Where numba's parallel build starts to beat its serial build, and both against
plain NumPy (in place / out=), interleaved medians in one process.
python benchmarks/runs/2026-12-01/perf/numba_threshold.py"""
import numpy as np
from fastopt.backends.numba import averaging as av, clipping as cl, dropout as dr
from fastopt.bench.timer import interleaved

rng = np.random.default_rng(0)
for n in (1_000, 10_000, 30_000, 100_000, 300_000, 1_000_000):
    for dt in (np.float32, np.float64):
        a = rng.standard_normal(n).astype(dt); x = rng.standard_normal(n).astype(dt)
        m = np.empty((n + 7) // 8, np.uint8); y = np.empty_like(x); tmp = np.empty_like(x)
        d, om = dt(0.999), dt(0.001)
        par, ser = av._ema
        cells = {"ema": {"parallel": lambda: par(a, x, d, om), "serial": lambda: ser(a, x, d, om),
                         "numpy": lambda: (np.multiply(a, d, out=a), np.multiply(x, om, out=tmp),
                                           np.add(a, tmp, out=a))},
                 "scale": {"parallel": lambda: cl._scale[0](a, d), "serial": lambda: cl._scale[1](a, d),
                           "numpy": lambda: np.multiply(a, d, out=a)},
                 "dropout_bwd": {"parallel": lambda: dr._backward_par(x, m, y, dt(1.4)),
                                 "serial": lambda: dr._backward_ser(x, m, y, dt(1.4)),
                                 "numpy": lambda: (np.multiply(x, np.unpackbits(m, count=n, bitorder="little"), out=tmp),
                                                   np.multiply(tmp, dt(1.4), out=y))}}
        for name, v in cells.items():
            r = interleaved(v, repeat=9, min_time=0.01)
            print(f"{name:12s} n={n:<8d} {np.dtype(dt).name:8s} " +
                  "  ".join(f"{k}={r[k].median*1e6:8.1f}us" for k in v), flush=True)
