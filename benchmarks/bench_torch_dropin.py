"""step() of the torch drop-in over 200 parameters: fastopt.torch.Adam vs torch fused.

Variants, timed round-robin in one process (interleaved), medians of the same window:

  torch_fused   torch.optim.Adam(params, fused=True).step()
  torch_foreach torch.optim.Adam(params, foreach=True).step()
  dropin        fastopt.torch.Adam(params).step()

Each variant owns its own 200 CPU fp32 parameters (mixed sizes summing to --total)
with fixed gradients. A small --total measures the per-step overhead of the
Python checks (what issue 13's validation adds); a large one the streaming cost.

    PYTHONPATH=. python benchmarks/bench_torch_dropin.py [--total 100000] [--rounds 31] [--threads]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

# One thread for both sides unless told otherwise: on a shared machine a pool
# wake-up for a 10^5-element call costs more than the Python being measured.
if "--threads" not in sys.argv:
    os.environ.setdefault("FASTOPT_NUM_THREADS", "1")

import numpy as np
import torch

import fastopt.torch as ft
from bench_optimizers import sizes_200   # the same 200 sizes as the class benchmark


def make(sizes, seed):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.nn.Parameter(torch.randn(n, generator=g)) for n in sizes]
    for p in ps:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    return ps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--repeat", type=int, default=20, help="step() calls per sample")
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--threads", action="store_true",
                    help="leave FASTOPT_NUM_THREADS to the environment (default: 1)")
    a = ap.parse_args()
    torch.set_num_threads(a.torch_threads)
    sizes = sizes_200(a.total, np.random.default_rng(0))
    opts = {
        "torch_fused": torch.optim.Adam(make(sizes, 1), lr=1e-3, fused=True),
        "torch_foreach": torch.optim.Adam(make(sizes, 1), lr=1e-3, foreach=True),
        "dropin": ft.Adam(make(sizes, 1), lr=1e-3),
    }
    times = {k: [] for k in opts}
    for o in opts.values():   # warm-up: state creation, caches
        for _ in range(3):
            o.step()
    for _ in range(a.rounds):
        for k, o in opts.items():
            t0 = time.perf_counter()
            for _ in range(a.repeat):
                o.step()
            times[k].append((time.perf_counter() - t0) / a.repeat)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"200 params, {a.total} fp32 elements, torch threads {a.torch_threads}, "
          f"FASTOPT_NUM_THREADS={os.environ.get('FASTOPT_NUM_THREADS', 'default')}, "
          f"{a.rounds} rounds x {a.repeat} steps, medians")
    for k, m in med.items():
        print(f"  {k:14s} {m * 1e6:9.1f} us   x{med['torch_fused'] / m:5.2f} vs torch_fused")


if __name__ == "__main__":
    main()
