"""numba dropout forward (Philox, compute-bound): parallel vs serial build, interleaved.
python benchmarks/runs/2026-12-01/perf/numba_threshold_forward.py"""
import numpy as np
from fastopt.backends.numba import dropout as dr
from fastopt.backends.numpy import dropout as ref
from fastopt.bench.timer import interleaved

rng = np.random.default_rng(0)
for n in (10_000, 100_000, 300_000, 1_000_000):
    x = rng.standard_normal(n).astype(np.float32)
    y = np.empty_like(x); m = np.empty((n + 7) // 8, np.uint8)
    args = (x, y, m, np.uint64(1), np.uint64(0), np.uint64(1 << 30), np.float32(4 / 3))
    r = interleaved({"parallel": lambda: dr._forward_par(*args), "serial": lambda: dr._forward_ser(*args),
                     "numpy_reference": lambda: ref.forward(x, 0.25, 1)}, repeat=9, min_time=0.01)
    print(f"dropout_fwd n={n:<8d} float32 " + "  ".join(f"{k}={v.median*1e6:9.1f}us" for k, v in r.items()), flush=True)
