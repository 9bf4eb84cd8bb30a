"""Batch normalization in plain NumPy, float64 (docs/reference.md s.3).

The functions receive validated arrays and the outputs to fill (``y``,
``save_mean``, ... allocated by ``fastopt.batchnorm``); they compute in float64
and write the results back, updating the running statistics in place.
"""
import math

import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _as_ncs(a):
    """An (N, C, *spatial) array viewed as (N, C, S), in float64."""
    n, c = a.shape[0], a.shape[1]
    return _f64(a).reshape(n, c, math.prod(a.shape[2:]))


def batch_norm_forward(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd, *,
                       training, momentum, eps):
    x3 = _as_ncs(x)
    count = x3.shape[0] * x3.shape[2]
    if training:
        mean = x3.mean(axis=(0, 2))
        var = ((x3 - mean[None, :, None]) ** 2).mean(axis=(0, 2))   # biased, two passes
        if running_mean is not None:
            unbiased = var * count / (count - 1)
            running_mean[...] = (1.0 - momentum) * _f64(running_mean) + momentum * mean
            running_var[...] = (1.0 - momentum) * _f64(running_var) + momentum * unbiased
    else:
        mean = _f64(running_mean).copy()
        var = _f64(running_var)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x3 - mean[None, :, None]) * invstd[None, :, None]
    out = _f64(gamma)[None, :, None] * xhat + _f64(beta)[None, :, None]
    y[...] = out.reshape(y.shape)
    save_mean[...] = mean
    save_invstd[...] = invstd


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, *, training):
    x3, dy3 = _as_ncs(x), _as_ncs(dy)
    count = x3.shape[0] * x3.shape[2]
    mean = _f64(save_mean)[None, :, None]
    invstd = _f64(save_invstd)[None, :, None]
    g = _f64(gamma)[None, :, None]
    xhat = (x3 - mean) * invstd
    sum_dy = dy3.sum(axis=(0, 2))
    sum_dy_xhat = (dy3 * xhat).sum(axis=(0, 2))
    if training and count > 0:
        grad = g * invstd / count * (count * dy3 - sum_dy[None, :, None]
                                     - xhat * sum_dy_xhat[None, :, None])
    else:
        grad = g * invstd * dy3
    dx[...] = grad.reshape(dx.shape)
    dgamma[...] = sum_dy_xhat
    dbeta[...] = sum_dy
