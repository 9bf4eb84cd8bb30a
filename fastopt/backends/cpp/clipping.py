"""Gradient norms and clipping: thin adapters to ``fastopt._core``."""
import math

from fastopt import _core

# NormKind in csrc/include/fastopt/clipping.h
L2, L1, INF, P = 0, 1, 2, 3


def norm_kind(norm_type):
    if math.isinf(norm_type):
        return INF
    return {2.0: L2, 1.0: L1}.get(norm_type, P)


def grad_norm(grads, *, norm_type):
    if not grads:
        return 0.0
    return _core.grad_norm(grads, norm_kind(norm_type), norm_type)


def scale(grads, *, coef):
    if grads:
        _core.scale(grads, coef)
