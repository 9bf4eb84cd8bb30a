"""Inverted dropout on the GPU (csrc/cuda/dropout.cu): the CPU's Philox
header, so a seed gives the same bit-packed mask on every backend.

Same functions and signatures as ``fastopt/backends/cpp/dropout.py``; the outputs
(``y``, ``mask``, ``dx``) are new cupy arrays on the input's device. 16-bit arrays
run the ``_f16`` / ``_bf16`` kernels, whose scale is float32 (their compute type).
"""
from __future__ import annotations

import numpy as np

from fastopt import _scalars
from fastopt._validate import compute_dtype
from fastopt.backends.cuda import loader

THREADS = 256   # kDropoutThreads in dropout.cu
KERNELS = {
    "forward": "pppqQQTi",
    "backward": "pppqTi",
    "mask": "pqQQ",
}


def _grid(n):
    return loader.grid_size(-(-((n + 7) // 8) // THREADS))


def _aligned(*arrays):
    return int(all(loader.address(a) % 16 == 0 for a in arrays))


def forward(x, p, seed):
    s = _scalars.dropout(p)
    with loader.device_of((x,)):
        y = loader.empty(x.shape, x.dtype)
        mask = loader.empty((x.size + 7) // 8, np.uint8)
        if x.size:
            loader.launch("dropout", f"fastopt_dropout_forward_{loader.suffix(x.dtype)}",
                          _grid(x.size), THREADS, KERNELS["forward"],
                          (x, y, mask, x.size, seed, s.threshold, s.scale, _aligned(x, y)),
                          compute_dtype(x.dtype))
    return y, mask


def backward(dy, mask, p):
    s = _scalars.dropout(p)
    with loader.device_of((dy,)):
        dx = loader.empty(dy.shape, dy.dtype)
        if dy.size:
            loader.launch("dropout", f"fastopt_dropout_backward_{loader.suffix(dy.dtype)}",
                          _grid(dy.size), THREADS, KERNELS["backward"],
                          (dy, mask, dx, dy.size, s.scale, _aligned(dy, dx)),
                          compute_dtype(dy.dtype))
    return dx


def mask(n, p, seed):
    """The mask as a cupy array on the current device."""
    out = loader.empty((n + 7) // 8, np.uint8)
    if n:
        loader.launch("dropout", "fastopt_dropout_mask", _grid(n), THREADS, KERNELS["mask"],
                      (out, n, seed, _scalars.dropout(p).threshold), np.float32)
    return out
