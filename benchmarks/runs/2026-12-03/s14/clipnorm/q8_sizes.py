"""8-bit Adam (cpp) at sizes where whole-block parts matter: median ms of 9
interleaved samples, two threads. PYTHONPATH selects the package."""
import sys, numpy as np, fastopt
from fastopt.bench.timer import interleaved
rng = np.random.default_rng(0)
cells = {}
for n in (10**5, 3 * 10**5, 10**6):
    p, g = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    m, v = fastopt.quantize(g * 0.1, signed=True), fastopt.quantize(g * g * 0.01, signed=False)
    cells[f"8bit {n:.0e}"] = (lambda p=p, g=g, m=m, v=v:
                              fastopt.adam_step(p, g, m, v, step=10, lr=1e-3, backend="cpp"))
r = interleaved(cells, repeat=9, min_time=0.01)
for k, t in r.items(): print(f"{k:12s} {t.median*1e3:.3f} ms")
