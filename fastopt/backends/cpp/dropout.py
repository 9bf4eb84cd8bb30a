"""The C++ backend of inverted dropout: allocates the outputs and calls
``fastopt._core`` (csrc/bindings/dropout.cpp)."""
import numpy as np

from fastopt import _core, _scalars


def forward(x, p, seed):
    s = _scalars.dropout(p)
    y = _core.empty(x.shape, x.dtype)
    mask = np.empty((x.size + 7) // 8, dtype=np.uint8)
    _core.dropout_forward(x, y, mask, seed, s.threshold, s.scale)
    return y, mask


def backward(dy, mask, p):
    dx = _core.empty(dy.shape, dy.dtype)
    _core.dropout_backward(dy, mask, dx, _scalars.dropout(p).scale)
    return dx


def mask(n, p, seed):
    out = np.empty((n + 7) // 8, dtype=np.uint8)
    _core.dropout_mask(out, n, seed, _scalars.dropout(p).threshold)
    return out
