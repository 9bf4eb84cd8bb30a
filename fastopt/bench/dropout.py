"""Inverted dropout forward and backward, p = 0.5, with a bit mask; NumPy and
torch baselines. Both return new arrays: timed under an output policy
(registry.py)."""
from __future__ import annotations

from typing import List

import numpy as np

import fastopt
from fastopt.bench.registry import Kernel, Traffic, as_torch, buffer, rand

DROP_P = 0.5
SEED = 1234


def _drop_setup(n, dtype, rng):
    x = rand(rng, n, dtype)
    keep = rng.random(n) >= DROP_P
    return {"x": x, "dy": rand(rng, n, dtype),
            "mask": np.packbits(keep, bitorder="little"),
            "mask_bool": keep, "mask_float": keep / (1 - DROP_P),  # the lecture's float64 mask
            "_twin_y": np.empty_like(x), "_twin_mask": np.empty((n + 7) // 8, np.uint8)}


def _drop_fwd(a, backend):
    fn = fastopt.dropout_forward
    x = a["x"]
    return lambda: fn(x, DROP_P, seed=SEED, training=True, backend=backend)


def _drop_bwd(a, backend):
    fn = fastopt.dropout_backward
    dy, mask = a["dy"], a["mask"]
    return lambda: fn(dy, mask, DROP_P, backend=backend)


def _plain_drop_fwd(a, fresh):
    x = a["x"]
    p = 1 - DROP_P  # the lecture's p is the keep probability

    def run():  # as written in the notes: rand() is float64, so is the mask and H1
        u1 = (np.random.rand(*x.shape) < p) / p
        return x * u1, u1
    return run


def _out_drop_fwd(a, fresh):
    x = a["x"]
    keep = 1 - DROP_P
    gen = np.random.default_rng(SEED)
    u = np.empty(x.shape, x.dtype)
    out_m, out_y = buffer(x, fresh, dtype=np.bool_), buffer(x, fresh)

    def run():  # kept in the input's dtype, no float64 promotion
        m, y = out_m(), out_y()
        gen.random(out=u, dtype=x.dtype)
        np.less(u, keep, out=m)
        np.multiply(x, m, out=y)
        np.multiply(y, 1 / keep, out=y)
        return y, m
    return run


def _plain_drop_bwd(a, fresh):
    dy, u1 = a["dy"], a["mask_float"]
    return lambda: dy * u1


def _out_drop_bwd(a, fresh):
    dy, m = a["dy"], a["mask_bool"]
    out = buffer(dy, fresh)
    scale = 1 / (1 - DROP_P)

    def run():
        dx = out()
        np.multiply(dy, m, out=dx)
        np.multiply(dx, scale, out=dx)
        return dx
    return run


def _torch_drop_fwd(a, fresh):
    """What ``F.dropout(training=True)`` runs under autograd; ``.out`` when cached."""
    import torch
    x = as_torch(a["x"])
    op = torch.ops.aten.native_dropout
    if fresh:
        return lambda: op(x, DROP_P, True)
    y, m = torch.empty_like(x), torch.empty(x.shape, dtype=torch.bool)
    return lambda: op.out(x, DROP_P, True, out0=y, out1=m)


def _torch_drop_bwd(a, fresh):
    import torch
    dy, m = as_torch(a["dy"]), as_torch(a["mask_bool"])
    op = torch.ops.aten.native_dropout_backward
    if fresh:
        return lambda: op(dy, m, 1 / (1 - DROP_P))
    dx = torch.empty_like(dy)
    return lambda: op.out(dy, m, 1 / (1 - DROP_P), out=dx)


def kernels() -> List[Kernel]:
    return [
        Kernel("drop-forward", "dropout", "dropout_forward", "inverted dropout forward, p = 0.5",
               (Traffic(("x",), (), ("_twin_y",), None, "_twin_mask"),), _drop_setup, _drop_fwd,
               {"numpy-plain": _plain_drop_fwd, "numpy-out": _out_drop_fwd,
                "torch": _torch_drop_fwd}, allocates=True),
        Kernel("drop-backward", "dropout", "dropout_backward", "inverted dropout backward",
               (Traffic(("dy",), (), ("_twin_y",), "mask"),), _drop_setup, _drop_bwd,
               {"numpy-plain": _plain_drop_bwd, "numpy-out": _out_drop_bwd,
                "torch": _torch_drop_bwd}, allocates=True),
    ]
