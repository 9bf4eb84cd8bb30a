"""EMA of parameters and gradient-norm clipping (two passes: the norm, then
the scaling); NumPy and torch baselines."""
from __future__ import annotations

import math
from typing import List

import numpy as np

import fastopt
from fastopt.bench.registry import Kernel, Traffic, as_torch, rand

EMA_DECAY = 0.999
# max_norm = 0: every call clips (coef = 0 / (norm + 1e-6) = 0 < 1), so every
# runner does both passes on every call. With a positive max_norm the first
# call brings the norm under it and later calls skip the scaling pass (fastopt,
# torch's coefficient clamp and the NumPy baselines alike), timing 4 B instead
# of 12. The gradients are zeros after the first call: written pages, real
# traffic, and no loop here has a data-dependent fast path.
MAX_NORM = 0.0


def _ema_setup(n, dtype, rng):
    return {"avg": rand(rng, n, dtype), "param": rand(rng, n, dtype)}


def _ema(a, backend):
    fn = fastopt.ema_update
    avg, p = a["avg"], a["param"]
    return lambda: fn(avg, p, EMA_DECAY, backend=backend)


def _plain_ema(a):
    st = {"avg": a["avg"]}
    p = a["param"]

    def run():
        st["avg"] = EMA_DECAY * st["avg"] + (1 - EMA_DECAY) * p
    return run


def _out_ema(a):
    avg, p = a["avg"], a["param"]
    t = np.empty_like(p)

    def run():
        np.multiply(p, 1 - EMA_DECAY, out=t)
        np.multiply(avg, EMA_DECAY, out=avg)
        np.add(avg, t, out=avg)
    return run


def _torch_ema(a):
    import torch
    avg, p = as_torch(a["avg"]), as_torch(a["param"])
    return lambda: torch._foreach_lerp_([avg], [p], 1 - EMA_DECAY)


def _clip_setup(n, dtype, rng):
    return {"grad": rand(rng, n, dtype)}


def _clip(a, backend):
    fn = fastopt.clip_grad_norm
    g = a["grad"]
    return lambda: fn([g], MAX_NORM, backend=backend)


def _plain_clip(a):
    g = a["grad"]

    def run():
        norm = np.sqrt(np.sum(g ** 2))
        coef = MAX_NORM / (norm + 1e-6)
        if coef < 1:
            g[...] *= coef
        return norm
    return run


def _out_clip(a):
    g = a["grad"]

    def run():
        norm = math.sqrt(float(np.dot(g, g)))
        coef = MAX_NORM / (norm + 1e-6)
        if coef < 1:
            np.multiply(g, coef, out=g)
        return norm
    return run


def _torch_clip(a):
    import torch
    g = as_torch(a["grad"])
    p = torch.nn.Parameter(torch.empty(g.shape, dtype=g.dtype))  # only .grad is read
    p.grad = g
    return lambda: torch.nn.utils.clip_grad_norm_([p], MAX_NORM, foreach=True)


def kernels() -> List[Kernel]:
    return [
        Kernel("ema", "utils", "ema_update", "EMA of parameters, decay 0.999",
               (Traffic(("param",), ("avg",)),), _ema_setup, _ema,
               {"numpy-plain": _plain_ema, "numpy-out": _out_ema, "torch": _torch_ema}),
        Kernel("clip-norm", "utils", "clip_grad_norm",
               "clip_grad_norm, clipping every call (norm pass + scale pass)",
               (Traffic(("grad",)), Traffic((), ("grad",))), _clip_setup, _clip,
               {"numpy-plain": _plain_clip, "numpy-out": _out_clip, "torch": _torch_clip}),
    ]

