"""Serial against parallel numba builds (and plain NumPy) per size: where does the
parallel build start to pay? Interleaved medians, wall clock and CPU time
(process_time: every thread's CPU time) in the same rounds.

    PYTHONPATH=. python benchmarks/runs/2026-12-01/numbacall/numba_threshold.py [--repeat 9]
"""
import argparse
import os
import time

import numpy as np

from fastopt.backends.numba import averaging, clipping, dropout, optim
from fastopt.backends.numba._lists import table
from fastopt.bench.timer import interleaved


def cases(n, rng):
    f = np.float32
    p, g, m, v = (rng.standard_normal(n).astype(f) for _ in range(4))
    v = np.abs(v)
    mask = rng.integers(0, 256, (n + 7) // 8, dtype=np.uint8)
    dx, y, mk = np.empty_like(g), np.empty_like(g), np.empty_like(mask)
    u = (rng.random(n) < 0.5).astype(f) * 2
    a3, _, s3 = table([p], [g], None)
    a5, _, s5 = table([p], [g], [m], [v], None)
    sgd = lambda b: lambda: optim._sgd[b](a3, s3, p, f(1e-3), f(0), f(1), f(0), f(1), 0, False)  # noqa: E731
    adam = lambda b: lambda: optim._adam[b](a5, s5, p, f(.9), f(.1), f(.999), f(.001), f(1e-8),  # noqa: E731
                                            f(0), f(1), f(1e-3), f(.5), f(1), 0, None)
    ema = lambda b: lambda: averaging._ema[b](m, p, f(.999), f(.001))  # noqa: E731
    clip = lambda b: lambda: (clipping._block_partials[b](g, clipping.L2, 2.0),  # noqa: E731
                              clipping._scale[b](g, f(1.0)))
    dbwd = (dropout._backward_par.parallel, dropout._backward_ser)
    dfwd = (dropout._forward_par.parallel, dropout._forward_ser)
    k = (np.uint64(1), np.uint64(0), np.uint64(1 << 31), f(2))
    cases.keep = (p, g, m, v)   # the tables hold only addresses: keep the arrays alive
    return {
        "sgd": (sgd, lambda: p.__iadd__(-1e-3 * g)),
        "adam": (adam, None),
        "ema": (ema, lambda: m.__imul__(.999).__iadd__(.001 * p)),
        "clip": (clip, lambda: g.__imul__(1.0 / (np.sqrt(np.sum(g ** 2)) + 1))),
        "drop-bwd": (lambda b: lambda: dbwd[b](g, mask, dx, f(2)), lambda: g * u),
        "drop-fwd": (lambda b: lambda: dfwd[b](g, y, mk, *k), None),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--sizes", default="65536,262144,524288,1048576,2097152,4194304,10000000")
    a = ap.parse_args()
    print(f"load {os.getloadavg()}, NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS')}")
    print(f"{'kernel':9s} {'n':>9s} {'par/ser wall':>13s} {'par/ser cpu':>12s} "
          f"{'ser us wall':>12s} {'par us wall':>12s} {'ser/numpy cpu':>14s}")
    for n in [int(s) for s in a.sizes.split(",")]:
        for name, (make, plain) in cases(n, np.random.default_rng(n)).items():
            fns = {"par": make(0), "ser": make(1)}
            if plain is not None:
                fns["numpy"] = plain
            walls, cpus = {}, {}
            for clock, out in ((time.perf_counter, walls), (time.process_time, cpus)):
                t = interleaved(fns, repeat=a.repeat, min_time=0.01, clock=clock)
                out.update({k: t[k].median for k in t})
            sn = f"{cpus['ser'] / cpus['numpy']:14.2f}" if "numpy" in cpus else f"{'-':>14s}"
            print(f"{name:9s} {n:9d} {walls['par'] / walls['ser']:13.2f} "
                  f"{cpus['par'] / cpus['ser']:12.2f} {walls['ser'] * 1e6:12.1f} "
                  f"{walls['par'] * 1e6:12.1f}{sn}", flush=True)


if __name__ == "__main__":
    main()
