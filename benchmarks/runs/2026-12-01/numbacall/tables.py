"""Markdown tables of numba / base per kernel and size, "after (before)", from the
JSON files of fastopt.bench.numba_vs_numpy; later files override earlier ones' cells.

    python benchmarks/runs/2026-12-01/numbacall/tables.py before.json after.json [after2.json ...]
"""
import json
import sys


def load(paths):
    cells = {}
    for p in paths:
        for r in json.load(open(p)):
            cells[(r["kernel"], r["dtype"], r["size"])] = r
    return cells


def main():
    before, after = load(sys.argv[1:2]), load(sys.argv[2:])
    sizes = sorted({k[2] for k in after})
    kernels = list(dict.fromkeys(k[0] for k in after))
    for dtype in dict.fromkeys(k[1] for k in after):
        for base in ("numpy-plain", "numpy-out", "numpy"):
            print(f"\nnumba / {base}, {dtype}: after (before); above 1.00 in bold\n")
            print("| kernel | " + " | ".join(f"{s:g}" for s in sizes) + " |")
            print("|---" * (len(sizes) + 1) + "|")
            for k in kernels:
                row = []
                for s in sizes:
                    a = after.get((k, dtype, s), {}).get(f"numba/{base}")
                    b = before.get((k, dtype, s), {}).get(f"numba/{base}")
                    if a is None:
                        row.append("-")
                        continue
                    text = f"{a:.2f}"
                    text = f"**{text}**" if a > 1.0 else text
                    row.append(text + (f" ({b:.2f})" if b is not None else ""))
                print(f"| {k} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
