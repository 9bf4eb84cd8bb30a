"""numba / numpy-plain per cell (median and min) from a fastopt bench --json file.
python benchmarks/runs/2026-12-01/meas/numba_vs_plain_table.py FILE.json"""
import json
import sys
from collections import defaultdict

cells = defaultdict(dict)
for r in json.load(open(sys.argv[1]))["results"]:
    cells[(r["kernel"], r["dtype"], r["n"])][r["runner"]] = r
print(f"{'kernel':14} {'dtype':8} {'n':>8} {'numba med':>10} {'plain med':>10} {'ratio':>6}"
      f" {'numba min':>10} {'plain min':>10} {'ratio':>6}")
for (k, dt, n), c in cells.items():
    if "numba" not in c or "numpy-plain" not in c:
        continue
    a, b = c["numba"], c["numpy-plain"]
    print(f"{k:14} {dt:8} {n:8.0e} {a['median_s']*1e6:9.1f}u {b['median_s']*1e6:9.1f}u "
          f"{a['median_s']/b['median_s']:6.2f} {a['min_s']*1e6:9.1f}u {b['min_s']*1e6:9.1f}u "
          f"{a['min_s']/b['min_s']:6.2f}")
