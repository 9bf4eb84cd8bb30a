"""Optimizer steps, side by side (issue 2's benchmark; method: ../shared/BENCHMARKING.md).

Every variant of one cell (kernel x size) is timed round-robin in one process
(A B C A B C ...), each sample lasting >= ~10 ms, and the medians compared.
GB/s counts the bytes the kernel must move; "twin" is the same-traffic floor
(a fused pass reading and writing exactly the same arrays on fastopt's
thread pool, fastopt._core.bench_twin, shared with `fastopt bench`), and every variant is reported as a share of it.

    python benchmarks/bench_optim.py                    # default sizes, torch if installed
    python benchmarks/bench_optim.py --sizes 1e3 1e7 --kernels adam
    python benchmarks/bench_optim.py --no-torch         # cpp alone, torch never imported
"""
from __future__ import annotations

import argparse

import numpy as np

import fastopt
from fastopt.bench import timer
from fastopt import _core

# kernel -> (bytes per fp32 element, written state arrays, torch class, torch kwargs, fastopt kwargs)
KERNELS = {
    "sgd-momentum": (20, ["momentum_buffer"], "SGD", dict(lr=0.01, momentum=0.9), {}),
    "rmsprop": (20, ["square_avg"], "RMSprop", dict(lr=0.01), {}),
    "adam": (28, ["exp_avg", "exp_avg_sq"], "Adam", dict(lr=0.001), {}),
    "adamw": (28, ["exp_avg", "exp_avg_sq"], "AdamW", dict(lr=0.001, weight_decay=0.01),
              dict(weight_decay=0.01, decoupled_weight_decay=True)),
    "amsgrad": (36, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"], "Adam",
                dict(lr=0.001, amsgrad=True), dict(amsgrad=True)),
    "adagrad": (20, ["state_sum"], "Adagrad", dict(lr=0.01), {}),
}


def fastopt_call(kernel, a, backend):
    """A closure doing one fastopt step on the arrays of dict ``a``."""
    extra = KERNELS[kernel][4]
    p, g = a["param"], a["grad"]
    if kernel == "sgd-momentum":
        return lambda: fastopt.sgd_step(p, g, a["momentum_buffer"], lr=0.01, momentum=0.9,
                                        backend=backend)
    if kernel == "rmsprop":
        return lambda: fastopt.rmsprop_step(p, g, a["square_avg"], lr=0.01, backend=backend)
    if kernel == "adagrad":
        return lambda: fastopt.adagrad_step(p, g, a["state_sum"], step=3, lr=0.01, backend=backend)
    m, v, vmax = a["exp_avg"], a["exp_avg_sq"], a.get("max_exp_avg_sq")
    return lambda: fastopt.adam_step(p, g, m, v, step=3, lr=0.001, max_exp_avg_sq=vmax,
                                     backend=backend, **extra)


def numpy_plain(kernel, a):
    """NumPy as the lecture notes write it: temporaries, one ufunc per operator."""
    p, g = a["param"], a["grad"]
    if kernel == "sgd-momentum":
        def run():
            v = a["momentum_buffer"]
            v[...] = 0.9 * v + g
            p[...] = p - 0.01 * v
    elif kernel == "rmsprop":
        def run():
            c = a["square_avg"]
            c[...] = 0.99 * c + (1 - 0.99) * g ** 2
            p[...] = p + -0.01 * g / (np.sqrt(c) + 1e-8)
    elif kernel == "adagrad":
        def run():
            c = a["state_sum"]
            c += g ** 2
            p[...] = p + -0.01 * g / (np.sqrt(c) + 1e-10)
    else:
        wd = KERNELS[kernel][4].get("weight_decay", 0.0)
        amsgrad = kernel == "amsgrad"

        def run():
            m, v = a["exp_avg"], a["exp_avg_sq"]
            if wd:
                p[...] = p * (1 - 0.001 * wd)
            m[...] = 0.9 * m + (1 - 0.9) * g
            v[...] = 0.999 * v + (1 - 0.999) * (g ** 2)
            vv = v
            if amsgrad:
                a["max_exp_avg_sq"][...] = np.maximum(a["max_exp_avg_sq"], v)
                vv = a["max_exp_avg_sq"]
            mt = m / (1 - 0.9 ** 3)
            vt = vv / (1 - 0.999 ** 3)
            p[...] = p + -0.001 * mt / (np.sqrt(vt) + 1e-8)
    return run


def numpy_out(kernel, a):
    """NumPy with preallocated out= buffers (no per-step allocation)."""
    p, g = a["param"], a["grad"]
    t1, t2 = np.empty_like(p), np.empty_like(p)
    if kernel == "sgd-momentum":
        def run():
            v = a["momentum_buffer"]
            np.multiply(v, 0.9, out=v)
            np.add(v, g, out=v)
            np.multiply(v, 0.01, out=t1)
            np.subtract(p, t1, out=p)
    elif kernel in ("rmsprop", "adagrad"):
        name = "square_avg" if kernel == "rmsprop" else "state_sum"
        decay = 0.99 if kernel == "rmsprop" else 1.0

        def run():
            c = a[name]
            np.multiply(g, g, out=t1)
            if decay != 1.0:
                np.multiply(c, decay, out=c)
                np.multiply(t1, 1 - decay, out=t1)
            np.add(c, t1, out=c)
            np.sqrt(c, out=t2)
            np.add(t2, 1e-8, out=t2)
            np.divide(g, t2, out=t1)
            np.multiply(t1, 0.01, out=t1)
            np.subtract(p, t1, out=p)
    else:
        def run():
            m, v = a["exp_avg"], a["exp_avg_sq"]
            np.multiply(m, 0.9, out=m)
            np.multiply(g, 0.1, out=t1)
            np.add(m, t1, out=m)
            np.multiply(v, 0.999, out=v)
            np.multiply(g, g, out=t1)
            np.multiply(t1, 0.001, out=t1)
            np.add(v, t1, out=v)
            vv = v
            if "max_exp_avg_sq" in a:
                np.maximum(a["max_exp_avg_sq"], v, out=a["max_exp_avg_sq"])
                vv = a["max_exp_avg_sq"]
            np.sqrt(vv, out=t2)
            np.multiply(t2, 1 / np.sqrt(1 - 0.999 ** 3), out=t2)
            np.add(t2, 1e-8, out=t2)
            np.divide(m, t2, out=t1)
            np.multiply(t1, 0.001 / (1 - 0.9 ** 3), out=t1)
            np.subtract(p, t1, out=p)
    return run


