"""Batch normalization in Numba, mirroring fastopt/backends/numpy/batchnorm.py: statistics
and every element computed in float64 (two passes). Threads go over channels
(``prange``) for (N, C, *spatial) input; for (N, C) input, where a channel is a
strided column, over a fixed number of row blocks whose per-column partial
sums are added in block order (the result does not depend on the threads). Inputs below
``_serial.SERIAL_BELOW`` elements run the serial builds (same bits, no thread wake-up).
A 16-bit x / dy runs on float32 copies (fastopt/backends/numba/_storage.py) with the
float32 statistics; y / dx are rounded back once."""
import math

import numpy as np
from numba import njit, prange

from fastopt.backends.numba import _storage
from fastopt.backends.numba._serial import by_size, compile_pair


def _ncs(a):
    return a.reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:]))


@compile_pair
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
@compile_pair
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


@compile_pair
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


_ROW_BLOCKS = 16


@compile_pair
def _column_moments(x, nblocks):
    """Per-column mean and M2 of a 2-D array: two passes, row blocks in parallel."""
    n_, c_ = x.shape
    part = np.zeros((nblocks, c_))
    for b in prange(nblocks):
        for n in range(n_ * b // nblocks, n_ * (b + 1) // nblocks):
            for c in range(c_):
                part[b, c] += x[n, c]
    mean = np.zeros(c_)
    for b in range(nblocks):
        for c in range(c_):
            mean[c] += part[b, c]
    mean /= n_
    part[:, :] = 0.0
    for b in prange(nblocks):
        for n in range(n_ * b // nblocks, n_ * (b + 1) // nblocks):
            for c in range(c_):
                d = x[n, c] - mean[c]
                part[b, c] += d * d
    m2 = np.zeros(c_)
    for b in range(nblocks):
        for c in range(c_):
            m2[c] += part[b, c]
    return mean, m2


@compile_pair
def _rows_normalize(x, y, scale, shift, nblocks):
    n_, c_ = x.shape
    for b in prange(nblocks):
        for n in range(n_ * b // nblocks, n_ * (b + 1) // nblocks):
            for c in range(c_):
                y[n, c] = x[n, c] * scale[c] + shift[c]


@compile_pair
def _column_grad_sums(dy, x, mean, invstd, nblocks):
    n_, c_ = x.shape
    pa = np.zeros((nblocks, c_))
    pb = np.zeros((nblocks, c_))
    for b in prange(nblocks):
        for n in range(n_ * b // nblocks, n_ * (b + 1) // nblocks):
            for c in range(c_):
                g = np.float64(dy[n, c])
                pa[b, c] += g
                pb[b, c] += g * ((x[n, c] - mean[c]) * invstd[c])
    sum_dy = np.zeros(c_)
    sum_dy_xhat = np.zeros(c_)
    for b in range(nblocks):
        for c in range(c_):
            sum_dy[c] += pa[b, c]
            sum_dy_xhat[c] += pb[b, c]
    return sum_dy, sum_dy_xhat


@compile_pair
def _rows_dx(dy, x, dx, mean, invstd, gamma, sum_dy, sum_dy_xhat, training, nblocks):
    n_, c_ = x.shape
    for b in prange(nblocks):
        for n in range(n_ * b // nblocks, n_ * (b + 1) // nblocks):
            for c in range(c_):
                scale = gamma[c] * invstd[c]
                if training:
                    xhat = (x[n, c] - mean[c]) * invstd[c]
                    dx[n, c] = scale / n_ * (n_ * np.float64(dy[n, c]) - sum_dy[c]
                                             - xhat * sum_dy_xhat[c])
                else:
                    dx[n, c] = scale * dy[n, c]


def _forward_2d(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd, training,
                momentum, eps):
    g, b = gamma.astype(np.float64), beta.astype(np.float64)
    if training:
        n = x.shape[0]
        mean, m2 = by_size(_column_moments, x.size)(x, _ROW_BLOCKS)
        invstd = 1.0 / np.sqrt(m2 / n + eps)
        if running_mean is not None:
            running_mean[...] = (1.0 - momentum) * running_mean + momentum * mean
            running_var[...] = (1.0 - momentum) * running_var + momentum * (m2 / (n - 1))
    else:
        mean = running_mean.astype(np.float64)
        invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    save_mean[...] = mean
    save_invstd[...] = invstd
    scale = g * invstd
    by_size(_rows_normalize, x.size)(x, y, scale, b - mean * scale, _ROW_BLOCKS)


def _backward_2d(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training):
    mean, invstd = save_mean.astype(np.float64), save_invstd.astype(np.float64)
    sum_dy, sum_dy_xhat = by_size(_column_grad_sums, x.size)(dy, x, mean, invstd, _ROW_BLOCKS)
    dgamma[...] = sum_dy_xhat
    dbeta[...] = sum_dy
    by_size(_rows_dx, x.size)(dy, x, dx, mean, invstd, gamma.astype(np.float64), sum_dy,
                              sum_dy_xhat, training and x.shape[0] > 0, _ROW_BLOCKS)


def batch_norm_forward(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd, *,
                       training, momentum, eps):
    if _storage.is_16bit(x):
        y32 = np.empty(x.shape, np.float32)
        batch_norm_forward(_storage.widen(x), y32, gamma, beta, running_mean, running_var,
                           save_mean, save_invstd, training=training, momentum=momentum, eps=eps)
        _storage.store(y32, y)
        return
    if x.ndim == 2 and x.shape[0] > 0:
        _forward_2d(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd,
                    training, momentum, eps)
        return
    if not training:
        by_size(_forward_eval, x.size)(_ncs(x), _ncs(y), gamma, beta, running_mean,
                                       running_var, save_mean, save_invstd, eps)
        return
    update = running_mean is not None
    if not update:  # numba needs arrays in every slot
        running_mean = running_var = np.empty(0, dtype=x.dtype)
    by_size(_forward_train, x.size)(_ncs(x), _ncs(y), gamma, beta, running_mean, running_var,
                                    save_mean, save_invstd, update, momentum, eps)


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, *, training):
    if _storage.is_16bit(x):
        dx32 = np.empty(x.shape, np.float32)
        batch_norm_backward(_storage.widen(dy), _storage.widen(x), gamma, save_mean, save_invstd,
                            dx32, dgamma, dbeta, training=training)
        _storage.store(dx32, dx)
        return
    if x.ndim == 2 and x.shape[0] > 0:
        _backward_2d(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training)
        return
    by_size(_backward, x.size)(_ncs(dy), _ncs(x), gamma, save_mean, save_invstd, _ncs(dx), dgamma,
                               dbeta, training)
