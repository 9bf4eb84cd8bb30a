"""Adam in mixed precision (issue 18) at 10^7 elements: fastopt's cpp kernels in
three storage modes against their same-traffic twins and torch.

Modes and the bytes each moves per element:

  bf16         param, grad, exp_avg, exp_avg_sq all bfloat16 (grad read; the
               rest read and written): 14 B
  bf16-f32st   bfloat16 param/grad, float32 states: 22 B
  master       float32 master, exp_avg, exp_avg_sq (read and written),
               bfloat16 grad (read) and param (written from the master): 28 B

Variants, timed interleaved (timer.py), medians:

  <mode>             fastopt's kernel (the cpp backend module, no validation)
  <mode>-twin        the same-traffic twin (csrc/bench/twin_mixed.cpp)
  bf16-torch         torch.optim.Adam(fused=True).step() on bfloat16 tensors
                     (states bfloat16, torch's default)
  master-torch-copy  torch.optim.Adam(fused=True) on float32 params, then
                     param_bf16.copy_(param_f32): the step plus a second pass
  master-fo-copy     fastopt's float32 Adam, then the same copy_

``fastopt bench mixed-precision`` prints the table; torch variants need torch.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from fastopt.bench import suite
from fastopt.bench.registry import torch_unavailable
from fastopt.bench.timer import interleaved

BF16 = np.dtype(ml_dtypes.bfloat16)
BYTES = {"bf16": 14, "bf16-f32st": 22, "master": 28}
LR, STEP = 1e-4, 10
ADAM = dict(step=STEP, lr=LR, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
            decoupled=False, maximize=False)


def _arrays(rng, n, state_dtype):
    g = rng.standard_normal(n, dtype=np.float32)
    return {"param": rng.standard_normal(n, dtype=np.float32).astype(BF16),
            "grad": g.astype(BF16),
            "exp_avg": (g * np.float32(0.1)).astype(state_dtype),
            "exp_avg_sq": (g * g * np.float32(0.01)).astype(state_dtype),
            "master": rng.standard_normal(n, dtype=np.float32)}


def _u16(a):
    return a.view(np.uint16)


def variants(n: int = 10_000_000, seed: int = 0) -> dict:
    from fastopt import _core
    from fastopt.backends.cpp import optim as cpp

    rng = np.random.default_rng(seed)
    pure, f32st, master = (_arrays(rng, n, BF16), _arrays(rng, n, np.float32),
                           _arrays(rng, n, np.float32))

    def step(a, masters=None):
        return lambda: cpp.adam([a["param"]], [a["grad"]], [a["exp_avg"]], [a["exp_avg_sq"]],
                                None, masters=masters, **ADAM)

    out = {"bf16": step(pure),
           "bf16-twin": lambda: _core.bench_twin_mixed(
               [_u16(pure["grad"])], [_u16(pure[k]) for k in ("param", "exp_avg", "exp_avg_sq")],
               [], [], [], []),
           "bf16-f32st": step(f32st),
           "bf16-f32st-twin": lambda: _core.bench_twin_mixed(
               [_u16(f32st["grad"])], [_u16(f32st["param"])], [], [],
               [f32st["exp_avg"], f32st["exp_avg_sq"]], []),
           "master": step(master, [master["master"]]),
           "master-twin": lambda: _core.bench_twin_mixed(
               [_u16(master["grad"])], [], [_u16(master["param"])], [],
               [master["master"], master["exp_avg"], master["exp_avg_sq"]], [])}
    if torch_unavailable() is None:
        out.update(_torch_variants(rng, n))
    return out


def _torch_variants(rng, n):
    import torch

    import fastopt

    def adam(dtype):
        p = torch.from_numpy(rng.standard_normal(n, dtype=np.float32)).to(dtype)
        p.requires_grad_(True)
        p.grad = torch.from_numpy(rng.standard_normal(n, dtype=np.float32)).to(dtype)
        opt = torch.optim.Adam([p], lr=LR, fused=True)
        opt.step()  # creates the states, then give them realistic values
        opt.state[p]["exp_avg"].copy_(p.grad * 0.1)
        opt.state[p]["exp_avg_sq"].copy_(p.grad * p.grad * 0.01)
        return p, opt

    _, bf = adam(torch.bfloat16)
    p32, f32 = adam(torch.float32)
    p16 = torch.empty(n, dtype=torch.bfloat16)

    def torch_copy():
        f32.step()
        p16.copy_(p32.detach())

    a = {k: rng.standard_normal(n, dtype=np.float32) for k in ("param", "grad", "exp_avg")}
    a["exp_avg_sq"] = np.abs(a["exp_avg"]) * np.float32(0.01)
    q16 = torch.empty(n, dtype=torch.bfloat16)
    q32 = torch.from_numpy(a["param"])

    def fo_copy():
        fastopt.adam_step(a["param"], a["grad"], a["exp_avg"], a["exp_avg_sq"], step=STEP, lr=LR,
                          backend="cpp")
        q16.copy_(q32)

    return {"bf16-torch": bf.step, "master-torch-copy": torch_copy, "master-fo-copy": fo_copy}


def run(n: int = 10_000_000, repeat: int = 15, min_time: float = 0.05) -> dict:
    v = variants(n)
    gap = suite.TORCH_GAP if "bf16-torch" in v else 0.0
    t = interleaved(v, repeat=repeat, min_time=min_time, gap=gap)
    return {"n": n, "repeat": repeat, "min_time_s": min_time, "gap_s": gap,
            "environment": suite.environment(), "results": {k: x.as_dict() for k, x in t.items()}}


def format_report(r: dict) -> str:
    env = r["environment"]
    med = {k: v["median_s"] for k, v in r["results"].items()}
    lines = [f"fastopt {env['fastopt']} on {env.get('cpu', '?')}, {env['cpus']} CPUs; cpp "
             f"{env.get('cpp', {}).get('isa')}, torch {env.get('torch', 'not installed')}",
             f"Adam, {r['n']} elements; medians of {r['repeat']} interleaved samples >= "
             f"{r['min_time_s'] * 1e3:g} ms", "",
             f"{'variant':18s} {'median':>9s} {'GB/s':>6s}  comparison"]
    for k, t in med.items():
        mode = k.split("-twin")[0] if k.endswith("-twin") else k
        gbps = f"{BYTES[mode] * r['n'] / t / 1e9:6.1f}" if mode in BYTES else f"{'-':>6s}"
        note = ""
        if k in BYTES and f"{k}-twin" in med:
            note = f"{100 * med[f'{k}-twin'] / t:.0f}% of twin"
        if k == "bf16" and "bf16-torch" in med:
            note += f", {med['bf16-torch'] / t:.2f}x faster than torch fused bf16"
        if k == "master":
            for b in ("master-torch-copy", "master-fo-copy"):
                if b in med:
                    note += f", {med[b] / t:.2f}x faster than {b}"
        lines.append(f"{k:18s} {t * 1e3:7.2f}ms {gbps}  {note.lstrip(', ')}")
    return "\n".join(lines)
