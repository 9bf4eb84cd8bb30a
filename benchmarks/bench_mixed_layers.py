"""Batch norm and dropout in bfloat16 against float32 and torch, side by side (issue 18).

One (N, 32, 64) batch of ``--size`` elements (``fastopt bench batchnorm``'s shape), the
same values in float32 and bfloat16; torch runs on tensors sharing that memory. Every
variant is timed round-robin (fastopt.bench.timer.interleaved: medians of interleaved
samples), with fastopt's and torch's thread counts equal.

    PYTHONPATH=. python benchmarks/bench_mixed_layers.py --size 1e7 --repeat 7
"""
from __future__ import annotations

import argparse
import json

import ml_dtypes
import numpy as np
import torch

import fastopt
from fastopt import _core
from fastopt.bench.batchnorm import bn_shape
from fastopt.bench.timer import interleaved

BF16 = np.dtype(ml_dtypes.bfloat16)


def _t(a):
    if a.dtype == BF16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def variants(n, backend):
    rng = np.random.default_rng(0)
    shape = bn_shape(n)
    c = shape[1]
    x32 = (rng.standard_normal(shape, dtype=np.float32) * 2 + 3)
    dy32 = rng.standard_normal(shape, dtype=np.float32)
    gamma, beta = rng.uniform(0.5, 2, c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    out = {}
    for name, dt in (("f32", np.float32), ("bf16", BF16)):
        x, dy = x32.astype(dt), dy32.astype(dt)
        rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
        _, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy())
        xt, dyt, gt, bt = _t(x), _t(dy), _t(gamma), _t(beta)
        rmt, rvt = _t(rm.copy()), _t(rv.copy())
        smt, sit = _t(sm), _t(si)
        _, mask = fastopt.dropout_forward(x, 0.5, seed=1)
        maskt = torch.rand(shape) > 0.5
        out[f"bn_fwd fastopt {name}"] = (lambda x=x, rm=rm, rv=rv: fastopt.batch_norm_forward(
            x, gamma, beta, rm, rv, backend=backend))
        out[f"bn_fwd torch {name}"] = (lambda xt=xt, rmt=rmt, rvt=rvt: torch.ops.aten.native_batch_norm(
            xt, gt, bt, rmt, rvt, True, 0.1, 1e-5))
        out[f"bn_bwd fastopt {name}"] = (lambda x=x, dy=dy, sm=sm, si=si: fastopt.batch_norm_backward(
            dy, x, gamma, sm, si, backend=backend))
        out[f"bn_bwd torch {name}"] = (lambda xt=xt, dyt=dyt, smt=smt, sit=sit: torch.ops.aten.native_batch_norm_backward(
            dyt, xt, gt, None, None, smt, sit, True, 1e-5, [True, True, True]))
        out[f"dropout_fwd fastopt {name}"] = (lambda x=x: fastopt.dropout_forward(
            x, 0.5, seed=7, backend=backend))
        out[f"dropout_fwd torch {name}"] = (lambda xt=xt: torch.ops.aten.native_dropout(xt, 0.5, True))
        out[f"dropout_bwd fastopt {name}"] = (lambda dy=dy, mask=mask: fastopt.dropout_backward(
            dy, mask, 0.5, backend=backend))
        out[f"dropout_bwd torch {name}"] = (lambda dyt=dyt, maskt=maskt: torch.ops.aten.native_dropout_backward(
            dyt, maskt, 2.0))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=float, default=1e7)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.05)
    ap.add_argument("--backend", default="cpp")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(_core.get_num_threads())
    n = int(args.size)
    v = variants(n, args.backend)
    res = interleaved(v, repeat=args.repeat, min_time=args.min_time, gap=0.05)
    print(f"n = {n} ({'x'.join(map(str, bn_shape(n)))}), threads: fastopt {_core.get_num_threads()}, "
          f"torch {torch.get_num_threads()}, backend {args.backend}; median ms (min)")
    kernels = list(dict.fromkeys(k.split()[0] for k in v))
    print(f"{'kernel':<12} {'fastopt f32':>13} {'fastopt bf16':>13} {'torch f32':>13} {'torch bf16':>13}"
          f" {'fo bf16/f32':>11} {'torch/fo bf16':>13}")
    for k in kernels:
        m = {who: res[f"{k} {who}"].median * 1e3 for who in
             ("fastopt f32", "fastopt bf16", "torch f32", "torch bf16")}
        print(f"{k:<12} " + " ".join(f"{m[w]:>13.2f}" for w in m)
              + f" {m['fastopt bf16'] / m['fastopt f32']:>11.2f} {m['torch bf16'] / m['fastopt bf16']:>13.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: t.as_dict() for k, t in res.items()}, f, indent=1)


if __name__ == "__main__":
    main()
