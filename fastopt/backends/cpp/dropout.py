"""The C++ backend of inverted dropout: allocates the outputs and calls
``fastopt._core`` (csrc/bindings/dropout.cpp); 16-bit arrays through their
entry points (fastopt/backends/cpp/_storage.py; the scale is float32 there)."""
import numpy as np

from fastopt import _core, _scalars
from fastopt.backends.cpp._storage import entry


def forward(x, p, seed):
    s = _scalars.dropout(p)
    y = _core.empty(x.shape, x.dtype)
    mask = np.empty((x.size + 7) // 8, dtype=np.uint8)
    run, view = entry("dropout_forward", x.dtype)
    run(view(x), view(y), mask, seed, s.threshold, s.scale)
    return y, mask


def backward(dy, mask, p):
    dx = _core.empty(dy.shape, dy.dtype)
    run, view = entry("dropout_backward", dy.dtype)
    run(view(dy), mask, view(dx), _scalars.dropout(p).scale)
    return dx


def mask(n, p, seed):
    out = np.empty((n + 7) // 8, dtype=np.uint8)
    _core.dropout_mask(out, n, seed, _scalars.dropout(p).threshold)
    return out
