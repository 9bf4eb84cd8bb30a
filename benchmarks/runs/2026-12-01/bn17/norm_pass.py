"""clip's norm pass against the read twin, 10^7 fp32, interleaved medians (threads: env).
PYTHONPATH=. [FASTOPT_NUM_THREADS=1] python benchmarks/runs/2026-12-01/bn17/norm_pass.py"""
import os, time
import numpy as np
from fastopt import _core, bench
from fastopt.backends.cpp import clipping as cc
g = np.random.default_rng(1).standard_normal(10**7).astype(np.float32)
v = {"twin: read g": lambda: _core.bench_twin([g], [], [], None, None),
     "cpp grad_norm (backend module, no validation)": lambda: cc.grad_norm([g], norm_type=2.0),
     "numpy sqrt(dot(g, g))": lambda: np.sqrt(np.dot(g, g)),
     "cpp scale pass": lambda: cc.scale([g], coef=1.0000001),
     "twin: read-write g": lambda: _core.bench_twin([], [g], [], None, None)}
t = bench.interleaved(v, repeat=11, min_time=0.02)
print(f"# {time.strftime('%H:%M:%S', time.gmtime())} load {os.getloadavg()} threads {os.environ.get('FASTOPT_NUM_THREADS')}")
for k in v:
    print(f"  {k:48s} {t[k].median*1e3:7.2f} ms  min {t[k].min*1e3:7.2f}")
