import sys, time, numpy as np
sys.path.insert(0, sys.argv[1])
import fastopt
n = int(sys.argv[2])
rng = np.random.default_rng(0)
p = rng.standard_normal(n).astype(np.float32); g = rng.standard_normal(n).astype(np.float32)
m = fastopt.quantize(rng.standard_normal(n).astype(np.float32) * 1e-2, True)
v = fastopt.quantize(np.abs(rng.standard_normal(n).astype(np.float32)) * 1e-4, False)
for i in range(50): fastopt.adam_step(p, g, m, v, step=i + 1, lr=1e-3, backend="cpp")
ts = []
for i in range(400):
    t0 = time.perf_counter(); fastopt.adam_step(p, g, m, v, step=i + 1, lr=1e-3, backend="cpp"); ts.append(time.perf_counter() - t0)
print(sys.argv[1], n, "median us", round(float(np.median(ts)) * 1e6, 2))
