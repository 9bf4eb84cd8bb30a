"""Host-side costs touched by issue 15 (CPU only; the machine is shared: medians of 5 x min)."""
import statistics, sys, timeit
import numpy as np
sys.path.insert(0, "tests")
import fastopt
from fastopt import _validate as v
from test_cuda_emulated import fake_gpu

def med(f, number):
    return statistics.median(min(timeit.repeat(f, number=number, repeat=3)) / number for _ in range(5))

x = np.random.randn(32, 64).astype(np.float32); dy = np.random.randn(32, 64).astype(np.float32)
g, b = np.ones(64, np.float32), np.zeros(64, np.float32)
rm, rv = np.zeros(64, np.float32), np.ones(64, np.float32)
_, sm, si = fastopt.batch_norm_forward(x, g, b, rm, rv)
print("batch norm (32, 64) float32, cpp backend, per call:")
for label, f in [("forward gamma/beta arrays", lambda: fastopt.batch_norm_forward(x, g, b, rm, rv)),
                 ("forward gamma=beta=None ", lambda: fastopt.batch_norm_forward(x, None, None, rm, rv)),
                 ("backward gamma array    ", lambda: fastopt.batch_norm_backward(dy, x, g, sm, si)),
                 ("backward gamma=None     ", lambda: fastopt.batch_norm_backward(dy, x, None, sm, si))]:
    print(f"  {label} {med(f, 2000) * 1e6:6.2f} us")
rng = np.random.default_rng(0)
p = [fake_gpu(rng.standard_normal(int(n)).astype(np.float32)) for n in rng.integers(1, 1000, 200)]
roles = [p] + [[fake_gpu(np.array(a)) for a in p] for _ in range(3)]
named = [("param", roles[0], True), ("grad", roles[1], False), ("exp_avg", roles[2], True),
         ("exp_avg_sq", roles[3], True)]
full = med(lambda: v._arrays(named, v.FLOAT_DTYPES), 20)
v.arrays(*named)
hit = med(lambda: v.arrays(*named), 20)
print("validation of 200 tensors x 4 roles of FakeCupyArray (Python-property stand-in for cupy):")
print(f"  full checks {full * 1e3:.2f} ms   cached (key build + lookup) {hit * 1e3:.2f} ms")