def torch_variants(kernel, a, torch):
    """torch 2.13 CPU: fused=True where it exists, foreach=True, and the raw fused op."""
    _, states, cls, kw, _ = KERNELS[kernel]
    out = {}
    for flavour in ("fused", "foreach"):
        if flavour == "fused" and cls not in ("Adam", "AdamW", "SGD", "Adagrad"):
            continue
        p = torch.nn.Parameter(torch.from_numpy(a["param"].copy()))
        p.grad = torch.from_numpy(a["grad"].copy())
        opt = getattr(torch.optim, cls)([p], **kw, **{flavour: True})
        opt.step()  # creates state as zeros; refill with random values (BENCHMARKING.md)
        for t in opt.state[p].values():
            if torch.is_tensor(t) and t.numel() == p.numel():
                t.copy_(torch.rand_like(t) + 0.1)
        out[f"torch-{flavour}"] = opt.step
    if kernel in ("adam", "adamw", "amsgrad"):
        tp, tg, tm, tv = (torch.from_numpy(a[k].copy()) for k in ("param", "grad", "exp_avg", "exp_avg_sq"))
        tmax = [torch.from_numpy(a["max_exp_avg_sq"].copy())] if kernel == "amsgrad" else []
        step = torch.tensor(3.0)
        op = torch._fused_adamw_ if kernel == "adamw" else torch._fused_adam_
        wd = kw.get("weight_decay", 0.0)
        out["torch-raw-op"] = lambda: op([tp], [tg], [tm], [tv], tmax, [step], lr=0.001, beta1=0.9,
                                         beta2=0.999, weight_decay=wd, eps=1e-8,
                                         amsgrad=kernel == "amsgrad", maximize=False)
    return out


def make_arrays(kernel, n, rng):
    a = {"param": rng.standard_normal(n, dtype=np.float32),
         "grad": rng.standard_normal(n, dtype=np.float32)}
    for s in KERNELS[kernel][1]:
        a[s] = rng.random(n, dtype=np.float32) + 0.1
    return a


def twin(kernel, a):
    written = [a["param"]] + [a[s] for s in KERNELS[kernel][1]]
    return lambda: _core.bench_twin([a["grad"]], written, [])


def interleaved(variants: dict, repeat: int) -> dict:
    """Median seconds per call of each variant, timed round-robin (fastopt.bench.timer)."""
    return {name: t.median for name, t in timer.interleaved(variants, repeat=repeat).items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e3, 1e5, 1e6, 1e7, 3e7])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--no-torch", action="store_true", help="never import torch")
    ap.add_argument("--backends", nargs="+", default=["cpp", "numba"])
    args = ap.parse_args(argv)
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
        except ImportError:
            pass
    info = fastopt.info()
    print(f"# fastopt {info['version']}, cpp SIMD {info['cpp']['isa']}, {info['cpp']['threads']} threads; "
          f"torch {'not imported' if torch is None else torch.__version__}; repeat {args.repeat}")
    print(f"{'kernel':13s} {'n':>8s} {'variant':15s} {'median':>10s} {'GB/s':>7s} {'%twin':>6s} "
          f"{'x plain':>8s} {'x torch':>8s}")
    rng = np.random.default_rng(0)
    for kernel in args.kernels:
        for n in (int(s) for s in args.sizes):
            variants = {}
            arrays = {}
            for b in args.backends:
                arrays[b] = make_arrays(kernel, n, rng)
                variants[f"fastopt-{b}"] = fastopt_call(kernel, arrays[b], b)
            arrays["twin"] = make_arrays(kernel, n, rng)
            variants["twin"] = twin(kernel, arrays["twin"])
            variants["numpy-plain"] = numpy_plain(kernel, make_arrays(kernel, n, rng))
            variants["numpy-out"] = numpy_out(kernel, make_arrays(kernel, n, rng))
            if torch is not None:
                variants.update(torch_variants(kernel, make_arrays(kernel, n, rng), torch))
            med = interleaved(variants, args.repeat)
            nbytes = KERNELS[kernel][0] * n
            torch_best = min((t for k, t in med.items() if k.startswith("torch")), default=None)
            for name, t in med.items():
                x_torch = f"{torch_best / t:8.2f}" if torch_best else f"{'-':>8s}"
                print(f"{kernel:13s} {n:8.0e} {name:15s} {t * 1e6:8.1f}us {nbytes / t / 1e9:7.1f} "
                      f"{100 * med['twin'] / t:5.0f}% {med['numpy-plain'] / t:8.2f} {x_torch}")
            print()


if __name__ == "__main__":
    main()
