"""8-bit Adam (docs/quantized-state.md) at 10^7 float32 parameters, side by side.

Variants, timed interleaved (timer.py), medians of one window:

  8bit        fastopt.adam_step with QuantizedState exp_avg / exp_avg_sq (cpp)
  8bit-numba  the same on the numba backend (``--numba``; compiles first)
  fp32        fastopt.adam_step with float32 state (cpp): 28 B per element
  twin        the same-traffic twin of ``8bit``: 16 B per element (read grad 4,
              read and write param 4 + 4, two codes 1 + 1 each) as float32
              arrays of n/2 elements: two read (grad's halves), three read and
              written (param's halves, one array the size of both codes); the
              absmax arrays (8 B per 256 elements, 0.2%) are not in it
  torch       torch.optim.Adam(fused=True).step() (float32 state)
  torchao     torchao.optim.AdamW8bit(weight_decay=0).step() (torch.compile), when
              it imports
  bnb         bitsandbytes.optim.Adam8bit.step(), when it imports

``fastopt bench 8bit`` prints the table; torch variants need torch; ``--no-anchors``
leaves out torchao and bitsandbytes (torchao compiles for minutes on a busy machine).
"""
from __future__ import annotations

import numpy as np

import fastopt
from fastopt.bench.registry import torch_unavailable
from fastopt.bench.timer import interleaved

LR = 1e-3


def _torch_optimizers(p, g, notes, anchors):
    """torch's fused Adam and, when they import, torchao's and bitsandbytes' 8-bit Adam."""
    import torch
    out = {}

    def param():
        t = torch.nn.Parameter(torch.from_numpy(p.copy()))
        t.grad = torch.from_numpy(g.copy())
        return t
    makers = {"torch": lambda: torch.optim.Adam([param()], lr=LR, fused=True)}

    def torchao():
        from torchao.optim import AdamW8bit
        return AdamW8bit([param()], lr=LR, weight_decay=0.0)

    def bnb():
        import bitsandbytes
        return bitsandbytes.optim.Adam8bit([param()], lr=LR)
    if anchors:
        makers.update(torchao=torchao, bnb=bnb)
    for name, make in makers.items():
        try:
            opt = make()
            opt.step()   # state exists (torch: zeros, then random values below)
            out[name] = opt.step
        except Exception as exc:  # noqa: BLE001 - optional baselines: said, not hidden
            notes.append(f"{name} not run: {type(exc).__name__}: {exc}")
    if "torch" in out:
        st = next(iter(out["torch"].__self__.state.values()))
        st["exp_avg"].copy_(torch.from_numpy(g * 0.1))
        st["exp_avg_sq"].copy_(torch.from_numpy(g * g * 0.01))
    return out


def variants(n: int = 10_000_000, numba: bool = False, seed: int = 0, anchors: bool = True):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32) * np.float32(1e-2)
    m, v = fastopt.quantize(g * 0.1, signed=True), fastopt.quantize(g * g * 0.01, signed=False)
    p8 = p.copy()
    p32, m32, v32 = p.copy(), g * np.float32(0.1), g * g * np.float32(0.01)
    out, notes = {}, []
    out["8bit"] = lambda: fastopt.adam_step(p8, g, m, v, step=10, lr=LR, backend="cpp")
    if numba:
        pn, mn, vn = p.copy(), fastopt.quantize(g * 0.1, True), fastopt.quantize(g * g * 0.01, False)
        out["8bit-numba"] = lambda: fastopt.adam_step(pn, g, mn, vn, step=10, lr=LR,
                                                      backend="numba")
    out["fp32"] = lambda: fastopt.adam_step(p32, g, m32, v32, step=10, lr=LR, backend="cpp")
    from fastopt import _core
    h = n // 2
    gb, pb, cb = g[:2 * h].copy(), p[:2 * h].copy(), rng.standard_normal(h, dtype=np.float32)
    out["twin"] = lambda: _core.bench_twin([gb[:h], gb[h:]], [pb[:h], pb[h:], cb], [])
    if torch_unavailable() is None:
        out.update(_torch_optimizers(p, g, notes, anchors))
    else:
        notes.append(torch_unavailable())
    state_bytes = (m.nbytes + v.nbytes) / n
    return out, notes, state_bytes


def run(n: int = 10_000_000, repeat: int = 11, min_time: float = 0.05,
        numba: bool = False, anchors: bool = True) -> dict:
    fns, notes, state_bytes = variants(n, numba, anchors=anchors)
    res = interleaved(fns, repeat=repeat, min_time=min_time, gap=0.02)
    return {"n": n, "repeat": repeat, "notes": notes, "state_bytes_per_element": state_bytes,
            "median_s": {k: t.median for k, t in res.items()},
            "min_s": {k: t.min for k, t in res.items()},
            "samples_s": {k: list(t.samples) for k, t in res.items()}}


def format_report(r: dict) -> str:
    med = r["median_s"]
    base = med["8bit"]
    lines = [f"8-bit Adam, n={r['n']}, {r['repeat']} interleaved rounds (medians)",
             f"{'variant':12s} {'median ms':>10s} {'min ms':>9s} {'8bit is x faster':>17s}"]
    for k, t in med.items():
        lines.append(f"{k:12s} {t * 1e3:10.3f} {r['min_s'][k] * 1e3:9.3f} {t / base:17.2f}")
    lines.append(f"8bit at {med['twin'] / base * 100:.1f}% of its same-traffic twin (16 B/element)")
    lines.append(f"state bytes per element: 8bit {r['state_bytes_per_element']:.4f}, fp32 8.0")
    lines += r["notes"]
    return "\n".join(lines)
