"""The numba fallback against NumPy, per size and dtype: the whole public call
(``fastopt.adam_step(..., backend="numba")`` and so on, validation included)
against the lecture-notes NumPy baseline (``numpy-plain``), NumPy with ``out=``
of the same kernel (``numpy-out``) and fastopt's own ``backend="numpy"`` of the
same call (``numpy``), interleaved, medians.

    PYTHONPATH=. python -m fastopt.bench.numba_vs_numpy [--sizes 1,10,1e3] \
        [--dtype float32,float64] [--clock cpu] [--json FILE]

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

SIZES = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
KERNELS = tuple(K.KERNELS)   # every kernel of the registry
BASES = ("numpy-plain", "numpy-out", "numpy")
RUNNERS = ("numba",) + BASES


def run(kernels: Sequence[str] = KERNELS, sizes: Sequence[int] = SIZES,
        dtypes: Sequence[str] = ("float32",), *, repeat: int = 9, min_time: float = 0.005,
        clock: str = "wall") -> List[dict]:
    """One row per (kernel, size, dtype): each runner's median seconds per call and
    the ratios numba / each base (below 1: numba is faster)."""
    timer = time.process_time if clock == "cpu" else time.perf_counter
    rows = []
    for name in kernels:
        k = K.get(name)
        for dtype in dtypes:
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
                for base in BASES:
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
    """Per dtype and base: kernels down, sizes across, numba time / base time."""
    sizes = sorted({r["size"] for r in rows})
    names = list(dict.fromkeys(r["kernel"] for r in rows))
    cell = {(r["kernel"], r["dtype"], r["size"]): r for r in rows}
    out = []
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        for base in BASES:
            out.append(f"numba / {base}, {dtype} (whole call, {rows[0]['clock']} clock, "
                       f"medians; below 1: numba faster)")
            out.append(f"{'kernel':14s}" + "".join(f"{_size(s):>8s}" for s in sizes))
            for name in names:
                vals = [cell.get((name, dtype, s), {}).get(f"numba/{base}") for s in sizes]
                out.append(f"{name:14s}" + "".join(f"{v:8.2f}" if v else f"{'-':>8s}"
                                                   for v in vals))
            out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernels", default=",".join(KERNELS))
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--dtype", default="float32", help="one dtype or several, comma-separated")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--min-time", type=float, default=0.005)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args(argv)
    rows = run(a.kernels.split(","), [int(float(s)) for s in a.sizes.split(",")],
               a.dtype.split(","), repeat=a.repeat, min_time=a.min_time, clock=a.clock)
    print(format_table(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
