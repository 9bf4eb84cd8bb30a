"""Optimizer steps in plain NumPy, float64 (torch.optim 2.x formulas, docs/reference.md s.2).

Each function takes validated lists of arrays (a state list may be None when
the option that needs it is off), computes in float64 and writes the results
back into the arrays in place, each rounded once to its array's type (round to
nearest even: NumPy's float64 -> float16 and ml_dtypes' float64 -> bfloat16
casts are single correct roundings, tests/test_numpy_reference_mixed.py).

Mixed precision (docs/mixed-precision.md): with ``masters`` the update reads
and writes the float32 master and the param receives the master rounded to its
type; ``grad_scale`` divides the gradient first; ``stochastic_rounding`` rounds
the 16-bit param (from its float32 value) with Philox bits of
``(seed, step, index)`` (``fastopt._rounding``).
"""
import math

import numpy as np

from fastopt import _rounding
from fastopt.backends.numpy.dropout import philox4x32_10


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _grad(g, x, weight_decay, maximize, grad_scale=None):
    """The effective gradient: unscaled, negated when maximizing, plus L2 weight decay."""
    if grad_scale is not None:
        g = g / grad_scale
    g = -g if maximize else g
    if weight_decay != 0.0:
        g = g + weight_decay * x
    return g


def sr_words(n, seed, step):
    """The 32-bit Philox word of each of ``n`` elements for stochastic rounding: word
    ``i % 4`` at counter ``(j lo, j hi, step lo, 0x53520000 | step bits 32..47)``,
    ``j = i // 4``, key ``(seed lo, seed hi)``."""
    j = np.arange((n + 3) // 4, dtype=np.uint64)
    words = philox4x32_10(j & np.uint64(0xFFFFFFFF), j >> np.uint64(32), step & 0xFFFFFFFF,
                          0x53520000 | (step >> 32 & 0xFFFF), seed & 0xFFFFFFFF, seed >> 32)
    return np.stack(words, axis=1).reshape(-1)[:n].astype(np.uint32)


class _Params:
    """Where the updated parameters go: param (and master), rounded as the mode says."""

    def __init__(self, params, masters, stochastic_rounding, seed, step):
        self.params, self.masters = params, masters
        self.sr, self.seed, self.step = stochastic_rounding, seed, step

    def read(self, i):
        return _f64(self.params[i] if self.masters is None else self.masters[i])

    def write(self, i, x):
        param = self.params[i]
        if self.masters is not None:
            self.masters[i][...] = x
            param[...] = self.masters[i]           # the float32 master, rounded to nearest even
        elif self.sr and param.dtype.itemsize == 2:   # from the float32 value, as the kernels
            u = np.ascontiguousarray(x, dtype=np.float32).reshape(-1).view(np.uint32)
            r = sr_words(u.size, self.seed, self.step).astype(np.uint64)
            sr = _rounding.f32_to_f16_sr if param.dtype == np.float16 else _rounding.f32_to_bf16_sr
            param.reshape(-1).view(np.uint16)[...] = sr(u.astype(np.uint64), r).astype(np.uint16)
        else:
            param[...] = x


def sgd(params, grads, bufs, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
        first_step, masters=None, grad_scale=None, stochastic_rounding=False, seed=0, step=1):
    out = _Params(params, masters, stochastic_rounding, seed, step)
    for i in range(len(params)):
        x = out.read(i)
        g = _grad(_f64(grads[i]), x, weight_decay, maximize, grad_scale)
        if momentum != 0.0:
            buf = g if first_step else momentum * _f64(bufs[i]) + (1.0 - dampening) * g
            bufs[i][...] = buf
            d = g + momentum * buf if nesterov else buf
        else:
            d = g
        out.write(i, x - lr * d)


def rmsprop(params, grads, square_avgs, grad_avgs, bufs, *, lr, alpha, eps, weight_decay,
            momentum, maximize, masters=None, grad_scale=None, stochastic_rounding=False,
            seed=0, step=1):
    out = _Params(params, masters, stochastic_rounding, seed, step)
    for i in range(len(params)):
        x = out.read(i)
        g = _grad(_f64(grads[i]), x, weight_decay, maximize, grad_scale)
        square_avg = alpha * _f64(square_avgs[i]) + (1.0 - alpha) * g * g
        square_avgs[i][...] = square_avg
        if grad_avgs is not None:
            grad_avg = alpha * _f64(grad_avgs[i]) + (1.0 - alpha) * g
            grad_avgs[i][...] = grad_avg
            avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
        else:
            avg = np.sqrt(square_avg) + eps
        if bufs is not None:
            buf = momentum * _f64(bufs[i]) + g / avg
            bufs[i][...] = buf
            x = x - lr * buf
        else:
            x = x - lr * g / avg
        out.write(i, x)


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps,
         weight_decay, decoupled, maximize, masters=None, grad_scale=None,
         stochastic_rounding=False, seed=0):
    bias_correction1 = 1.0 - beta1 ** step
    bias_correction2 = 1.0 - beta2 ** step
    out = _Params(params, masters, stochastic_rounding, seed, step)
    for i in range(len(params)):
        x = out.read(i)
        if decoupled:
            x = x * (1.0 - lr * weight_decay)
            g = _grad(_f64(grads[i]), x, 0.0, maximize, grad_scale)
        else:
            g = _grad(_f64(grads[i]), x, weight_decay, maximize, grad_scale)
        m = beta1 * _f64(exp_avgs[i]) + (1.0 - beta1) * g
        v = beta2 * _f64(exp_avg_sqs[i]) + (1.0 - beta2) * g * g
        exp_avgs[i][...] = m
        exp_avg_sqs[i][...] = v
        if max_exp_avg_sqs is not None:
            v = np.maximum(_f64(max_exp_avg_sqs[i]), v)
            max_exp_avg_sqs[i][...] = v
        denom = np.sqrt(v) / math.sqrt(bias_correction2) + eps
        out.write(i, x - (lr / bias_correction1) * m / denom)


def adagrad(params, grads, state_sums, *, step, lr, lr_decay, eps, weight_decay, maximize,
            masters=None, grad_scale=None, stochastic_rounding=False, seed=0):
    clr = lr / (1.0 + (step - 1) * lr_decay)
    out = _Params(params, masters, stochastic_rounding, seed, step)
    for i in range(len(params)):
        x = out.read(i)
        g = _grad(_f64(grads[i]), x, weight_decay, maximize, grad_scale)
        state_sum = _f64(state_sums[i]) + g * g
        state_sums[i][...] = state_sum
        out.write(i, x - clr * g / (np.sqrt(state_sum) + eps))
