"""Batch normalization forward and backward (docs/reference.md s.3).

``x`` is ``(N, C)`` or ``(N, C, *spatial)``; statistics are per channel over
the ``M = N * prod(spatial)`` values of the batch and spatial axes. The forward
call allocates ``y`` and the saved statistics, the backward call ``dx``,
``dgamma`` and ``dbeta``; the running statistics are the only arrays updated
in place. Every backend computes the statistics in double, in a way that is
stable for data with a large mean (two passes / Chan's merge, never
``E[x^2] - E[x]^2``), and its result does not depend on the thread count.
"""
from __future__ import annotations

import math

import numpy as np

from fastopt import backends as _backends, _validate as v
from fastopt._arrays import as_array
from fastopt._entry import entry
from fastopt._specs import KERNELS

try:
    # Native fast path (csrc/validate/fast_path.h): runs plainly valid calls on
    # the cpp backend and returns None for everything else, which then goes
    # through the validated function (its checks cost ~15 us a call). The
    # scalar pre-check (``entry``, generated from fastopt._specs) is
    # conservative: anything unusual takes that path.
    from fastopt._core import (batch_norm_backward_fast as _backward_fast,
                               batch_norm_forward_fast as _forward_fast)
except ImportError:  # pragma: no cover - extension not built
    _forward_fast = _backward_fast = None



def _channels(x, name):
    a = as_array(x, name)
    if a.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (N, C, *spatial), got shape "
                         f"{tuple(a.shape)}")
    n, c = a.shape[0], a.shape[1]
    count = n * math.prod(a.shape[2:])
    return a, c, count


_FILLED: dict = {}   # (C, dtype, value) -> read-only (C,) array, for gamma/beta None on the CPU


def _filled(x, a, value):
    """``a``, or for ``None`` and a float NumPy ``x``: a cached read-only ``(C,)``
    array of ``value``, so that ``affine=False`` calls keep the native fast path."""
    if a is not None or type(x) is not np.ndarray or x.ndim < 2 or x.dtype.char not in "fd":
        return a
    key = (x.shape[1], x.dtype.char, value)
    out = _FILLED.get(key)
    if out is None:
        if len(_FILLED) >= 64:
            _FILLED.clear()
        out = np.full(x.shape[1], value, x.dtype)
        out.flags.writeable = False
        _FILLED[key] = out
    return out


def _affine(xa, C, a, default):
    """``a``, or for ``None`` (torch's ``affine=False``) a ``(C,)`` array of
    ``default`` on ``x``'s device: the backends always get real arrays (a
    C-length fill, small against the pass over ``x``)."""
    return v.full_like(xa, (C,), default, v.compute_dtype(xa.dtype)) if a is None else a


@entry("batch_norm_forward", "_forward_fast",
       "x, _filled(x, gamma, 1.0), _filled(x, beta, 0.0), running_mean, running_var, training, "
       "momentum, eps, backend", returns_result=True)
