"""Batch norm forward + backward (training, float32), fastopt against NumPy and torch.

Follows /work/shared/BENCHMARKING.md: every variant of one shape is timed
round-robin in one process (A B C ... A B C ...), each sample lasts >= ~10 ms,
and medians of the same window are compared. torch is imported (and its
thread pool used) in the same process as fastopt.

Variants, each one forward + one backward on fresh random data:
  fastopt-cpp, fastopt-numba     fastopt.batch_norm_forward / _backward
  numpy-lecture                  NumPy as in the cs231n notes: mean/var, x_hat,
                                 out = gamma*x_hat + beta with temporaries; the
                                 simplified backward; (N, C, H, W) goes through
                                 the spatial transpose to (N*H*W, C) and back
  torch-native                   torch.ops.aten.native_batch_norm + native_batch_norm_backward
  torch-F+autograd               F.batch_norm(x.requires_grad_()) then y.backward(dy)
  twin                           same-traffic floor: torch.add(x, 1, out=y);
                                 torch.add(dy, x, out=dx) (reads x; reads dy, x;
                                 writes y, dx: the bytes a fused forward +
                                 backward must move, 20 B/element)

GB/s is 20 B/element over the median time (the bytes the kernels must move;
fastopt's two-pass forward and backward actually move 32).

    PYTHONPATH=. python benchmarks/bench_batchnorm.py [--samples 15] [--min-sample-ms 10] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import fastopt

BYTES_PER_ELEMENT = 20  # fp32: forward read x + write y, backward read dy, x + write dx
EPS, MOMENTUM = 1e-5, 0.1


def lecture_forward(x, gamma, beta, bn_param):
    """cs231n batchnorm_forward (train mode) for (N, D) input."""
    eps, momentum = bn_param["eps"], bn_param["momentum"]
    sample_mean = x.mean(axis=0)
    sample_var = x.var(axis=0)
    x_hat = (x - sample_mean) / np.sqrt(sample_var + eps)
    out = gamma * x_hat + beta
    n = x.shape[0]
    bn_param["running_mean"] = momentum * sample_mean + (1 - momentum) * bn_param["running_mean"]
    bn_param["running_var"] = (momentum * sample_var * n / (n - 1)
                               + (1 - momentum) * bn_param["running_var"])
    cache = (x_hat, gamma, sample_var, eps)
    return out, cache


def lecture_backward(dout, cache):
    """cs231n batchnorm_backward_alt (the simplified formula)."""
    x_hat, gamma, var, eps = cache
    n = dout.shape[0]
    inv_std = 1.0 / np.sqrt(var + eps)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = (1.0 / n) * gamma * inv_std * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def lecture_step(x, dy, gamma, beta, bn_param):
    if x.ndim == 2:
        out, cache = lecture_forward(x, gamma, beta, bn_param)
        return out, lecture_backward(dy, cache)
    # spatial_batchnorm_forward / _backward: (N, C, H, W) -> (N*H*W, C)
    n, c, h, w = x.shape
    x2 = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = lecture_forward(x2, gamma, beta, bn_param)
    out = out.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    dy2 = dy.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = lecture_backward(dy2, cache)
    return out, (dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta)


def make_variants(shape, rng):
    C = shape[1]
    x = (rng.standard_normal(shape) * 1.7 + 0.3).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)

    def fastopt_step(backend):
        def step():
            y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, momentum=MOMENTUM,
                                                   eps=EPS, backend=backend)
            return y, fastopt.batch_norm_backward(dy, x, gamma, sm, si, backend=backend)
        return step

    bn_param = {"eps": EPS, "momentum": MOMENTUM, "running_mean": rm.copy(),
                "running_var": rv.copy()}

    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    gt, bt = torch.from_numpy(gamma), torch.from_numpy(beta)
    rmt, rvt = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())

    def torch_native():
        y, sm, si = torch.ops.aten.native_batch_norm(xt, gt, bt, rmt, rvt, True, MOMENTUM, EPS)
        return y, torch.ops.aten.native_batch_norm_backward(dyt, xt, gt, rmt, rvt, sm, si, True,
                                                            EPS, [True, True, True])

    xg = xt.clone().requires_grad_(True)
    gg, bg = gt.clone().requires_grad_(True), bt.clone().requires_grad_(True)
    rmt2, rvt2 = rmt.clone(), rvt.clone()

    def torch_autograd():
        xg.grad = gg.grad = bg.grad = None
        y = F.batch_norm(xg, rmt2, rvt2, gg, bg, training=True, momentum=MOMENTUM, eps=EPS)
        y.backward(dyt)
        return y

    yt, dxt = torch.empty_like(xt), torch.empty_like(xt)

    def twin():
        torch.add(xt, 1.0, out=yt)
        torch.add(dyt, xt, out=dxt)

    # sanity: fastopt agrees with torch before anything is timed
    y, (dx, dg, db) = fastopt_step("cpp")()
    ty, (tdx, tdg, tdb) = torch_native()
    assert np.allclose(y, ty.numpy(), rtol=1e-4, atol=1e-4)
    assert np.allclose(dx, tdx.numpy(), rtol=1e-3, atol=1e-4)
    ly, (ldx, _, _) = lecture_step(x, dy, gamma, beta, dict(bn_param))
    assert np.allclose(y, ly, rtol=1e-4, atol=1e-4) and np.allclose(dx, ldx, rtol=1e-3, atol=1e-4)

    return {
        "fastopt-cpp": fastopt_step("cpp"),
        "fastopt-numba": fastopt_step("numba"),
        "numpy-lecture": lambda: lecture_step(x, dy, gamma, beta, bn_param),
        "torch-native": torch_native,
        "torch-F+autograd": torch_autograd,
        "twin": twin,
    }


def calibrate(fn, min_seconds):
    fn()
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return n
        n = max(n * 2, int(n * min_seconds / max(dt, 1e-9) * 1.2))


def bench_shape(shape, samples, min_seconds, rng):
    variants = make_variants(shape, rng)
    reps = {name: calibrate(fn, min_seconds) for name, fn in variants.items()}
    times = {name: [] for name in variants}
    for _ in range(samples):                      # round-robin: A B C ... A B C ...
        for name, fn in variants.items():
            n = reps[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t0) / n)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--min-sample-ms", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=0,
                    help="threads for fastopt, numba and torch (default: their own defaults)")
    args = ap.parse_args()
    if args.threads > 0:
        import numba
        from fastopt import _core
        _core.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    info = fastopt.info()
    cpp = info.get("cpp", {})
    print(f"fastopt {info['version']}: cpp {cpp.get('isa')} x{cpp.get('threads')} threads "
          f"({cpp.get('threading')}); numba {info.get('numba', {}).get('version')}; "
          f"numpy {np.__version__}; torch {torch.__version__} x{torch.get_num_threads()} threads")
    with open("/proc/loadavg") as fh:
        print(f"load average at start: {fh.read().split()[0]}")
    print(f"forward + backward, training, float32; {args.samples} interleaved samples of "
          f">= {args.min_sample_ms:g} ms; GB/s = {BYTES_PER_ELEMENT} B/element / median time")
    rng = np.random.default_rng(0)
    for shape in [(256, 1024), (32, 64, 32, 32)]:
        med = bench_shape(shape, args.samples, args.min_sample_ms / 1e3, rng)
        numel = int(np.prod(shape))
        print(f"\nshape {shape} ({numel} elements, {numel * 4 / 2**20:.1f} MiB per array)")
        print(f"  {'variant':18s} {'median us':>10s} {'GB/s':>7s} {'% twin':>7s} "
              f"{'x numpy':>8s} {'x torch-native':>15s} {'x torch-F':>10s}")
        for name, t in med.items():
            gbs = BYTES_PER_ELEMENT * numel / t / 1e9
            print(f"  {name:18s} {t * 1e6:10.1f} {gbs:7.1f} {100 * med['twin'] / t:6.0f}% "
                  f"{med['numpy-lecture'] / t:8.2f} {med['torch-native'] / t:15.2f} "
                  f"{med['torch-F+autograd'] / t:10.2f}")


if __name__ == "__main__":
    main()
