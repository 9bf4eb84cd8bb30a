"""Batch norm fwd+bwd (training, float32, cpp backend): two builds side by side.

Each build runs in its own worker process (PYTHONPATH = that checkout); the
parent interleaves them, round by round, so both see the same machine load.
A sample is the median of `--reps` calls of forward then backward; the table
shows the median over rounds and the after/before ratio.

    python benchmarks/runs/2026-12-01/bn_before_after.py BEFORE_DIR AFTER_DIR [--rounds 9] [--threads N]

--threads N sets fastopt's thread count in both workers (default: the library's).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SHAPES = [(256, 1024), (32, 64, 32, 32)]
REPS = {(256, 1024): 200, (32, 64, 32, 32): 20}


def worker(threads):
    import numpy as np
    import fastopt
    if threads:
        fastopt._core.set_num_threads(threads)
    rng = np.random.default_rng(0)
    data = {}
    for shape in SHAPES:
        C = shape[1]
        x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
        data[shape] = (x, dy, g, b, np.zeros(C, np.float32), np.ones(C, np.float32))
    print(json.dumps({"core": fastopt._core.__file__}), flush=True)
    for line in sys.stdin:
        shape = tuple(json.loads(line))
        x, dy, g, b, rm, rv = data[shape]
        times = []
        for _ in range(REPS[shape]):
            t0 = time.perf_counter()
            y, sm, si = fastopt.batch_norm_forward(x, g, b, rm, rv, training=True, backend="cpp")
            fastopt.batch_norm_backward(dy, x, g, sm, si, training=True, backend="cpp")
            times.append(time.perf_counter() - t0)
        print(json.dumps(statistics.median(times)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    procs = {}
    for label, path in (("before", a.before), ("after", a.after)):
        env = dict(os.environ, PYTHONPATH=os.path.abspath(path))
        p = subprocess.Popen([sys.executable, __file__, "--worker", str(a.threads)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env, cwd="/")
        print(label, p.stdout.readline().strip())
        procs[label] = p
    res = {(lab, s): [] for lab in procs for s in SHAPES}
    for r in range(a.rounds):
        for shape in SHAPES:
            order = list(procs) if r % 2 == 0 else list(procs)[::-1]
            for lab in order:
                p = procs[lab]
                p.stdin.write(json.dumps(shape) + "\n")
                p.stdin.flush()
                res[(lab, shape)].append(json.loads(p.stdout.readline()))
    for p in procs.values():
        p.stdin.close()
        p.wait()
    print(f"{'shape':>18} {'before us':>10} {'after us':>10} {'after/before':>12}")
    for shape in SHAPES:
        b = statistics.median(res[("before", shape)]) * 1e6
        f = statistics.median(res[("after", shape)]) * 1e6
        print(f"{str(shape):>18} {b:10.1f} {f:10.1f} {f / b:12.3f}")
    print("raw (us):", json.dumps({f"{lab} {s}": [round(t * 1e6, 1) for t in v]
                                   for (lab, s), v in res.items()}))


if __name__ == "__main__":
    worker(int(sys.argv[2])) if sys.argv[1:2] == ["--worker"] else main()
