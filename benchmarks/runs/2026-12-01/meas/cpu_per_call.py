"""CPU time per call (time.process_time over many calls, median of rounds) of the
small-size cells, where a loaded machine makes wall-clock medians meaningless:
a descheduled process accrues no CPU time. Interleaved round-robin.
PYTHONPATH=. python benchmarks/runs/2026-12-01/meas/cpu_per_call.py [--sizes 1e3,1e4]"""
import argparse
import os
import statistics
import time

import numpy as np

from fastopt import bench

ap = argparse.ArgumentParser()
ap.add_argument("--sizes", default="1e3,1e4,1e5")
ap.add_argument("--kernels", default="sgd,adam,rmsprop,ema,clip-norm,bn-forward,bn-backward,"
                                     "drop-forward,drop-backward")
ap.add_argument("--runners", default="numba,numpy,numpy-plain,numpy-out,cpp")
ap.add_argument("--rounds", type=int, default=7)
args = ap.parse_args()
print(f"# {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()}")
runners = args.runners.split(",")
print(f"{'kernel':14} {'n':>7} " + " ".join(f"{r:>11}" for r in runners) + "   numba/plain")
for name in args.kernels.split(","):
    k = bench.get(name)
    for n in (int(float(s)) for s in args.sizes.split(",")):
        a = k.setup(n, np.dtype(np.float32), np.random.default_rng(n))
        steps = {r: k.make(r, a) for r in runners if k.unavailable(r) is None}
        calls = {}
        for r, s in steps.items():
            s()
            c, t0 = 0, time.process_time()
            while time.process_time() - t0 < 0.02:
                s()
                c += 1
            calls[r] = max(c, 1)
        samples = {r: [] for r in steps}
        for _ in range(args.rounds):
            for r, s in steps.items():
                t0 = time.process_time()
                for _ in range(calls[r]):
                    s()
                samples[r].append((time.process_time() - t0) / calls[r])
        med = {r: statistics.median(v) * 1e6 for r, v in samples.items()}
        print(f"{name:14} {n:7.0e} " + " ".join(f"{med.get(r, float('nan')):9.1f}us"
                                               for r in runners)
              + f"   {med['numba'] / med['numpy-plain']:8.2f}", flush=True)
print(f"# end {time.strftime('%H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()}")
