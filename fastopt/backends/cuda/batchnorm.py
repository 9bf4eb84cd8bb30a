"""Batch normalization on the GPU (csrc/cuda/batchnorm.cu).

Same functions and signatures as ``fastopt/backends/cpp/batchnorm.py``: validated
cupy arrays in, outputs allocated by ``fastopt.batchnorm`` filled. Forward:
3 launches in training (per-piece Welford statistics, per-channel finalize,
normalize), 2 in eval; backward: 3 (per-piece sums, finalize, dx). Pieces are
``PIECE`` values of one channel, so the split depends on the shape alone.
``(N, C)`` input with ``C >= 32`` takes the kernels' rows layout (32 adjacent
channels per block, coalesced): pieces of ``ROWS_PIECE`` rows, a grid of
(pieces, channel tiles of 32).
A 16-bit ``x`` runs the ``_f16`` / ``_bf16`` kernels (float32 gamma, beta, statistics).
"""
from __future__ import annotations

import math

import numpy as np

from fastopt.backends.cuda import loader

PIECE = 8192          # values of one channel per block (a function of the shape only)
ROWS_PIECE = 1024     # rows per block in the (N, C) rows layout
LANES = 32            # kBnLanes: channels per block in the rows layout
THREADS = 256         # kBnThreads in batchnorm.cu
_MAX_GRID_Y = 65535

_SHAPE = "qqqqq"      # M, C, S, piece_len, P
KERNELS = {
    "stats": "pp" + _SHAPE,
    "finalize_forward": "pqqppppppp" + "ddi",
    "normalize": "ppp" + _SHAPE,
    "backward_sums": "pppp" + _SHAPE,
    "finalize_backward": "pqqppppppdi",
    "dx": "pppp" + _SHAPE + "i",
}


def rows_layout(C, S):
    """bn_rows_layout in batchnorm.cu: (N, C) input with at least LANES channels."""
    return S == 1 and C >= LANES


def geometry(shape):
    """(M, C, S, piece, P): values per channel, channels, spatial size, values per piece,
    pieces per channel."""
    n, c = shape[0], shape[1]
    s = math.prod(shape[2:])
    m = n * s
    piece = ROWS_PIECE if rows_layout(c, s) else PIECE
    return m, c, s, piece, -(-m // piece)


def _launch(name, grid, values, dtype):
    loader.launch("batchnorm", f"fastopt_bn_{name}_{loader.suffix(dtype)}", grid, THREADS,
                  KERNELS[name], values, dtype)


def _grid2(P, C, S):
    """(pieces, channels or channel tiles) grid; kernels loop when a dimension is capped."""
    tiles = -(-C // LANES) if rows_layout(C, S) else C
    return (loader.grid_size(P), min(tiles, _MAX_GRID_Y))


def batch_norm_forward(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd, *,
                       training, momentum, eps):
    M, C, S, piece, P = geometry(x.shape)
    if C == 0:
        return
    dtype = x.dtype
    with loader.device_of((x,)):
        consts = loader.empty(3 * C, np.float64)   # mean, scale, beta per channel
        if training:
            part = loader.empty(3 * C * max(P, 1), np.float64)
            if P:
                _launch("stats", _grid2(P, C, S), (x, part, M, C, S, piece, P), dtype)
        else:
            part = consts  # unused
        _launch("finalize_forward", loader.grid_size(C),
                (part, P if training else 0, C, gamma, beta, running_mean, running_var, save_mean,
                 save_invstd, consts, momentum, eps, training), dtype)
        if P:
            _launch("normalize", _grid2(P, C, S), (x, y, consts, M, C, S, piece, P), dtype)


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, *, training):
    M, C, S, piece, P = geometry(x.shape)
    if C == 0:
        return
    dtype = x.dtype
    with loader.device_of((x,)):
        part = loader.empty(2 * C * max(P, 1), np.float64)
        consts = loader.empty(4 * C, np.float64)
        if P:
            _launch("backward_sums", _grid2(P, C, S), (dy, x, save_mean, part, M, C, S, piece, P),
                    dtype)
        _launch("finalize_backward", loader.grid_size(C),
                (part, P, C, gamma, save_mean, save_invstd, dgamma, dbeta, consts, float(M),
                 training), dtype)
        if P:
            _launch("dx", _grid2(P, C, S), (dy, x, dx, consts, M, C, S, piece, P, training), dtype)
