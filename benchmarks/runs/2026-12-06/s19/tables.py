"""numba / numpy-plain (and / numpy-out) per variant and round, from ab-*.json.
    python benchmarks/runs/2026-12-06/s19/tables.py [DIR]"""
import glob
import json
import os
import sys

d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(__file__)
runs = {}
for f in sorted(glob.glob(os.path.join(d, "ab-*-*.json"))):
    variant, r = os.path.basename(f)[3:-5].rsplit("-", 1)
    runs.setdefault(variant, {})[r] = json.load(open(f))
for base in ("numpy-plain", "numpy-out"):
    for dtype in ("float32", "float64"):
        print(f"\nnumba / {base}, {dtype}, rounds " + " / ".join(sorted(next(iter(runs.values())))))
        sizes = sorted({row["size"] for v in runs.values() for rs in v.values() for row in rs})
        print(f"{'kernel':14s} {'variant':8s}" + "".join(f"{s:>13d}" for s in sizes))
        kernels = dict.fromkeys(row["kernel"] for v in runs.values() for rs in v.values() for row in rs)
        for k in kernels:
            for variant in ("s19b", "s19bn", "main"):
                cells = []
                for s in sizes:
                    vals = [next((row[f"numba/{base}"] for row in rs if row["kernel"] == k
                                  and row["size"] == s and row["dtype"] == dtype), None)
                            for _, rs in sorted(runs.get(variant, {}).items())]
                    cells.append(" / ".join(f"{v:.2f}" if v else "-" for v in vals))
                print(f"{k:14s} {variant:8s}" + "".join(f"{c:>13s}" for c in cells))