def batch_norm_forward(x, gamma, beta, running_mean, running_var, *, training=True, momentum=0.1,
                       eps=1e-5, backend="auto"):
    """Batch normalization forward: returns ``(y, save_mean, save_invstd)``.

    Per channel ``c`` over the ``M`` values of ``x[:, c, ...]``::

        training:  mean = sum(x) / M ;  var = sum((x - mean)**2) / M   (biased)
                   running_mean = (1 - momentum) * running_mean + momentum * mean
                   running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
        eval:      mean = running_mean ;  var = running_var   (nothing is updated)
        invstd = 1 / sqrt(var + eps)
        y = gamma * (x - mean) * invstd + beta    (cpp, cuda: ((x - hi) - lo) * scale + beta,
                                                    scale = gamma*invstd, hi + lo = mean;
                                                    numba: x * scale + (beta - mean*scale))

    ``save_mean`` and ``save_invstd`` (shape ``(C,)``, ``x``'s dtype; float32 for a
    16-bit ``x``) are what :func:`batch_norm_backward` needs; in eval they are a copy of
    ``running_mean`` and ``1 / sqrt(running_var + eps)``.

    Equals ``torch.nn.functional.batch_norm(x, running_mean, running_var,
    gamma, beta, training, momentum, eps)`` (and ``torch.ops.aten.native_batch_norm``,
    which also returns the saved statistics). The lecture-notes form
    ``xhat = (x - mu) / sqrt(var + eps); out = gamma * xhat + beta`` is the same
    maths for ``(N, D)`` input; convolutional ("spatial") batch norm is the
    ``(N, C, H, W)`` case.

    ``gamma``, ``beta``, ``running_mean``, ``running_var`` have shape ``(C,)``
    and ``x``'s dtype (float32 or float64), or float32 when ``x`` is float16 or
    ``ml_dtypes.bfloat16`` (computed in float32, ``y`` rounded once to ``x``'s type;
    docs/mixed-precision-layers.md). ``gamma=None`` / ``beta=None``
    mean 1 / 0 (torch's ``affine=False``). In training the running statistics
    may both be None (nothing is tracked); they are updated in place and must
    be writeable and C-contiguous. ``M == 1`` in training raises ``ValueError``
    (no variance to estimate); an empty batch (``M == 0``) in training returns
    an empty ``y`` with zero saved statistics and leaves the running ones alone,
    as ``F.batch_norm`` does.

    >>> x = np.random.randn(32, 16, 8, 8).astype(np.float32)
    >>> gamma, beta = np.ones(16, np.float32), np.zeros(16, np.float32)
    >>> rm, rv = np.zeros(16, np.float32), np.ones(16, np.float32)
    >>> y, mean, invstd = fastopt.batch_norm_forward(x, gamma, beta, rm, rv)
    """
    spec = KERNELS["batch_norm_forward"]
    h = v.hypers(spec, locals())
    training, momentum, eps, backend = h["training"], h["momentum"], h["eps"], h["backend"]
    xa, C, M = _channels(x, "x")
    v.rules(spec, h, locals())
    c = v.shaped_arrays(("x", xa, False, None), ("gamma", gamma, False, (C,)),
                        ("beta", beta, False, (C,)),
                        ("running_mean", running_mean, training, (C,)),
                        ("running_var", running_var, training, (C,)),
                        dtypes=v.kernel_dtypes(spec), stats=v.stat_roles(spec))
    if training and M == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                         f"{tuple(xa.shape)}")
    name = _backends.choose(backend, c.on_gpu)
    y = v.empty_like(xa)
    sd = v.compute_dtype(xa.dtype)
    if training and M == 0:
        return y, v.zeros_like(xa, (C,), sd), v.zeros_like(xa, (C,), sd)
    save_mean, save_invstd = v.empty_like(xa, (C,), sd), v.empty_like(xa, (C,), sd)
    gamma, beta = _affine(xa, C, c["gamma"], 1.0), _affine(xa, C, c["beta"], 0.0)
    _backends.module("batchnorm", name).batch_norm_forward(
        c["x"], y, gamma, beta, c["running_mean"], c["running_var"], save_mean,
        save_invstd, training=training, momentum=momentum, eps=eps)
    return y, save_mean, save_invstd


@entry("batch_norm_backward", "_backward_fast",
       "dy, x, _filled(x, gamma, 1.0), save_mean, save_invstd, training, backend",
       returns_result=True)
def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, *, training=True, backend="auto"):
    """Batch normalization backward: returns ``(dx, dgamma, dbeta)``.

    ``save_mean`` and ``save_invstd`` are the forward call's (``None`` raises
    ``ValueError``). A 16-bit ``dy``/``x`` (one type) takes float32 ``gamma`` and
    statistics and gives ``dx`` in its type, ``dgamma``/``dbeta`` in float32. ``gamma=None`` means 1 (``affine=False``); ``dgamma`` and
    ``dbeta`` are still returned (the sums below, computed anyway), to be
    ignored when there is no affine transform. Per channel, with
    ``xhat = (x - save_mean) * save_invstd`` and sums over the ``M`` values::

        dbeta  = sum(dy)
        dgamma = sum(dy * xhat)
        training:  dx = gamma * invstd / M * (M * dy - dbeta - xhat * dgamma)
        eval:      dx = gamma * invstd * dy        (the statistics are constants)

    Equals autograd through ``torch.nn.functional.batch_norm`` (and
    ``torch.ops.aten.native_batch_norm_backward``). This is the simplified form
    of the lecture notes' staged backward (through ``xmu``, ``var``, ``sqrtvar``,
    ``ivar``...), one fused reduction pass plus one elementwise pass.

    >>> dx, dgamma, dbeta = fastopt.batch_norm_backward(dy, x, gamma, mean, invstd)
    """
    spec = KERNELS["batch_norm_backward"]
    h = v.hypers(spec, locals())
    training, backend = h["training"], h["backend"]
    xa, C, M = _channels(x, "x")
    for label, saved in (("save_mean", save_mean), ("save_invstd", save_invstd)):
        if saved is None:
            raise ValueError(f"{label} is None: pass the statistics batch_norm_forward returned")
    c = v.shaped_arrays(("x", xa, False, None), ("dy", dy, False, tuple(xa.shape)),
                        ("gamma", gamma, False, (C,)), ("save_mean", save_mean, False, (C,)),
                        ("save_invstd", save_invstd, False, (C,)),
                        dtypes=v.kernel_dtypes(spec), stats=v.stat_roles(spec))
    name = _backends.choose(backend, c.on_gpu)
    dx = v.empty_like(xa)
    sd = v.compute_dtype(xa.dtype)
    dgamma, dbeta = v.empty_like(xa, (C,), sd), v.empty_like(xa, (C,), sd)
    _backends.module("batchnorm", name).batch_norm_backward(
        c["dy"], c["x"], _affine(xa, C, c["gamma"], 1.0), c["save_mean"], c["save_invstd"], dx,
        dgamma, dbeta, training=training)
    return dx, dgamma, dbeta
