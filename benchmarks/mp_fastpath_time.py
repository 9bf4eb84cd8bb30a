# Fixed cost of a plain float32 call (n=16): ns per call, min of 7 x 20000. Usage: PYTHONPATH=<tree> python benchmarks/mp_fastpath_time.py <label>
import sys, timeit, numpy as np, fastopt
n = 16
r = np.random.default_rng(0)
p, g, m = (r.standard_normal(n).astype(np.float32) for _ in range(3)); v = np.abs(m)
buf = m.copy()
f = {"adam": lambda: fastopt.adam_step(p, g, m, v, step=3, lr=1e-3),
     "sgd": lambda: fastopt.sgd_step(p, g, buf, lr=0.01, momentum=0.9)}
out = []
for name, fn in f.items():
    t = min(timeit.repeat(fn, number=20000, repeat=7)) / 20000 * 1e9
    out.append(f"{name} {t:.0f}")
print(sys.argv[1], " ".join(out))
