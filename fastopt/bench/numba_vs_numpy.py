"""The numba fallback against plain NumPy, per size: the whole public call
(``fastopt.adam_step(..., backend="numba")`` and so on, validation included)
against the lecture-notes NumPy baseline and NumPy with ``out=`` of the same
kernel, interleaved, medians.

    PYTHONPATH=. python -m fastopt.bench.numba_vs_numpy [--sizes 10,1e3,1e5] [--clock cpu]

``--clock cpu`` times with ``time.process_time`` (CPU time of the whole
process): a descheduled process accrues none, so it holds on a loaded
machine where wall-clock medians do not; it adds the CPU time of every
thread, so it overstates the parallel builds (numba at or above
``_serial.SERIAL_BELOW`` elements). The default is wall-clock time.
"""
from __future__ import annotations

import argparse
import gc
import json
import time
from typing import List, Sequence

import numpy as np

from fastopt.bench import kernels as K
from fastopt.bench.timer import interleaved

SIZES = (10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
KERNELS = tuple(K.KERNELS)   # every kernel of the registry
RUNNERS = ("numba", "numpy-plain", "numpy-out")


def run(kernels: Sequence[str] = KERNELS, sizes: Sequence[int] = SIZES, dtype="float32", *,
        repeat: int = 9, min_time: float = 0.005, clock: str = "wall") -> List[dict]:
    """One row per (kernel, size): each runner's median seconds per call and the
    ratios numba / numpy-plain and numba / numpy-out (below 1: numba is faster)."""
    timer = time.process_time if clock == "cpu" else time.perf_counter
    rows = []
    for name in kernels:
        k = K.get(name)
        for n in sizes:
            arrays = k.setup(n, np.dtype(dtype), np.random.default_rng([0, n]))
            variants = {}
            for r in RUNNERS:
                if r in k.runner_names() and k.unavailable(r) is None:
                    fn = k.make(r, arrays, "cached")
                    fn()
                    variants[r] = fn
            t = interleaved(variants, repeat=repeat, min_time=min_time, clock=timer)
            row = {"kernel": name, "size": n, "dtype": dtype, "clock": clock,
                   **{f"{r}_s": t[r].median for r in t}}
            nb = row.get("numba_s")
            for base in ("numpy-plain", "numpy-out"):
                b = row.get(f"{base}_s")
                row[f"numba/{base}"] = nb / b if nb and b else None
            rows.append(row)
            del arrays, variants
            gc.collect()
    return rows


def _size(n: int) -> str:
    e = len(str(n)) - 1
    return f"1e{e}" if n == 10 ** e else str(n)


def format_table(rows: List[dict]) -> str:
    """Kernels down, sizes across: numba time / plain NumPy time."""
    sizes = sorted({r["size"] for r in rows})
    names = list(dict.fromkeys(r["kernel"] for r in rows))
    cell = {(r["kernel"], r["size"]): r for r in rows}
    out = []
    for base in ("numpy-plain", "numpy-out"):
        out.append(f"numba / {base} (whole call, {rows[0]['clock']} clock, medians; "
                   f"below 1: numba faster)")
        out.append(f"{'kernel':14s}" + "".join(f"{_size(s):>8s}" for s in sizes))
        for name in names:
            vals = [cell.get((name, s), {}).get(f"numba/{base}") for s in sizes]
            out.append(f"{name:14s}" + "".join(f"{v:8.2f}" if v else f"{'-':>8s}" for v in vals))
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernels", default=",".join(KERNELS))
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--min-time", type=float, default=0.005)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args(argv)
    rows = run(a.kernels.split(","), [int(float(s)) for s in a.sizes.split(",")], a.dtype,
               repeat=a.repeat, min_time=a.min_time, clock=a.clock)
    print(format_table(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
