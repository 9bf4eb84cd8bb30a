"""Where the two-pass kernels lose to their twin: each pass timed alone, beside the twin's.

FASTOPT_NUM_THREADS=1 OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONPATH=. \
    python benchmarks/runs/2026-12-01/meas/passes.py [--repeat 15] [--n 1e7]
float32, interleaved round-robin in one process (fastopt.bench.interleaved),
medians; bench_twin calls on the same arrays as the kernel (ro: read, rw:
read-write, wo: written). Cached outputs (batch norm's y / dx from fastopt's
buffer cache)."""
import argparse
import os
import sys
import time

import numpy as np

import fastopt
from fastopt import _core, bench

ap = argparse.ArgumentParser()
ap.add_argument("--repeat", type=int, default=15)
ap.add_argument("--n", default="1e7")
args = ap.parse_args()
n = int(float(args.n))
print(f"# {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()}, "
      f"argv {sys.argv[1:]}, FASTOPT_NUM_THREADS={os.environ.get('FASTOPT_NUM_THREADS')}")
rng = np.random.default_rng(1)
f32 = np.float32


def report(title, variants, ref):
    t = bench.interleaved(variants, repeat=args.repeat, min_time=0.02)
    print(f"\n{title}  (n = {n:.0e} float32, median of {args.repeat}, ratio = {ref} / variant)")
    for k in variants:
        print(f"  {k:44} {t[k].median * 1e3:8.2f} ms   min {t[k].min * 1e3:8.2f} ms   "
              f"{t[ref].median / t[k].median:5.2f}", flush=True)


# clip_grad_norm: norm pass (read g), scale pass (read-write g)
g = rng.standard_normal(n).astype(f32)
g2 = rng.standard_normal(n).astype(f32)
coef = f32(0.999)
report("clip_grad_norm", {
    "twin: read g + read-write g (two calls)":
        lambda: (_core.bench_twin([g], [], [], None, None), _core.bench_twin([], [g], [], None, None)),
    "cpp clip_grad_norm, clipping (both passes)":
        lambda: fastopt.clip_grad_norm([g2], 0.0, backend="cpp"),
    "twin: read g (norm pass)": lambda: _core.bench_twin([g], [], [], None, None),
    "cpp clip_grad_norm, max_norm 1e30 (norm pass only)":
        lambda: fastopt.clip_grad_norm([g], 1e30, backend="cpp"),
    "numpy: sqrt(dot(g, g)) (norm pass)": lambda: np.sqrt(np.dot(g, g)),
    "twin: read-write g (scale pass)": lambda: _core.bench_twin([], [g], [], None, None),
    "numpy: multiply(g, c, out=g) (scale pass)": lambda: np.multiply(g, coef, out=g),
}, "twin: read g + read-write g (two calls)")

# SGD: read g, read-write p
k = bench.get("sgd")
a = k.setup(n, np.dtype(f32), rng)
report("sgd", {"twin (bench)": k.make("twin", a), "cpp": k.make("cpp", a),
               "numpy-out": k.make("numpy-out", a)}, "twin (bench)")

# batch norm forward: training = statistics pass + normalize pass; eval = normalize pass
k = bench.get("bn-forward")
a = k.setup(n, np.dtype(f32), rng)
x, y = a["x"].reshape(-1), a["_twin_y"].reshape(-1)
fwd = [a[key] for key in ("x", "gamma", "beta", "running_mean", "running_var")]
report("batch norm forward", {
    "twin (bench): read x + read x, write y": k.make("twin", a),
    "cpp training (stats + normalize)": k.make("cpp", a),
    "twin: read x (stats pass)": lambda: _core.bench_twin([x], [], [], None, None),
    "twin: read x, write y (normalize pass)": lambda: _core.bench_twin([x], [], [y], None, None),
    "cpp eval (normalize pass only)":
        lambda: fastopt.batch_norm_forward(*fwd, training=False, eps=1e-5, backend="cpp"),
}, "twin (bench): read x + read x, write y")

k = bench.get("bn-backward")
a = k.setup(n, np.dtype(f32), rng)
dy, x, dx = (a[key].reshape(-1) for key in ("dy", "x", "_twin_dx"))
bwd = [a[key] for key in ("dy", "x", "gamma", "save_mean", "save_invstd")]
report("batch norm backward", {
    "twin (bench): read dy, x + read dy, x, write dx": k.make("twin", a),
    "cpp training (sums + dx)": k.make("cpp", a),
    "twin: read dy, x (sums pass)": lambda: _core.bench_twin([dy, x], [], [], None, None),
    "twin: read dy, x, write dx (dx pass)": lambda: _core.bench_twin([dy, x], [], [dx], None, None),
    # (runs 1 and 2 labelled this "one pass, reads dy only": it also reads x, for dgamma)
    "cpp eval (one pass: dgamma, dbeta sums and dx = gamma * invstd * dy)":
        lambda: fastopt.batch_norm_backward(*bwd, training=False, backend="cpp"),
}, "twin (bench): read dy, x + read dy, x, write dx")
print(f"\n# end {time.strftime('%H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()}")
