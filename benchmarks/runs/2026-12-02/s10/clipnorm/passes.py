import sys, numpy as np
from fastopt import _core
from fastopt.bench.timer import interleaved
n = int(float(sys.argv[1])) if len(sys.argv) > 1 else int(1e7)
rng = np.random.default_rng(0)
g = rng.standard_normal(n).astype(np.float32)
other = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
def flush():
    for o in other: o += 0
v = {
 "twin read": lambda: _core.bench_twin([g], [], [], None, None),
 "norm L2": lambda: _core.grad_norm([g], 0, 2.0),
 "sdot": lambda: np.dot(g, g),
 "twin rw": lambda: _core.bench_twin([], [g], [], None, None),
 "scale": lambda: _core.scale([g], 1.0),
 "twin 2": lambda: (_core.bench_twin([g], [], [], None, None), _core.bench_twin([], [g], [], None, None)),
 "clip": lambda: (_core.grad_norm([g], 0, 2.0), _core.scale([g], 1.0)),
}
r = interleaved(v, repeat=9, min_time=0.01, before=flush if "flush" in sys.argv else None)
for k, t in r.items(): print(f"{k:10s} {t.median*1e3:.3f} ms")
