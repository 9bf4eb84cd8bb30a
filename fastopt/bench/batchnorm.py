"""Batch norm training forward and backward on (N, 32, 64); NumPy and torch
baselines. Out of cache, training batch norm must make two passes: the
per-channel statistics (forward: read x; backward: read dy and x) before the
elementwise pass that uses them (read them again, write y or dx). Its bytes
and its twin count both passes: forward 3, backward 5 arrays per element."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

import fastopt
from fastopt.bench.registry import Kernel, Traffic, as_torch, buffer, rand

BN_CHANNELS = 32
BN_SPATIAL = 64
BN_EPS = 1e-5


def bn_shape(n: int) -> Tuple[int, ...]:
    """(N, C, S) with C = 32 channels and S = 64 spatial positions, or (N, C) when small."""
    if n >= 2 * BN_CHANNELS * BN_SPATIAL:
        return (n // (BN_CHANNELS * BN_SPATIAL), BN_CHANNELS, BN_SPATIAL)
    return (max(n // BN_CHANNELS, 2), BN_CHANNELS)


def _bn_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _bn_bshape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _geometry(x):
    """Reduction axes, per-channel broadcast shape, elements per channel."""
    return _bn_axes(x), _bn_bshape(x), x.size // x.shape[1]


def _bn_setup(n, dtype, rng):
    shape = bn_shape(n)
    c = shape[1]
    x = (rand(rng, shape, np.float64) * 2.0 + 3.0).astype(dtype)  # a mean away from 0
    a = {"x": x, "gamma": rand(rng, c, dtype), "beta": rand(rng, c, dtype),
         "running_mean": rand(rng, c, dtype), "running_var": rand(rng, c, dtype, True),
         "dy": rand(rng, shape, dtype), "_twin_y": np.empty_like(x), "_twin_dx": np.empty_like(x)}
    axes = _bn_axes(x)
    mean = x.astype(np.float64).mean(axis=axes)
    var = x.astype(np.float64).var(axis=axes)
    a["save_mean"] = mean.astype(dtype)
    a["save_invstd"] = (1.0 / np.sqrt(var + BN_EPS)).astype(dtype)
    return a


def _bn_fwd(a, backend):
    fn = fastopt.batch_norm_forward
    args = [a[k] for k in ("x", "gamma", "beta", "running_mean", "running_var")]
    return lambda: fn(*args, training=True, momentum=0.1, eps=BN_EPS, backend=backend)


def _bn_bwd(a, backend):
    fn = fastopt.batch_norm_backward
    args = [a[k] for k in ("dy", "x", "gamma", "save_mean", "save_invstd")]
    return lambda: fn(*args, training=True, backend=backend)


def _fwd_inputs(a):
    return a["x"], a["gamma"], a["beta"], a["running_mean"], a["running_var"]


def _bwd_inputs(a):
    return a["dy"], a["x"], a["gamma"], a["save_mean"], a["save_invstd"]


def _plain_bn_fwd(a, fresh):
    x, gamma, beta, rm, rv = _fwd_inputs(a)
    axes, bs, m = _geometry(x)

    def run():  # the lecture notes' staged forward, with its temporaries
        mu = x.mean(axis=axes).reshape(bs)
        xmu = x - mu
        var = (xmu ** 2).mean(axis=axes).reshape(bs)
        sqrtvar = np.sqrt(var + BN_EPS)
        ivar = 1.0 / sqrtvar
        xhat = xmu * ivar
        out = gamma.reshape(bs) * xhat + beta.reshape(bs)
        rm[...] = 0.9 * rm + 0.1 * mu.reshape(-1)
        rv[...] = 0.9 * rv + 0.1 * var.reshape(-1) * (m / (m - 1))
        return out
    return run


def _out_bn_fwd(a, fresh):
    x, gamma, beta, rm, rv = _fwd_inputs(a)
    axes, bs, m = _geometry(x)
    t, out = np.empty_like(x), buffer(x, fresh)
    c = x.shape[1]
    mu, var = np.empty(c, x.dtype), np.empty(c, x.dtype)

    def run():
        y = out()
        np.mean(x, axis=axes, out=mu)
        np.subtract(x, mu.reshape(bs), out=t)
        np.multiply(t, t, out=y)
        np.mean(y, axis=axes, out=var)
        scale = gamma / np.sqrt(var + BN_EPS)
        np.multiply(t, scale.reshape(bs), out=y)
        np.add(y, beta.reshape(bs), out=y)
        rm[...] = 0.9 * rm + 0.1 * mu
        rv[...] = 0.9 * rv + 0.1 * var * (m / (m - 1))
        return y
    return run


def _plain_bn_bwd(a, fresh):
    dy, x, gamma, mean, invstd = _bwd_inputs(a)
    axes, bs, m = _geometry(x)

    def run():
        xhat = (x - mean.reshape(bs)) * invstd.reshape(bs)
        dbeta = dy.sum(axis=axes)
        dgamma = (dy * xhat).sum(axis=axes)
        dx = (gamma * invstd / m).reshape(bs) * (m * dy - dbeta.reshape(bs)
                                                 - xhat * dgamma.reshape(bs))
        return dx, dgamma, dbeta
    return run


def _out_bn_bwd(a, fresh):
    dy, x, gamma, mean, invstd = _bwd_inputs(a)
    axes, bs, m = _geometry(x)
    xhat, t, out = np.empty_like(x), np.empty_like(x), buffer(x, fresh)
    c = x.shape[1]
    dbeta, dgamma = np.empty(c, x.dtype), np.empty(c, x.dtype)

    def run():
        dx = out()
        np.subtract(x, mean.reshape(bs), out=xhat)
        np.multiply(xhat, invstd.reshape(bs), out=xhat)
        np.sum(dy, axis=axes, out=dbeta)
        np.multiply(dy, xhat, out=t)
        np.sum(t, axis=axes, out=dgamma)
        np.multiply(xhat, dgamma.reshape(bs), out=t)
        np.multiply(dy, m, out=dx)
        np.subtract(dx, dbeta.reshape(bs), out=dx)
        np.subtract(dx, t, out=dx)
        np.multiply(dx, (gamma * invstd / m).reshape(bs), out=dx)
        return dx, dgamma, dbeta
    return run


def _torch_bn_fwd(a, fresh):
    """The op ``F.batch_norm(training=True)`` runs; its ``.out`` form when cached."""
    import torch
    x, g, b, rm, rv = (as_torch(a[k]) for k in ("x", "gamma", "beta", "running_mean",
                                               "running_var"))
    op = torch.ops.aten.native_batch_norm
    if fresh:
        return lambda: op(x, g, b, rm, rv, True, 0.1, BN_EPS)
    y, sm, si = torch.empty_like(x), torch.empty_like(g), torch.empty_like(g)
    return lambda: op.out(x, g, b, rm, rv, True, 0.1, BN_EPS, out=y, save_mean=sm,
                          save_invstd=si)


def _torch_bn_bwd(a, fresh):
    """Autograd's batch-norm backward op itself (what ``loss.backward()`` runs)."""
    import torch
    dy, x, g, mean, invstd = (as_torch(a[k]) for k in ("dy", "x", "gamma", "save_mean",
                                                      "save_invstd"))
    op = torch.ops.aten.native_batch_norm_backward
    args = (dy, x, g, None, None, mean, invstd, True, BN_EPS, [True, True, True])
    if fresh:
        return lambda: op(*args)
    dx, dg, db = torch.empty_like(x), torch.empty_like(g), torch.empty_like(g)
    return lambda: op.out(*args, out0=dx, out1=dg, out2=db)


def kernels() -> List[Kernel]:
    return [
        Kernel("bn-forward", "batchnorm", "batch_norm_forward",
               "batch norm training forward, (N, 32, 64)",
               (Traffic(("x",)), Traffic(("x",), (), ("_twin_y",))), _bn_setup, _bn_fwd,
               {"numpy-plain": _plain_bn_fwd, "numpy-out": _out_bn_fwd, "torch": _torch_bn_fwd},
               allocates=True),
        Kernel("bn-backward", "batchnorm", "batch_norm_backward",
               "batch norm training backward, (N, 32, 64)",
               (Traffic(("dy", "x")), Traffic(("dy", "x"), (), ("_twin_dx",))), _bn_setup,
               _bn_bwd,
               {"numpy-plain": _plain_bn_bwd, "numpy-out": _out_bn_bwd, "torch": _torch_bn_bwd},
               allocates=True),
    ]
