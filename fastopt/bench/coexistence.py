"""Is fastopt's cpp backend as fast inside a torch (and numba) process as alone?

Two OpenMP runtimes in one process (torch's libgomp and another) spin
against each other and stall every parallel call; fastopt's pool sleeps
instead of spinning. Child processes alternate A B C A B C ...: "alone"
times fastopt's Adam with torch never imported; "after-use" imports torch and
numba and runs their parallel kernels (torch's fused Adam, fastopt's numba
backend) once, then times fastopt; "right-after" runs them again before
every sample, so torch's OpenMP threads are still spinning when fastopt
starts. Medians of the alternating runs are compared
(``fastopt bench coexistence``).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys

from fastopt.bench._child import same_fastopt

MODES = ("alone", "after-use", "right-after")

CHILD = r"""
import json, sys, time
import numpy as np
import fastopt
from fastopt.bench.timer import interleaved
sizes, mode = json.loads(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
out = {}
for n in sizes:
    a = [rng.standard_normal(n, dtype=np.float32) for _ in range(3)]
    a.append(rng.random(n, dtype=np.float32))
    others = []
    if mode != "alone":
        import torch
        t = [torch.from_numpy(x.copy()) for x in a]
        st = torch.tensor(3.0)
        others.append(lambda: torch._fused_adam_(
            [t[0]], [t[1]], [t[2]], [t[3]], [], [st], lr=1e-3, beta1=0.9, beta2=0.999,
            weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False))
        b = [x.copy() for x in a]
        others.append(lambda: fastopt.adam_step(*b, step=3, lr=1e-3, backend="numba"))
    for f in others:            # torch and numba have been used in this process
        f()
    time.sleep(0.05)
    before = (lambda: [f() for f in others]) if mode == "right-after" else None
    step = lambda: fastopt.adam_step(*a, step=3, lr=1e-3, backend="cpp")
    out[str(n)] = interleaved({"cpp": step}, repeat=15, min_time=0.005,
                              before=before)["cpp"].median
print(json.dumps(out))
"""



def run(sizes=(1_000, 100_000, 1_000_000, 10_000_000), rounds: int = 6) -> dict:
    sizes = [int(s) for s in sizes]
    runs = {m: [] for m in MODES}
    for _ in range(rounds):
        for mode in MODES:
            res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(sizes), mode],
                                 check=True, capture_output=True, text=True, **same_fastopt())
            runs[mode].append(json.loads(res.stdout.strip().splitlines()[-1]))
    med = {m: {str(n): statistics.median(r[str(n)] for r in runs[m]) for n in sizes}
           for m in MODES}
    return {"sizes": sizes, "rounds": rounds, "median_s": med, "runs": runs}


def format_report(r: dict) -> str:
    t = r["median_s"]
    lines = [f"fastopt cpp adam_step, float32, median of {r['rounds']} alternating child runs",
             "after-use: torch and numba imported and used once, then idle; right-after: their",
             "parallel kernels run just before every sample (torch's OpenMP threads spinning)",
             f"{'n':>10s} {'alone':>11s} {'after-use':>11s} {'ratio':>6s} {'right-after':>12s}"
             f" {'ratio':>6s}"]
    for n in r["sizes"]:
        a, u, ra = (t[m][str(n)] for m in MODES)
        lines.append(f"{n:10d} {a * 1e6:9.1f}us {u * 1e6:9.1f}us {u / a:6.2f} "
                     f"{ra * 1e6:10.1f}us {ra / a:6.2f}")
    return "\n".join(lines)
