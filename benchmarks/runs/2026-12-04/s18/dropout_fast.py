"""fastopt.dropout_forward / dropout_backward through the public functions, float32 and bfloat16:
best of 5 x 1000 calls, us. Run: PYTHONPATH=. python benchmarks/runs/2026-12-04/s18/dropout_fast.py"""
from _timing import best_us
import time, numpy as np, ml_dtypes, fastopt
rng=np.random.default_rng(0)
def t(fn, k=1000):
    return best_us(fn, k)
for n in (1000, 16384):
    for dt in (np.float32, ml_dtypes.bfloat16):
        x=rng.standard_normal(n).astype(dt)
        f=lambda: fastopt.dropout_forward(x, 0.5, seed=1)
        y,m=f()
        b=lambda: fastopt.dropout_backward(x, m, 0.5)
        print(n, np.dtype(dt).name, "fwd %.1f us" % t(f), "bwd %.1f us" % t(b))
