"""clip_grad_norm / grad_norm over 200 float32 arrays of 100 elements, per norm order:
the public call against its validated function, and fastopt.torch.clip_grad_norm_
against torch's. Wall-clock time per call, best of rounds (us): CPU time would count
torch's spinning OpenMP threads.

    PYTHONPATH=. python benchmarks/runs/2026-12-06/s19/clip_inf.py
"""
import functools
import os
import sys
import time

import numpy as np
import fastopt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_us as _best  # noqa: E402

best_us = functools.partial(_best, clock=time.perf_counter)


rng = np.random.default_rng(0)
gs = [rng.standard_normal(100).astype(np.float32) for _ in range(200)]
for nt in (2.0, float("inf")):
    pub = best_us(lambda: fastopt.clip_grad_norm(gs, 1e9, nt), n=500, rounds=9)
    val = best_us(lambda: fastopt.clip_grad_norm.__wrapped__(gs, 1e9, nt), n=200, rounds=9)
    print(f"clip_grad_norm norm_type={nt}: public {pub:7.1f} us, validated {val:7.1f} us")
try:
    import torch
    import fastopt.torch as ft
except ImportError:
    sys.exit(0)
ps = [torch.nn.Parameter(torch.from_numpy(g.copy())) for g in gs]
for p, g in zip(ps, gs):
    p.grad = torch.from_numpy(g.copy())
for nt in (2.0, float("inf")):
    f = best_us(lambda: ft.clip_grad_norm_(ps, 1e9, nt), n=500, rounds=9)
    t = best_us(lambda: torch.nn.utils.clip_grad_norm_(ps, 1e9, nt), n=500, rounds=9)
    print(f"fastopt.torch.clip_grad_norm_ norm_type={nt}: {f:7.1f} us, torch's {t:7.1f} us")
