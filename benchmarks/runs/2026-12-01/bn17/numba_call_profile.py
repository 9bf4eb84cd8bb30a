"""Where a small numba call's time goes: the whole public call, against its
pieces (validation, the backend wrapper, the njit kernel), by CPU time per
call (process_time: a descheduled process accrues none), interleaved, medians.

    PYTHONPATH=. python benchmarks/runs/2026-12-01/bn17/numba_call_profile.py [--n 1000]
"""
import argparse
import statistics
import time

import numpy as np

import fastopt
from fastopt import _validate as v
from fastopt._specs import KERNELS
from fastopt.backends.numba import optim as nb
from fastopt.backends.numba._lists import table

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=1000)
ap.add_argument("--repeat", type=int, default=15)
args = ap.parse_args()
rng = np.random.default_rng(0)
n = args.n
p, g, m, s = (rng.standard_normal(n).astype(np.float32) for _ in range(4))
s = np.abs(s)
p0 = p.copy()
kw = dict(lr=1e-3, step=3)


def adam_locals():
    return dict(param=p, grad=g, exp_avg=m, exp_avg_sq=s, max_exp_avg_sq=None, step=3, lr=1e-3,
                beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False,
                decoupled_weight_decay=False, maximize=False, master_param=None, grad_scale=None,
                found_inf=None, stochastic_rounding=False, seed=0, backend="numba")


addresses, _, starts = table([p], [g], [m], [s], None)
kern = nb._adam[1]
sc = nb._typed(p.dtype, fastopt._scalars.adam(step=3, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                                              weight_decay=0.0, decoupled=False, maximize=False))
variants = {
    "public adam_step(backend=numba)": lambda: fastopt.adam_step(p, g, m, s, backend="numba", **kw),
    "validate only (v.call)": lambda: v.call(KERNELS["adam_step"], adam_locals()),
    "backend wrapper (numba optim.adam)": lambda: nb.adam([p], [g], [m], [s], None, step=3, lr=1e-3,
                                                        beta1=0.9, beta2=0.999, eps=1e-8,
                                                        weight_decay=0.0, decoupled=False,
                                                        maximize=False),
    "address table": lambda: table([p], [g], [m], [s], None),
    "njit serial kernel": lambda: kern(addresses, starts, p, *sc, 0, None),
    "plain NumPy sgd p -= lr*g": lambda: p.__isub__(1e-3 * g),
}
for f in variants.values():
    for _ in range(50):
        f()
res = {k: [] for k in variants}
for _ in range(args.repeat):
    for k, f in variants.items():
        reps = 200
        t0 = time.process_time()
        for _ in range(reps):
            f()
        res[k].append((time.process_time() - t0) / reps)
print(f"n={n}, CPU time per call, median of {args.repeat} x 200 calls")
for k, r in res.items():
    print(f"  {k:40s} {statistics.median(r) * 1e6:8.2f} us")
