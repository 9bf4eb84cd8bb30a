"""One Adam step over 200 parameters of mixed sizes (10^7 float32 elements in
all): fastopt's class, its list-form function and its torch drop-in against
torch's fused Adam, beside the single-array kernel and its twin.

Variants, timed interleaved (timer.py), medians of one window:

  single       fastopt.adam_step on one array of all the elements (the kernel floor)
  fastopt      fastopt.Adam(params).step(grads) over the 200 arrays
  functional   fastopt.adam_step(lists of 200 arrays) (one list-form call)
  dropin       fastopt.torch.Adam(params).step() on 200 torch tensors
  torch-fused  torch.optim.Adam(params, fused=True).step() on 200 tensors
  torch-raw    torch._fused_adam_ on the 200 tensors (no step() wrapper)
  twin         the same-traffic twin of ``single`` (read grad; read and
               write param, exp_avg, exp_avg_sq: 28 B per element)

``fastopt bench multi-tensor`` prints the table; torch variants need torch.
"""
from __future__ import annotations

import numpy as np

import fastopt
from fastopt.bench import suite
from fastopt.bench.registry import Traffic, torch_unavailable
from fastopt.bench.timer import interleaved
from fastopt.bench.twin import make_twin

BYTES_PER_ELEMENT = 28  # Adam, float32
LR = 1e-4


def sizes_200(total: int, rng) -> list:
    """200 mixed sizes (a few large matrices, many biases and small layers) summing to total."""
    raw = np.concatenate([rng.integers(10, 1000, 120), rng.integers(1000, 100_000, 60),
                          rng.integers(100_000, 1_000_000, 20)]).astype(np.float64)
    sizes = np.maximum(1, (raw / raw.sum() * total).astype(np.int64))
    sizes[-1] += total - sizes.sum()
    rng.shuffle(sizes)
    return [int(s) for s in sizes]


def _states(rng, n):
    return (rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32),
            rng.standard_normal(n, dtype=np.float32) * 0.01,
            np.abs(rng.standard_normal(n, dtype=np.float32)) * 0.01)


def _torch_states(opt, params, rng):
    import torch
    for t in params:
        st = opt.state[t]
        st["exp_avg"].copy_(torch.from_numpy(rng.standard_normal(t.numel(), dtype=np.float32)
                                             * 0.01))
        st["exp_avg_sq"].copy_(torch.from_numpy(
            np.abs(rng.standard_normal(t.numel(), dtype=np.float32)) * 0.01))


def variants(total: int = 10_000_000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    sizes = sizes_200(total, rng)
    single = _states(rng, total)
    lists = list(zip(*(_states(rng, n) for n in sizes)))
    cls_p = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    cls_g = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    opt = fastopt.Adam(cls_p, lr=LR)
    opt.step(cls_g)
    for st in opt.state:
        st["exp_avg"][...] = rng.standard_normal(st["exp_avg"].size, dtype=np.float32) * 0.01
        st["exp_avg_sq"][...] = np.abs(rng.standard_normal(st["exp_avg"].size,
                                                           dtype=np.float32)) * 0.01
    step = [3]

    def v_single():
        fastopt.adam_step(*single, step=step[0], lr=LR)

    def v_functional():
        fastopt.adam_step(*(list(x) for x in lists), step=step[0], lr=LR)

    tw = dict(zip(("param", "grad", "exp_avg", "exp_avg_sq"), _states(rng, total)))
    out = {"single": v_single, "fastopt": lambda: opt.step(cls_g), "functional": v_functional,
           "twin": make_twin((Traffic(("grad",), ("param", "exp_avg", "exp_avg_sq")),), tw)}
    if torch_unavailable() is None:
        import torch
        import fastopt.torch as ft

        def params():
            ps = [torch.from_numpy(rng.standard_normal(n, dtype=np.float32)).requires_grad_()
                  for n in sizes]
            for t in ps:
                t.grad = torch.from_numpy(rng.standard_normal(t.numel(), dtype=np.float32))
            return ps
        dp, tp = params(), params()
        dopt, topt = ft.Adam(dp, lr=LR), torch.optim.Adam(tp, lr=LR, fused=True)
        dopt.step()
        topt.step()
        _torch_states(dopt, dp, rng)
        _torch_states(topt, tp, rng)
        raw = [[torch.from_numpy(a) for a in x] for x in _list_copy(lists)]
        rsteps = [torch.tensor(2.0) for _ in sizes]
        out["dropin"] = dopt.step
        out["torch-fused"] = topt.step
        out["torch-raw"] = lambda: torch._fused_adam_(
            raw[0], raw[1], raw[2], raw[3], [], rsteps, lr=LR, beta1=0.9, beta2=0.999,
            weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)
    return {"sizes": sizes, "total": total, "variants": out}


def _list_copy(lists):
    return [[a.copy() for a in x] for x in lists]


def run(total: int = 10_000_000, repeat: int = 15, min_time: float = 0.02) -> dict:
    v = variants(total)
    gap = suite.TORCH_GAP if "torch-fused" in v["variants"] else 0.0
    t = interleaved(v["variants"], repeat=repeat, min_time=min_time, gap=gap)
    return {"total": total, "tensors": len(v["sizes"]), "min_size": min(v["sizes"]),
            "max_size": max(v["sizes"]), "repeat": repeat, "min_time_s": min_time,
            "gap_s": gap, "environment": suite.environment(),
            "results": {k: x.as_dict() for k, x in t.items()}}


def format_report(r: dict) -> str:
    env = r["environment"]
    res = {k: v["median_s"] for k, v in r["results"].items()}
    lines = [f"fastopt {env['fastopt']} on {env.get('cpu', '?')}, {env['cpus']} CPUs; cpp "
             f"{env.get('cpp', {}).get('isa')}, torch {env.get('torch', 'not installed')}",
             f"Adam float32, {r['tensors']} tensors ({r['min_size']}..{r['max_size']} elements), "
             f"{r['total']} in all; medians of {r['repeat']} interleaved samples >= "
             f"{r['min_time_s'] * 1e3:g} ms",
             "", f"{'variant':12s} {'median':>9s} {'GB/s':>6s} {'x single':>8s} {'%twin':>6s}"
             f" {'x torch-fused':>13s}"]
    for k, t in res.items():
        xt = f"{res['torch-fused'] / t:13.2f}" if "torch-fused" in res else f"{'-':>13s}"
        lines.append(f"{k:12s} {t * 1e3:7.2f}ms {BYTES_PER_ELEMENT * r['total'] / t / 1e9:6.1f} "
                     f"{t / res['single']:8.2f} {100 * res['twin'] / t:5.0f}% {xt}")
    return "\n".join(lines)
