"""fastopt.torch.Adam against torch.optim.Adam(fused=True) over many small tensors:
step() time per call, wall clock (CPU time would count fastopt's polling workers), best
of rounds (us); torch on one thread, fastopt on its own (FASTOPT_NUM_THREADS).

    PYTHONPATH=. python benchmarks/runs/2026-12-06/s19/dropin_small.py [K] [N]
"""
import functools
import os
import sys
import time

import torch
import fastopt.torch as ft

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_us as _best  # noqa: E402

best_us = functools.partial(_best, clock=time.perf_counter)

k = int(sys.argv[1]) if len(sys.argv) > 1 else 200
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
torch.set_num_threads(1)
torch.manual_seed(0)
base = [torch.randn(n) for _ in range(k)]
grads = [torch.randn(n) for _ in range(k)]


def make(cls, **kw):
    ps = [torch.nn.Parameter(b.clone()) for b in base]
    for p, g in zip(ps, grads):
        p.grad = g.clone()
    opt = cls(ps, lr=1e-3, **kw)
    opt.step()
    return opt.step


runs = {"torch fused": make(torch.optim.Adam, fused=True),
        "torch foreach": make(torch.optim.Adam, foreach=True),
        "fastopt.torch": make(ft.Adam)}
for _ in range(2):
    for name, fn in runs.items():
        print(f"{k} x {n}: {name:14s} {best_us(fn, n=200, rounds=7):8.1f} us")
