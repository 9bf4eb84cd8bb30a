"""Issue 17: kernels against their twins, interleaved in one process (medians).

python benchmarks/runs/2026-12-01/perf/twins.py [--sizes 100000 10000000] [--repeat 21]
Prints, per kernel x size x dtype, the median time of each variant and the
kernel's ratio to its twin (twin_time / kernel_time: 1.00 = as fast as the twin).
Twin: fastopt._core.bench_twin as on branch perf (main 04d081e), plus the
dropout_twin_* of csrc/cpu/dropout_kernels.cpp. Outputs are preallocated for
every variant (the cached-output policy)."""
import argparse
import numpy as np
from fastopt import _core
from fastopt.bench.timer import interleaved

ap = argparse.ArgumentParser()
ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 10_000_000])
ap.add_argument("--repeat", type=int, default=21)
ap.add_argument("--kernels", nargs="+", default=["bwd", "fwd", "ema"])
a = ap.parse_args()
print(_core.build_info())
rng = np.random.default_rng(0)
p, seed = 0.3, 1234
t = round(p * 2**32)
for n in a.sizes:
    for dt in (np.float32, np.float64):
        x = rng.standard_normal(n).astype(dt)
        y = np.empty_like(x)
        m = np.empty((n + 7) // 8, np.uint8)
        scale = 1 / (1 - p)
        _core.dropout_forward(x, y, m, seed, t, scale)
        bits = np.empty(n, np.uint8)
        tmp = np.empty_like(x)
        cells = {}
        if "bwd" in a.kernels:
            def np_bwd():
                np.copyto(bits, np.unpackbits(m, count=n, bitorder="little"))
                np.multiply(x, bits, out=tmp)
                np.multiply(tmp, dt(scale), out=y)
            cells["dropout_backward"] = {
                "kernel": lambda: _core.dropout_backward(x, m, y, scale),
                "twin": lambda: _core.bench_twin([x], [], [y], mask_in=m),
                "twin_dropout": lambda: _core.dropout_twin_backward(x, m, y),
                "numpy_out": np_bwd}
        if "fwd" in a.kernels:
            cells["dropout_forward"] = {
                "kernel": lambda: _core.dropout_forward(x, y, m, seed, t, scale),
                "twin": lambda: _core.bench_twin([x], [], [y], mask_out=m),
                "twin_dropout": lambda: _core.dropout_twin_forward(x, y, m),
                "copy": lambda: _core.bench_twin([x], [], [y]),
                "mask_only": lambda: _core.dropout_mask(m, n, seed, t)}
        if "ema" in a.kernels:
            avg = rng.standard_normal(n).astype(dt)
            d = 0.999
            def np_ema():
                np.multiply(avg, dt(d), out=avg)
                np.multiply(x, dt(1 - d), out=tmp)
                np.add(avg, tmp, out=avg)
            cells["ema"] = {
                "kernel": lambda: _core.ema_update([avg], [x], d, 1 - d),
                "twin": lambda: _core.bench_twin([x], [avg], []),
                "numpy_out": np_ema}
        for name, variants in cells.items():
            r = interleaved(variants, repeat=a.repeat, min_time=0.02)
            k = r["kernel"].median
            parts = "  ".join(f"{v}={r[v].median*1e6:9.1f}us" for v in variants)
            ratio = "  ".join(f"{v}/kernel={r[v].median/k:5.2f}" for v in variants if v != "kernel")
            print(f"{name:17s} n={n:<9d} {np.dtype(dt).name:8s} {parts}  | {ratio}", flush=True)
