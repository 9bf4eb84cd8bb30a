"""Is fastopt's cpp backend as fast inside a torch (and numba) process as alone?

BENCHMARKING.md's pitfall: two OpenMP runtimes in one process (torch's libgomp
and another) spin against each other on two cores and stall every parallel
call. fastopt's pool sleeps instead of spinning. This script alternates child
processes A B A B ...: "alone" times fastopt's Adam with torch never imported;
"after-use" imports torch and numba and runs their parallel kernels (torch's
fused Adam, fastopt's numba backend) once, then times fastopt; "right-after"
runs them again before every sample, so torch's OpenMP threads are still
spinning when fastopt starts. Medians of the alternating runs are compared.

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
sizes, mode = json.loads(sys.argv[1]), sys.argv[2]
with_torch = mode != "alone"
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
    for f in others:            # torch and numba have been used in this process
        f()
    time.sleep(0.05)
    for _ in range(15):
        if mode == "right-after":
            for f in others:    # ... and ran just before every sample
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
    modes = ("alone", "after-use", "right-after")
    runs = {m: [] for m in modes}
    for _ in range(args.rounds):
        for label in modes:
            flag = label
            res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(sizes), flag],
                                 check=True, capture_output=True, text=True)
            runs[label].append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"fastopt cpp adam_step, fp32, median of {args.rounds} alternating child runs")
    print("after-use: torch and numba imported and used once, then idle; right-after: their")
    print("parallel kernels run just before every sample (torch's OpenMP threads still spinning)")
    print(f"{'n':>10s} {'alone':>11s} {'after-use':>11s} {'ratio':>6s} {'right-after':>12s} {'ratio':>6s}")
    for n in sizes:
        t = {m: statistics.median(r[str(n)] for r in runs[m]) for m in modes}
        print(f"{n:10d} {t['alone'] * 1e6:9.1f}us {t['after-use'] * 1e6:9.1f}us "
              f"{t['after-use'] / t['alone']:6.2f} {t['right-after'] * 1e6:10.1f}us "
              f"{t['right-after'] / t['alone']:6.2f}")


if __name__ == "__main__":
    main()
