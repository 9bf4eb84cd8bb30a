"""One Adam step over 200 parameters of mixed sizes (10^7 fp32 elements in all).

Variants, timed round-robin in one process (BENCHMARKING.md s.1), medians of
the same window:

  single      fastopt.adam_step on one 10^7-element array (the kernel floor)
  fastopt     fastopt.Adam(params).step(grads) over the 200 arrays
  functional  fastopt.adam_step(list of 200 ...) (one list-form call, no class)
  torch_fused torch.optim.Adam(params, fused=True).step() on the same 200 tensors
  torch_raw   torch._fused_adam_ on the 200 tensors (no step() wrapper)
  dropin      fastopt.torch.Adam(params).step() on 200 torch tensors (the drop-in)
  twin        same-traffic twin of the single call: p += g; m += g; v += g fused
              in one numba prange loop over 10^7 elements (28 B/element)

Targets: fastopt <= 1.25 x single, fastopt < torch_fused.

    PYTHONPATH=. python benchmarks/bench_optimizers.py [--rounds 15] [--repeat 2] [--torch-threads 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

# numba's default "omp" threading layer would put a second OpenMP runtime next to
# torch's (BENCHMARKING.md, pitfalls): the twin uses numba's workqueue layer.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

import numpy as np
import torch

import fastopt


def sizes_200(total, rng):
    """200 mixed sizes (a few large matrices, many biases and small layers) summing to total."""
    raw = np.concatenate([rng.integers(10, 1000, 120), rng.integers(1000, 100_000, 60),
                          rng.integers(100_000, 1_000_000, 20)]).astype(np.float64)
    sizes = np.maximum(1, (raw / raw.sum() * total).astype(np.int64))
    sizes[-1] += total - sizes.sum()
    rng.shuffle(sizes)
    return [int(s) for s in sizes]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=2, help="calls per sample")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="torch.set_num_threads (0: torch's default)")
    a = ap.parse_args()
    if a.torch_threads:
        torch.set_num_threads(a.torch_threads)
    rng = np.random.default_rng(0)
    sizes = sizes_200(a.total, rng)
    f32 = np.float32

    def rand(n):
        return rng.standard_normal(n).astype(f32)

    # fastopt class over 200 arrays
    ps = [rand(n) for n in sizes]
    gs = [rand(n) * 0.1 for n in sizes]
    opt = fastopt.Adam(ps, lr=1e-4)
    opt.step(gs)
    for st in opt.state:
        st["exp_avg"][...] = rand(st["exp_avg"].size) * 0.01
        st["exp_avg_sq"][...] = np.abs(rand(st["exp_avg"].size)) * 0.01
    # functional list form
    fp = [rand(n) for n in sizes]
    fg = [rand(n) * 0.1 for n in sizes]
    fm = [rand(n) * 0.01 for n in sizes]
    fv = [np.abs(rand(n)) * 0.01 for n in sizes]
    # single array
    sp, sg, sm, sv = rand(a.total), rand(a.total) * 0.1, rand(a.total) * 0.01, np.abs(rand(a.total)) * 0.01
    # torch fused
    tp = [torch.from_numpy(rand(n)).requires_grad_() for n in sizes]
    for t in tp:
        t.grad = torch.from_numpy(rand(t.numel()) * 0.1)
    topt = torch.optim.Adam(tp, lr=1e-4, fused=True)
    topt.step()
    for t in tp:
        st = topt.state[t]
        st["exp_avg"].copy_(torch.from_numpy(rand(t.numel()) * 0.01))
        st["exp_avg_sq"].copy_(torch.from_numpy(np.abs(rand(t.numel())) * 0.01))
    # fastopt.torch drop-in
    import fastopt.torch as ft
    dp = [torch.from_numpy(rand(n)).requires_grad_() for n in sizes]
    for t in dp:
        t.grad = torch.from_numpy(rand(t.numel()) * 0.1)
    dopt = ft.Adam(dp, lr=1e-4)
    dopt.step()
    for t in dp:
        st = dopt.state[t]
        st["exp_avg"].copy_(torch.from_numpy(rand(t.numel()) * 0.01))
        st["exp_avg_sq"].copy_(torch.from_numpy(np.abs(rand(t.numel())) * 0.01))
    # torch raw op
    rp = [torch.from_numpy(rand(n)) for n in sizes]
    rg = [torch.from_numpy(rand(n) * 0.1) for n in sizes]
    rm = [torch.from_numpy(rand(n) * 0.01) for n in sizes]
    rv = [torch.from_numpy(np.abs(rand(n)) * 0.01) for n in sizes]
    rsteps = [torch.tensor(2.0) for _ in sizes]

    from numba import njit, prange

    @njit(parallel=True, cache=True)
    def twin(p, g, m, v):
        for i in prange(p.size):
            gi = g[i]
            p[i] += gi
            m[i] += gi
            v[i] += gi

    tw = [rand(a.total) for _ in range(4)]
    twin(*tw)

    step = [2]

    def v_single():
        fastopt.adam_step(sp, sg, sm, sv, step=step[0], lr=1e-4)

    def v_fastopt():
        opt.step(gs)

    def v_functional():
        fastopt.adam_step(fp, fg, fm, fv, step=step[0], lr=1e-4)

    def v_torch_fused():
        topt.step()

    def v_torch_raw():
        torch._fused_adam_(rp, rg, rm, rv, [], rsteps, lr=1e-4, beta1=0.9, beta2=0.999,
                           weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)

    def v_dropin():
        dopt.step()

    def v_twin():
        twin(*tw)

    variants = {"single": v_single, "fastopt": v_fastopt, "functional": v_functional,
                "torch_fused": v_torch_fused, "torch_raw": v_torch_raw, "dropin": v_dropin, "twin": v_twin}
    times = {k: [] for k in variants}
    for f in variants.values():   # warm-up
        f()
    for _ in range(a.rounds):
        for name, f in variants.items():
            t0 = time.perf_counter()
            for _ in range(a.repeat):
                f()
            times[name].append((time.perf_counter() - t0) / a.repeat)
        step[0] += 1
    med = {k: statistics.median(v) for k, v in times.items()}
    info = fastopt.info()
    import numba
    print(f"# fastopt {fastopt.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"cpp {info.get('cpp')}, numba layer {numba.threading_layer()}, load {os.getloadavg()}")
    print(f"# Adam fp32, 200 tensors ({min(sizes)}..{max(sizes)} elements), total {a.total}; "
          f"{a.rounds} rounds x {a.repeat} calls, round-robin; medians")
    bytes_moved = 28 * a.total
    for k, t in med.items():
        print(f"{k:12s} {t * 1e3:8.3f} ms  {bytes_moved / t / 1e9:6.1f} GB/s  "
              f"{t / med['single']:5.2f} x single  {med['twin'] / t * 100:5.0f}% of twin")
    best = {k: min(v) for k, v in times.items()}
    print(f"fastopt / single      = {med['fastopt'] / med['single']:.3f} median, "
          f"{best['fastopt'] / best['single']:.3f} best-of  (target <= 1.25)")
    print(f"fastopt / torch_fused = {med['fastopt'] / med['torch_fused']:.3f} median, "
          f"{best['fastopt'] / best['torch_fused']:.3f} best-of  (target < 1)")
    # Per-round ratios (same round, adjacent samples): their spread shows the noise.
    r = sorted(f / s for f, s in zip(times["fastopt"], times["single"]))
    print(f"per-round fastopt/single: min {r[0]:.2f}  quartiles {r[len(r) // 4]:.2f} "
          f"{r[len(r) // 2]:.2f} {r[3 * len(r) // 4]:.2f}  max {r[-1]:.2f}")


if __name__ == "__main__":
    main()
