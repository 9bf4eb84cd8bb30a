import sys, time, numpy as np, importlib
sys.path.insert(0, sys.argv[1])
import fastopt
from fastopt import quantized as Q
n = int(float(sys.argv[2]))
rng = np.random.default_rng(0)
p = rng.standard_normal(n).astype(np.float32); g = rng.standard_normal(n).astype(np.float32)
m = fastopt.quantize(rng.standard_normal(n).astype(np.float32) * 1e-2, True)
v = fastopt.quantize(np.abs(rng.standard_normal(n).astype(np.float32)) * 1e-4, False)
ts = []
for i in range(int(sys.argv[3]) if len(sys.argv) > 3 else 15):
    t0 = time.process_time(); fastopt.adam_step(p, g, m, v, step=i + 1, lr=1e-3, backend="cpp"); ts.append(time.process_time() - t0)
print(sys.argv[1], "median CPU ms", round(float(np.median(ts)) * 1e3, 3), "min", round(min(ts) * 1e3, 3))
