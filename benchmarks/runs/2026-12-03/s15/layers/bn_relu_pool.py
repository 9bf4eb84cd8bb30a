"""BatchNorm2d + ReLU + max-pool on (32, 32, 32, 32) channels-last, compiled with
inductor, forward + backward, one thread: a = ReLU + max-pool alone (no batch norm),
b = fastopt's BatchNorm2d first, c = torch's, d = fastopt's BatchNorm2d alone.
Three interleaved rounds of 20 steps, ms per step (wall clock).

    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) PYTHONPATH=. python bn_relu_pool.py"""
import time
import torch
import fastopt.torch as ft
from fastopt import _core

torch.set_num_threads(1)
_core.set_num_threads(1)
F = torch.nn.functional
bn, tbn = ft.BatchNorm2d(32), torch.nn.BatchNorm2d(32)
cases = {"a relu+pool": lambda x: F.max_pool2d(F.relu(x), 2),
         "b fastopt bn+relu+pool": lambda x: F.max_pool2d(F.relu(bn(x)), 2),
         "c torch bn+relu+pool": lambda x: F.max_pool2d(F.relu(tbn(x)), 2),
         "d fastopt bn": lambda x: bn(x)}
x = torch.randn(32, 32, 32, 32).to(memory_format=torch.channels_last).requires_grad_()
g = torch.randn(32, 32, 16, 16).to(memory_format=torch.channels_last)
fns = {k: torch.compile(f) for k, f in cases.items()}


def step(f):
    y = f(x)
    y.backward(g if y.shape == g.shape else torch.ones_like(y))


for f in fns.values():
    for _ in range(3):
        step(f)
for r in range(3):
    for k, f in fns.items():
        t0 = time.perf_counter()
        for _ in range(20):
            step(f)
        print(f"round {r} {k:24s} {(time.perf_counter() - t0) / 20 * 1e3:7.2f} ms")
