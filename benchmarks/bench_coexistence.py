"""Is fastopt's cpp backend as fast inside a torch (and numba) process as alone?

BENCHMARKING.md's pitfall: two OpenMP runtimes in one process (torch's libgomp
and another) spin against each other on two cores and stall every parallel
call. fastopt's pool sleeps instead of spinning. This script alternates child
processes A B A B ...: A times fastopt's Adam alone (torch never imported), B
first imports torch and numba and runs their parallel kernels (torch's fused
Adam, fastopt's numba backend), then times the same fastopt calls interleaved
with them. Medians of the alternating runs are compared.

    python benchmarks/bench_coexistence.py [--rounds 6] [--sizes 1e3 1e5 1e7]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time, statistics
import numpy as np
import fastopt
sizes, with_torch = json.loads(sys.argv[1]), sys.argv[2] == "1"
rng = np.random.default_rng(0)
out = {}
for n in sizes:
    a = [rng.standard_normal(n, dtype=np.float32) for _ in range(3)] + [rng.random(n, dtype=np.float32)]
    others = []
    if with_torch:
        import torch
        t = [torch.from_numpy(x.copy()) for x in a]
        st = torch.tensor(3.0)
        others.append(lambda: torch._fused_adam_([t[0]], [t[1]], [t[2]], [t[3]], [], [st], lr=1e-3,
                      beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False))
        b = [x.copy() for x in a]
        others.append(lambda: fastopt.adam_step(*b, step=3, lr=1e-3, backend="numba"))
    k = max(1, int(3e6 // max(n, 1)))
    samples = []
    for _ in range(15):
        for f in others:        # the other runtimes have just been busy
            f()
        t0 = time.perf_counter()
        for _ in range(k):
            fastopt.adam_step(*a, step=3, lr=1e-3, backend="cpp")
        samples.append((time.perf_counter() - t0) / k)
    out[str(n)] = statistics.median(samples)
print(json.dumps(out))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e3, 1e5, 1e6, 1e7])
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes]
    runs = {"alone": [], "with torch+numba": []}
    for _ in range(args.rounds):
        for label, flag in (("alone", "0"), ("with torch+numba", "1")):
            res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(sizes), flag],
                                 check=True, capture_output=True, text=True)
            runs[label].append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"fastopt cpp adam_step, fp32, median of {args.rounds} alternating child runs")
    print(f"{'n':>10s} {'alone':>12s} {'with torch+numba':>18s} {'ratio':>7s}")
    for n in sizes:
        alone = statistics.median(r[str(n)] for r in runs["alone"])
        mixed = statistics.median(r[str(n)] for r in runs["with torch+numba"])
        print(f"{n:10d} {alone * 1e6:10.1f}us {mixed * 1e6:16.1f}us {mixed / alone:7.2f}")


if __name__ == "__main__":
    main()
