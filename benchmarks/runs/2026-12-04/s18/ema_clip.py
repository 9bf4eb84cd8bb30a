"""ema_update, fastopt.EMA.update, grad_norm and clip_grad_norm through the public API,
float32: one array of 1000 elements and 200 arrays of 100 / 5000. Best of 5 blocks, us.
Run: PYTHONPATH=. python benchmarks/runs/2026-12-04/s18/ema_clip.py
"""
import numpy as np
from _timing import best_us

import fastopt

rng = np.random.default_rng(0)
a, p = (rng.standard_normal(1000).astype(np.float32) for _ in range(2))
g = rng.standard_normal(1000).astype(np.float32)
print(f"one array of 1000: ema_update {best_us(lambda: fastopt.ema_update(a, p, 0.99), 1000):.1f}"
      f"  grad_norm {best_us(lambda: fastopt.grad_norm(g), 1000):.1f}"
      f"  clip_grad_norm {best_us(lambda: fastopt.clip_grad_norm(g, 1e9), 1000):.1f}")
for n in (100, 5000):
    ps = [rng.standard_normal(n).astype(np.float32) for _ in range(200)]
    gs = [rng.standard_normal(n).astype(np.float32) for _ in range(200)]
    ema = fastopt.EMA(ps, decay=0.99)
    print(f"200 arrays of {n}: EMA.update {best_us(ema.update, 50):.1f}"
          f"  clip_grad_norm {best_us(lambda: fastopt.clip_grad_norm(gs, 1e9), 50):.1f}")
