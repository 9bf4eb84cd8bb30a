"""numba batch norm: parallel build, serial build and NumPy side by side, interleaved.

PYTHONPATH=. python benchmarks/runs/2026-12-01/meas/numba_bn_threshold.py [--repeat 9]
Each cell times, round-robin in one process: numba with every call on the
parallel build (SERIAL_BELOW = 0), numba with every call on the serial build,
lecture-notes NumPy (numpy-plain) and NumPy with out= (numpy-out)."""
import argparse
import os
import sys
import time

import numpy as np

from fastopt import bench
from fastopt.backends.numba import _serial

ap = argparse.ArgumentParser()
ap.add_argument("--repeat", type=int, default=9)
ap.add_argument("--sizes", default="1e3,1e4,3e4,1e5,3e5,1e6,3e6")
ap.add_argument("--dtypes", default="float32,float64")
args = ap.parse_args()
print(f"# {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()}, "
      f"argv {sys.argv[1:]}, NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}")


def forced(step, below):
    def run():
        _serial.SERIAL_BELOW = below
        step()
    return run


print(f"{'kernel':12} {'dtype':8} {'n':>8} {'stat':6} {'parallel':>10} {'serial':>10} {'np-plain':>10} "
      f"{'np-out':>10}  serial/plain  parallel/plain")
default = _serial.SERIAL_BELOW
for name in ("bn-forward", "bn-backward"):
    k = bench.get(name)
    for dtype in args.dtypes.split(","):
        for n in (int(float(s)) for s in args.sizes.split(",")):
            arrays = k.setup(n, np.dtype(dtype), np.random.default_rng(n))
            numba_step = k.make("numba", arrays)
            variants = {"parallel": forced(numba_step, 0), "serial": forced(numba_step, 1 << 62),
                        "np-plain": k.make("numpy-plain", arrays),
                        "np-out": k.make("numpy-out", arrays)}
            for v in variants.values():  # compile both builds, touch the pages
                v()
            t = bench.interleaved(variants, repeat=args.repeat, min_time=0.01)
            for stat in ("median", "min"):
                med = {v: getattr(t[v], stat) * 1e6 for v in variants}
                print(f"{name:12} {dtype:8} {n:8.0e} {stat:6} "
                      + " ".join(f"{med[v]:8.1f}us" for v in variants)
                      + f"  {med['serial'] / med['np-plain']:12.2f}  "
                        f"{med['parallel'] / med['np-plain']:14.2f}", flush=True)
_serial.SERIAL_BELOW = default
print(f"# end {time.strftime('%H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()}")
