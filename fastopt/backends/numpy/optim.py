"""Optimizer steps in plain NumPy, float64 (torch.optim 2.x formulas, docs/reference.md s.2).

Each function takes validated lists of arrays (a state list may be None when
the option that needs it is off), computes in float64 and writes the results
back into the arrays in place.
"""
import math

import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _grad(g, x, weight_decay, maximize):
    """The effective gradient: negated when maximizing, plus L2 weight decay."""
    g = -g if maximize else g
    if weight_decay != 0.0:
        g = g + weight_decay * x
    return g


def sgd(params, grads, bufs, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
        first_step):
    for i, param in enumerate(params):
        x = _f64(param)
        g = _grad(_f64(grads[i]), x, weight_decay, maximize)
        if momentum != 0.0:
            buf = g if first_step else momentum * _f64(bufs[i]) + (1.0 - dampening) * g
            d = g + momentum * buf if nesterov else buf
            bufs[i][...] = buf
        else:
            d = g
        param[...] = x - lr * d


def rmsprop(params, grads, square_avgs, grad_avgs, bufs, *, lr, alpha, eps, weight_decay,
            momentum, maximize):
    for i, param in enumerate(params):
        x = _f64(param)
        g = _grad(_f64(grads[i]), x, weight_decay, maximize)
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
        param[...] = x


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps,
         weight_decay, decoupled, maximize):
    bias_correction1 = 1.0 - beta1 ** step
    bias_correction2 = 1.0 - beta2 ** step
    for i, param in enumerate(params):
        x = _f64(param)
        if decoupled:
            x = x * (1.0 - lr * weight_decay)
            g = _grad(_f64(grads[i]), x, 0.0, maximize)
        else:
            g = _grad(_f64(grads[i]), x, weight_decay, maximize)
        m = beta1 * _f64(exp_avgs[i]) + (1.0 - beta1) * g
        v = beta2 * _f64(exp_avg_sqs[i]) + (1.0 - beta2) * g * g
        exp_avgs[i][...] = m
        exp_avg_sqs[i][...] = v
        if max_exp_avg_sqs is not None:
            v = np.maximum(_f64(max_exp_avg_sqs[i]), v)
            max_exp_avg_sqs[i][...] = v
        denom = np.sqrt(v) / math.sqrt(bias_correction2) + eps
        param[...] = x - (lr / bias_correction1) * m / denom


def adagrad(params, grads, state_sums, *, step, lr, lr_decay, eps, weight_decay, maximize):
    clr = lr / (1.0 + (step - 1) * lr_decay)
    for i, param in enumerate(params):
        x = _f64(param)
        g = _grad(_f64(grads[i]), x, weight_decay, maximize)
        state_sum = _f64(state_sums[i]) + g * g
        state_sums[i][...] = state_sum
        param[...] = x - clr * g / (np.sqrt(state_sum) + eps)
