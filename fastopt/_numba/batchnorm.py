"""Batch normalization in Numba, mirroring fastopt/_ref/batchnorm.py: statistics
and every element computed in float64 (two passes per channel), threads over
channels (``prange``)."""
import math

import numpy as np
from numba import njit, prange


def _ncs(a):
    return a.reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:]))


@njit(parallel=True, cache=True)
def _forward_train(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd, update,
                   momentum, eps):
    n_, c_, s_ = x.shape
    count = n_ * s_
    for c in prange(c_):
        total = 0.0
        for n in range(n_):
            for k in range(s_):
                total += x[n, c, k]
        mean = total / count
        m2 = 0.0
        for n in range(n_):
            for k in range(s_):
                d = x[n, c, k] - mean
                m2 += d * d
        invstd = 1.0 / np.sqrt(m2 / count + eps)
        if update:
            running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean
            running_var[c] = (1.0 - momentum) * running_var[c] + momentum * (m2 / (count - 1))
        save_mean[c] = mean
        save_invstd[c] = invstd
        _normalize(x, y, c, mean, invstd, np.float64(gamma[c]), np.float64(beta[c]))


# Eval never writes the running statistics (they may be read-only arrays,
# which numba types differently), so it is a separate function.
@njit(parallel=True, cache=True)
def _forward_eval(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd, eps):
    for c in prange(x.shape[1]):
        mean = np.float64(running_mean[c])
        invstd = 1.0 / np.sqrt(np.float64(running_var[c]) + eps)
        save_mean[c] = mean
        save_invstd[c] = invstd
        _normalize(x, y, c, mean, invstd, np.float64(gamma[c]), np.float64(beta[c]))


@njit(cache=True)
def _normalize(x, y, c, mean, invstd, g, b):
    for n in range(x.shape[0]):
        for k in range(x.shape[2]):
            y[n, c, k] = g * ((x[n, c, k] - mean) * invstd) + b


@njit(parallel=True, cache=True)
def _backward(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training):
    n_, c_, s_ = x.shape
    count = n_ * s_
    for c in prange(c_):
        mean = np.float64(save_mean[c])
        invstd = np.float64(save_invstd[c])
        sum_dy = 0.0
        sum_dy_xhat = 0.0
        for n in range(n_):
            for k in range(s_):
                g = np.float64(dy[n, c, k])
                sum_dy += g
                sum_dy_xhat += g * ((x[n, c, k] - mean) * invstd)
        dgamma[c] = sum_dy_xhat
        dbeta[c] = sum_dy
        scale = np.float64(gamma[c]) * invstd
        for n in range(n_):
            for k in range(s_):
                if training and count > 0:
                    xhat = (x[n, c, k] - mean) * invstd
                    dx[n, c, k] = scale / count * (count * np.float64(dy[n, c, k]) - sum_dy
                                                   - xhat * sum_dy_xhat)
                else:
                    dx[n, c, k] = scale * dy[n, c, k]


def batch_norm_forward(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd, *,
                       training, momentum, eps):
    if not training:
        _forward_eval(_ncs(x), _ncs(y), gamma, beta, running_mean, running_var, save_mean,
                      save_invstd, eps)
        return
    update = running_mean is not None
    if not update:  # numba needs arrays in every slot
        running_mean = running_var = np.empty(0, dtype=x.dtype)
    _forward_train(_ncs(x), _ncs(y), gamma, beta, running_mean, running_var, save_mean,
                   save_invstd, update, momentum, eps)


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, *, training):
    _backward(_ncs(dy), _ncs(x), gamma, save_mean, save_invstd, _ncs(dx), dgamma, dbeta, training)
