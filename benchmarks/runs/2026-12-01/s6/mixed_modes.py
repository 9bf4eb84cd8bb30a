"""Per-element time of the cpp mixed Adam loops by storage combination (one call, 10^6)."""
import sys, time
import numpy as np, ml_dtypes
from fastopt.backends.cpp import optim as cpp
n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 1_000_000
BF, H, F = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16), np.dtype(np.float32)
rng = np.random.default_rng(0)
ADAM = dict(step=10, lr=1e-4, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
            decoupled=False, maximize=False)
def arrays(pt, gt, st):
    g = rng.standard_normal(n, dtype=np.float32)
    return [rng.standard_normal(n, dtype=np.float32).astype(pt)], [g.astype(gt)], \
        [(g * np.float32(0.1)).astype(st)], [(g * g * np.float32(0.01)).astype(st)]
cases = {}
for name, (pt, gt, st) in {"fff": (F, F, F), "bbb": (BF, BF, BF), "hhh": (H, H, H),
                           "bbf": (BF, BF, F), "hhf": (H, H, F)}.items():
    a = arrays(pt, gt, st)
    cases[name] = (lambda a=a: cpp.adam(*a, None, **ADAM))
    if name in ("bbb", "hhh"):
        cases[name + "-scale"] = (lambda a=a: cpp.adam(*a, None, grad_scale=np.float32(2.0), **ADAM))
    if name in ("bbf", "hhf"):
        m = [rng.standard_normal(n, dtype=np.float32)]
        cases[name + "-master"] = (lambda a=a, m=m: cpp.adam(*a, None, masters=m, **ADAM))
ts = {k: [] for k in cases}
for r in range(int(sys.argv[2]) if len(sys.argv) > 2 else 7):
    for k, f in cases.items():
        t0 = time.thread_time(); f(); ts[k].append(time.thread_time() - t0)
for k, v in ts.items():
    print(f"{k:12s} {np.median(v)*1e9/n:6.2f} ns/elem (CPU, median)")
