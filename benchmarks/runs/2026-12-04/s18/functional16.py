"""One functional optimizer call on 1000 elements, per type mix: the native fast path
against the validated path (the module's ``_<kernel>_fast`` set to None, which is where
every 16-bit call went before this session). Median of 7 blocks of 2000 calls, us per call.
Run: PYTHONPATH=. python benchmarks/runs/2026-12-04/s18/functional16.py
"""
import statistics
import time

import ml_dtypes
import numpy as np

import fastopt
from fastopt.functional import optim

BF16, F16, F32 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16), np.dtype(np.float32)
N, CALLS, BLOCKS = 1000, 2000, 7
rng = np.random.default_rng(0)
KERNELS = {
    "adam": ("_adam_fast", lambda a: fastopt.adam_step(a[0], a[1], a[2], a[3], step=5, lr=1e-3)),
    "sgd-momentum": ("_sgd_fast", lambda a: fastopt.sgd_step(a[0], a[1], a[2], lr=1e-3,
                                                             momentum=0.9)),
    "rmsprop": ("_rmsprop_fast", lambda a: fastopt.rmsprop_step(a[0], a[1], a[3], lr=1e-3)),
    "adagrad": ("_adagrad_fast", lambda a: fastopt.adagrad_step(a[0], a[1], a[3], step=5,
                                                                lr=1e-3)),
}
MIXES = {"f32": (F32, F32, F32), "bf16": (BF16, BF16, BF16), "bf16 + f32 state": (BF16, BF16, F32),
         "bf16, f32 grad + state": (BF16, F32, F32), "f16": (F16, F16, F16)}


def median_us(fn, a):
    out = []
    for _ in range(BLOCKS):
        t0 = time.perf_counter()
        for _ in range(CALLS):
            fn(a)
        out.append((time.perf_counter() - t0) / CALLS * 1e6)
    return statistics.median(out)


print(f"{'kernel':14s} {'types':24s} {'native':>8s} {'validated':>10s} {'ratio':>6s}")
for kname, (attr, fn) in KERNELS.items():
    for mname, (P, G, S) in MIXES.items():
        a = [rng.standard_normal(N).astype(P), rng.standard_normal(N).astype(G),
             rng.standard_normal(N).astype(S), rng.uniform(0.5, 1.5, N).astype(S)]
        fn(a)
        native = median_us(fn, a)
        saved = getattr(optim, attr)
        setattr(optim, attr, None)
        try:
            slow = median_us(fn, a)
        finally:
            setattr(optim, attr, saved)
        print(f"{kname:14s} {mname:24s} {native:8.2f} {slow:10.2f} {slow / native:6.1f}")
