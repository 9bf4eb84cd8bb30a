"""Does fastopt keep its speed next to a busy neighbour process (issue 14)?

A data-loader worker, say, keeps one of the cores busy. With torch imported,
fastopt could run its parts on torch's libgomp team (FASTOPT_REUSE_OPENMP=1):
GOMP_parallel ends on a barrier that waits for every team thread, and one of
them shares its core with the neighbour, so a call can wait out the
scheduler's time slice (ms). fastopt's own pool (FASTOPT_REUSE_OPENMP=0)
lets the caller claim the parts a late worker has not started.

Each setting runs in its own child (the setting is read once per process).
The child imports torch and runs a parallel torch op before every sample
(so torch's team exists and has just been used), then times each kernel at
each size, alternating blocks with the neighbour paused (SIGSTOP, "quiet")
and running ("busy"): a process spinning on the last CPU. Medians of the
per-call times are printed with the busy/quiet ratio.

    python benchmarks/bench_neighbour.py [--sizes 1e5 1e7] [--blocks 3] [--reps 50]
        [--settings always 1 0] [--rounds 2] [--kernels adam bn_fwd ...]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, signal, statistics, subprocess, sys, time
import numpy as np
import torch
import fastopt

sizes, blocks, reps_cap = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
only = json.loads(sys.argv[4])
cpus = sorted(os.sched_getaffinity(0))
spin = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                        preexec_fn=lambda: os.sched_setaffinity(0, {cpus[-1]}))
os.kill(spin.pid, signal.SIGSTOP)
tt = torch.ones(1 << 20)

def kernels(n):
    rng = np.random.default_rng(0)
    f = lambda: rng.standard_normal(n).astype(np.float32)
    p, g, m, v = f(), f(), f(), np.abs(f())
    c = 64
    x = rng.standard_normal((max(n // c, 2), c)).astype(np.float32)
    one, zero = np.ones(c, np.float32), np.zeros(c, np.float32)
    y, mean, invstd = fastopt.batch_norm_forward(x, one, zero, zero.copy(), one.copy())
    _, mask = fastopt.dropout_forward(p, 0.5, seed=1)
    return {
        "sgd": lambda: fastopt.sgd_step(p, g, m, lr=1e-9, momentum=0.9),
        "adam": lambda: fastopt.adam_step(p, g, m, v, step=3, lr=1e-9),
        "rmsprop": lambda: fastopt.rmsprop_step(p, g, v, lr=1e-9),
        "adagrad": lambda: fastopt.adagrad_step(p, g, v, step=3, lr=1e-9),
        "dropout_fwd": lambda: fastopt.dropout_forward(p, 0.5, seed=1),
        "dropout_bwd": lambda: fastopt.dropout_backward(g, mask, 0.5),
        "bn_fwd": lambda: fastopt.batch_norm_forward(x, one, zero, zero.copy(), one.copy()),
        "bn_bwd": lambda: fastopt.batch_norm_backward(x, x, one, mean, invstd),
        "clip": lambda: fastopt.clip_grad_norm([g], 1e30),
        "ema": lambda: fastopt.ema_update(m, p, 0.999),
    }

out = {}
for n in sizes:
    ks = {k: f for k, f in kernels(n).items() if not only or k in only}
    reps = max(3, min(reps_cap, int(2e7 // n)))
    samples = {(k, mode): [] for k in ks for mode in ("quiet", "busy")}
    for b in range(blocks):
        for mode in ("quiet", "busy"):
            os.kill(spin.pid, signal.SIGCONT if mode == "busy" else signal.SIGSTOP)
            time.sleep(0.05)
            for k, fn in ks.items():
                fn()
                for _ in range(reps):
                    tt.add_(1.0)         # torch's team has just run
                    t0 = time.perf_counter()
                    fn()
                    samples[(k, mode)].append(time.perf_counter() - t0)
    for k in ks:
        out[f"{k}@{n}"] = {mode: statistics.median(samples[(k, mode)]) for mode in ("quiet", "busy")}
spin.kill()
print(json.dumps({"threading": fastopt._core.build_info()["threading"], "times": out}))
"""


def run_setting(setting, sizes, blocks, reps, only=()):
    env = dict(os.environ, FASTOPT_REUSE_OPENMP=setting)
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(sizes), str(blocks), str(reps),
                        json.dumps(list(only))],
                       env=env, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"# FASTOPT_REUSE_OPENMP={setting}: {json.dumps(out)}", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e7])
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--settings", nargs="+", default=["always", "1", "0"],
                    help="FASTOPT_REUSE_OPENMP values to compare (always: the team even when "
                         "late, as before issue 14; 1: the default; 0: fastopt's pool only)")
    ap.add_argument("--reps", type=int, default=50, help="calls per block at 10^5 (cap)")
    ap.add_argument("--kernels", nargs="*", default=[], help="only these (default: all)")
    ap.add_argument("--rounds", type=int, default=2, help="children per setting, alternating")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes]
    results = {s: [] for s in args.settings}
    for _ in range(args.rounds):
        for s in args.settings:
            results[s].append(run_setting(s, sizes, args.blocks, args.reps, args.kernels))
    keys = list(results[args.settings[0]][0]["times"])
    print(f"cpus={len(os.sched_getaffinity(0))}; torch imported and used before each sample; "
          f"busy = a spinning process on the last CPU; medians, us per call")
    for s in args.settings:
        print(f"  FASTOPT_REUSE_OPENMP={s}: {results[s][0]['threading']}")
    head = "".join(f"  REUSE={s} quiet   busy  ratio" for s in args.settings)
    print(f"{'kernel@n':>20}{head}")
    for k in keys:
        row = f"{k:>20}"
        for s in args.settings:
            q = sorted(r["times"][k]["quiet"] for r in results[s])[len(results[s]) // 2]
            b = sorted(r["times"][k]["busy"] for r in results[s])[len(results[s]) // 2]
            row += f"  {q * 1e6:12.1f} {b * 1e6:7.1f} {b / q:6.2f}"
        print(row)


if __name__ == "__main__":
    main()
