"""Ratio tables of this session's numba A/B runs (rounds side by side)."""
import json, sys, glob
def load(pattern):
    rows = {}
    for f in sorted(glob.glob(pattern)):
        for r in json.load(open(f)):
            rows.setdefault((r["kernel"], r["dtype"], r["size"]), []).append(r)
    return rows
def table(kernel, dtype, base, variants):
    sizes = sorted({k[2] for v in variants.values() for k in v if k[0] == kernel and k[1] == dtype})
    print(f"\nnumba / {base}, {kernel}, {dtype} (rounds separated by /)")
    print("| variant | " + " | ".join(f"{s:g}" for s in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, rows in variants.items():
        cells = [" / ".join(f"{r[f'numba/{base}']:.2f}" for r in rows.get((kernel, dtype, s), []))
                 for s in sizes]
        print(f"| {name} | " + " | ".join(cells) + " |")
if __name__ == "__main__":
    kind = sys.argv[1]   # sgd or dropbwd
    if kind == "sgd":
        v = {"before, old bench": load("sgd-before-oldbench-[23].json"),
             "before, partial bench": load("sgd-before-[23].json"),
             "after": load("sgd-after-[23].json")}
        kernels = ("sgd", "sgd-momentum")
    else:
        v = {"before": load("dropbwd-before-*.json"), "after": load("dropbwd-after-*.json")}
        kernels = ("drop-backward",)
    for k in kernels:
        for d in ("float32", "float64"):
            for base in ("numpy-plain", "numpy-out"):
                table(k, d, base, v)
