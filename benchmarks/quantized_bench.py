"""8-bit Adam (issue 16) at 10^7 float32 params, interleaved in one run:
fastopt 8-bit Adam (cpp) vs fastopt float32 Adam, torch.optim.Adam(fused=True),
torchao AdamW8bit and bitsandbytes Adam8bit (when they import), and the
same-traffic twin of the 8-bit step (fastopt._core.bench_twin).

    PYTHONPATH=. python benchmarks/quantized_bench.py [n] [repeat]
"""
import sys

import numpy as np
import torch

import fastopt
from fastopt import _core
from fastopt.bench.timer import interleaved

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10 ** 7
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 7
rng = np.random.default_rng(0)
p = rng.standard_normal(n).astype(np.float32)
g = (rng.standard_normal(n) * 1e-2).astype(np.float32)
m, v = fastopt.QuantizedState(p.shape, True), fastopt.QuantizedState(p.shape, False)
p32, m32, v32 = p.copy(), np.zeros_like(p), np.zeros_like(p)
state = {"t": 0}


def q8():
    state["t"] += 1
    fastopt.adam_step(p, g, m, v, step=state["t"], lr=1e-3, backend="cpp")


def f32():
    fastopt.adam_step(p32, g, m32, v32, step=state["t"] + 1, lr=1e-3, backend="cpp")


tp = torch.from_numpy(p.copy()).requires_grad_()
tp.grad = torch.from_numpy(g.copy())
fused = torch.optim.Adam([tp], lr=1e-3, fused=True)
variants = {"fastopt_8bit_adam": q8, "fastopt_fp32_adam": f32, "torch_adam_fused": fused.step}

# The twin moves the 8-bit step's 16 B/element (reads p 4, g 4, two codes 2;
# writes p 4, two codes 2) as float32 arrays of n/2 elements (the twin takes one
# size and float dtypes): 2 read-only (g's halves), 3 read-write (p's halves and
# one array the size of both codes).
h = n // 2
pb, gb, cb = p.copy(), g.copy(), np.zeros(h, np.float32)
variants["twin_16B"] = lambda: _core.bench_twin([gb[:h], gb[h:2 * h]], [pb[:h], pb[h:2 * h], cb], [])

notes = []
try:
    from torchao.optim import AdamW8bit
    ta = torch.from_numpy(p.copy()).requires_grad_()
    ta.grad = torch.from_numpy(g.copy())
    ao = AdamW8bit([ta], lr=1e-3, weight_decay=0.0)
    ao.step()
    variants["torchao_adamw8bit"] = ao.step
except Exception as exc:  # noqa: BLE001 - reported, not hidden
    notes.append(f"torchao AdamW8bit: {type(exc).__name__}: {exc}")
try:
    import bitsandbytes as bnb
    tb = torch.nn.Parameter(torch.from_numpy(p.copy()))
    tb.grad = torch.from_numpy(g.copy())
    bo = bnb.optim.Adam8bit([tb], lr=1e-3)
    bo.step()
    variants["bnb_adam8bit"] = bo.step
except Exception as exc:  # noqa: BLE001
    notes.append(f"bitsandbytes Adam8bit: {type(exc).__name__}: {exc}")

print(f"n={n} repeat={repeat} torch={torch.__version__} ")
res = interleaved(variants, repeat=repeat, min_time=0.05, gap=0.05)
base = res["fastopt_8bit_adam"].median
for name, t in res.items():
    print(f"{name:22s} median {t.median * 1e3:8.3f} ms  min {t.min * 1e3:8.3f} ms  "
          f"8bit speedup vs this {t.median / base:6.2f}x")
print(f"8-bit vs twin: {res['twin_16B'].median / base * 100:.1f}% of the twin's speed")
print(f"state bytes/element: 8-bit {(m.nbytes + v.nbytes) / n:.4f}, fp32 {(m32.nbytes + v32.nbytes) / n:.1f}")
for note in notes:
    print("not run:", note)
