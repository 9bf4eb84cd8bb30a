"""Gradient norms and clipping in plain NumPy, float64 (the oracle of
fastopt.functional.clipping).

Backend functions receive validated lists of arrays and never validate.
``grad_norm`` returns the norm as a Python float; ``scale`` and ``ema``
write back in place.
"""
import math

import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def grad_norm(grads, *, norm_type):
    """(sum |g|^p)^(1/p) over every element of every array; max |g| for inf."""
    if not grads or all(g.size == 0 for g in grads):
        return 0.0
    flat = np.concatenate([np.abs(_f64(g)).ravel() for g in grads])
    if math.isinf(norm_type):
        return float(np.max(flat))
    if norm_type == 2.0:
        return float(np.sqrt(np.sum(flat * flat)))
    if norm_type == 1.0:
        return float(np.sum(flat))
    return float(np.sum(flat ** norm_type) ** (1.0 / norm_type))


def scale(grads, *, coef):
    for g in grads:
        g[...] = _f64(g) * coef
