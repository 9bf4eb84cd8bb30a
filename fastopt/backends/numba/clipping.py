"""EMA and gradient clipping in Numba, mirroring fastopt/backends/numpy/utils.py.

Scalars go in the array's dtype. The norm is reduced in fixed blocks of
``BLOCK`` elements per array, each summed sequentially in double, and the
block partials are added in order: the result does not depend on the number
of threads. Arrays below ``_serial.SERIAL_BELOW`` elements run the serial
builds (same bits, no thread wake-up).
"""
import math

import numpy as np
from numba import prange

from fastopt.backends.numba._serial import by_size, compile_pair

BLOCK = 1 << 14
L2, L1, INF, P = 0, 1, 2, 3


def _block_partials_body(g, kind, p):
    nblocks = (g.size + BLOCK - 1) // BLOCK
    out = np.zeros(nblocks, dtype=np.float64)
    for b in prange(nblocks):
        lo = b * BLOCK
        hi = min(lo + BLOCK, g.size)
        acc = 0.0
        for i in range(lo, hi):
            a = abs(np.float64(g[i]))
            if kind == L2:
                acc += a * a
            elif kind == L1:
                acc += a
            elif kind == INF:
                if a > acc or a != a:
                    acc = a
            else:
                acc += a ** p
        out[b] = acc
    return out


def _scale_body(g, coef):
    for i in prange(g.size):
        g[i] = g[i] * coef


_block_partials = compile_pair(_block_partials_body)
_scale = compile_pair(_scale_body)


def _kind(norm_type):
    if math.isinf(norm_type):
        return INF
    return {2.0: L2, 1.0: L1}.get(norm_type, P)


def grad_norm(grads, *, norm_type):
    kind = _kind(norm_type)
    acc = 0.0
    for g in grads:
        if g.size == 0:
            continue
        for part in by_size(_block_partials, g.size)(g.reshape(-1), kind, float(norm_type)):
            if kind == INF:
                acc = part if (part > acc or part != part) else acc
            else:
                acc += part
    if kind == L2:
        return math.sqrt(acc)
    if kind in (L1, INF):
        return acc
    return acc ** (1.0 / norm_type)


def scale(grads, *, coef):
    for g in grads:
        if g.size:
            by_size(_scale, g.size)(g.reshape(-1), g.dtype.type(coef))
