"""Inverted dropout with counter-based, bit-packed masks (docs/reference.md s.4).

``p`` is the **drop** probability (torch/Keras convention; the lecture notes'
``p`` is the keep probability ``1 - p``). At train time each element is kept
with probability ``1 - p`` and scaled by ``1 / (1 - p)``; eval leaves ``x``
untouched. The mask is one bit per element (1-D ``numpy.uint8``, ``ceil(n/8)``
bytes, element ``i`` in bit ``i % 8`` of byte ``i // 8``, C order; unused bits
of the last byte are 0): 32x less memory than a float32 mask, 8x less than
torch's bool mask.

The mask is a pure function of ``(seed, i)``: element ``i`` is kept iff
``w_i >= round(p * 2**32)`` (ties to even, compared in 64-bit integers), where
``w_i`` is word ``i % 4`` of Philox4x32-10 on the counter
``(j & 0xffffffff, j >> 32, 0, 0)``, ``j = i // 4``, with the key
``(seed & 0xffffffff, seed >> 32)``. So one seed gives the same mask, bit for
bit, on every backend and thread count, and the backward (or a later
recomputation) needs only the seed: :func:`dropout_mask`.

Values: kept ``y = x * scale`` with ``scale = 1 / (1 - p)`` computed in double
and rounded once to the array's dtype (so float32 results are the float32
product, identical on every backend); dropped ``y = +0`` (a select: a dropped
NaN gives 0). ``p == 1`` drops everything (no division by zero).
"""
from __future__ import annotations

import math

from fastopt import backends as _backends, _validate as v
from fastopt._entry import entry
from fastopt._specs import KERNELS

try:
    # Native fast path (csrc/bindings/dropout.cpp, csrc/validate/fast_path.h): a plain
    # array of any storage type on the cpp backend; None for everything else (eval mode,
    # a None mask included), which then goes through the validated function.
    from fastopt._core import (dropout_backward_fast as _backward_fast,
                               dropout_forward_fast as _forward_fast)
except ImportError:  # pragma: no cover - extension not built
    _forward_fast = _backward_fast = None


def _module(backend, on_gpu):
    return _backends.module("dropout", _backends.choose(v.backend(backend), on_gpu))


def _refuse_list(name, x):
    # One array per call: each needs its own mask (and seed); a list used to
    # be accepted and all but its first array silently ignored.
    if isinstance(x, (list, tuple)):
        raise TypeError(f"{name} must be one array, got a {type(x).__name__}: call dropout "
                        f"once per array (each with its own seed)")


@entry("dropout_forward", "_forward_fast", "x, p, seed, training, backend", returns_result=True)
def dropout_forward(x, p, *, seed, training=True, backend="auto"):
    """Inverted dropout: returns ``(y, mask)``; ``x`` is not modified.

    ::

        keep_i = w_i(seed) >= round(p * 2**32)          (probability 1 - p)
        y_i    = x_i / (1 - p) if keep_i else 0          (training)
        y, mask = x, None                                (training=False)

    Same as ``torch.nn.functional.dropout(x, p, training)`` in distribution
    (torch draws its mask from its own generator, so the bits differ). The
    lecture notes' ``U = (np.random.rand(*H.shape) < P) / P; H *= U`` is the
    case ``p = 1 - P`` (with a float64 mask instead of bits).

    ``y`` is a new array of ``x``'s shape and dtype (float16, bfloat16, float32 or
    float64, any shape, C-contiguous; 16-bit values are scaled in float32 and rounded
    once); ``mask`` is a new ``numpy.uint8`` array of
    ``ceil(x.size / 8)`` bytes. ``seed`` is an int in ``[0, 2**64)``.

    >>> y, mask = fastopt.dropout_forward(x, 0.5, seed=1234)
    >>> dx = fastopt.dropout_backward(dy, mask, 0.5)
    """
    _refuse_list("x", x)
    c, h = v.call(KERNELS["dropout_forward"], locals())
    mod = _module(h["backend"], c.on_gpu)
    if not h["training"]:
        return x, None
    return mod.forward(c["x"][0], h["p"], h["seed"])


@entry("dropout_backward", "_backward_fast", "dy, mask, p, backend", returns_result=True)
def dropout_backward(dy, mask, p, backend="auto"):
    """Gradient of :func:`dropout_forward`: ``dx = dy / (1 - p)`` where the mask
    bit is set, 0 elsewhere (``dy * mask / (1 - p)``); a new array.

    ``mask=None`` (the eval forward's mask) returns ``dy`` itself. Equals the
    autograd backward of ``torch.nn.functional.dropout``.
    """
    _refuse_list("dy", dy)
    c, h = v.call(KERNELS["dropout_backward"], locals())
    mod = _module(h["backend"], c.on_gpu)
    if mask is None:
        return dy
    g = c["dy"][0]
    mask = v.bit_mask("mask", mask, g.size, c.on_gpu)
    return mod.backward(g, mask, h["p"])


@entry("dropout_mask")
def dropout_mask(shape, p, *, seed, backend="auto"):
    """The mask :func:`dropout_forward` draws for an array of ``shape`` with
    this ``p`` and ``seed``, without the array: ``numpy.uint8`` of
    ``ceil(prod(shape) / 8)`` bytes (bit ``i % 8`` of byte ``i // 8``);
    a ``cupy`` array with ``backend="cuda"``.

    >>> mask = fastopt.dropout_mask(x.shape, 0.5, seed=1234)   # == dropout_forward(...)[1]
    """
    h = v.hypers(KERNELS["dropout_mask"], locals())
    # no array to say where it lives: backend="cuda" asks for a GPU mask
    return _module(h["backend"], h["backend"] == "cuda").mask(math.prod(h["shape"]), h["p"],
                                                              h["seed"])
