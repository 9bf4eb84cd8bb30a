"""Median time of fastopt.Adam(...).step(grads) over 200 float32 arrays of mixed sizes
(the sizes of bench_optimizers.py), one or two parameter groups; cpp backend.
Prints one JSON line. To compare two checkouts, alternate runs of each:

    PYTHONPATH=<checkout> python benchmarks/bench_step_200.py --total 100000 [--groups 2]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import fastopt


def sizes_200(total, rng):
    big = [total // 8] * 4                     # a few large matrices
    rest = total - sum(big)
    small = rng.integers(1, 64, 196).astype(float)
    small = np.maximum(1, (small / small.sum() * rest).astype(int))
    small[-1] += rest - small.sum()
    return big + [int(s) for s in small]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", type=int, default=10_000_000)
    ap.add_argument("--groups", type=int, default=1)
    ap.add_argument("--samples", type=int, default=30)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    ps = [rng.standard_normal(n).astype(np.float32) for n in sizes_200(args.total, rng)]
    gs = [rng.standard_normal(p.shape).astype(np.float32) for p in ps]
    k = len(ps) // args.groups
    groups = [{"params": ps[i * k:(i + 1) * k if i < args.groups - 1 else len(ps)]}
              for i in range(args.groups)]
    opt = fastopt.Adam(groups, lr=1e-9, backend="cpp")
    opt.step(gs)
    reps = max(1, min(50, int(2e7 // args.total)))
    samples = []
    for _ in range(args.samples):
        t0 = time.perf_counter()
        for _ in range(reps):
            opt.step(gs)
        samples.append((time.perf_counter() - t0) / reps)
    print(json.dumps({"total": args.total, "groups": args.groups,
                      "median_us": statistics.median(samples) * 1e6}))


if __name__ == "__main__":
    main()
