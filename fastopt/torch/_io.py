"""Tensors in and out of fastopt's kernels for the torch layers (:mod:`fastopt.torch.ops`):
NumPy views of CPU tensors (DLPack otherwise), the channels-last batch norm layout, dropout's
memory order and the thread count the kernels run on."""
from __future__ import annotations

import os

import ml_dtypes
import numpy as np
import torch

from fastopt._arrays import torch_numpy
from fastopt.torch._layout import memory_order


def arr(t):
    """What fastopt's functions receive for a contiguous tensor: a NumPy view of a CPU
    tensor (zero-copy; bfloat16, which NumPy lacks, as ``ml_dtypes.bfloat16`` through
    an int16 view), the tensor itself otherwise (fastopt takes it by DLPack)."""
    t = t.detach()
    return torch_numpy(t) if t.device.type == "cpu" else t


def tensor(a):
    """fastopt's output as a tensor sharing its memory."""
    if isinstance(a, np.ndarray):
        if a.dtype == ml_dtypes.bfloat16:
            return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(a)
    return torch.from_dlpack(a)


def opt_arr(t):
    return None if t is None else arr(t)


def channels_last(x):
    """``(0, 2, ..., d-1, 1)`` when ``x`` (3-D or more) is stored channels-last, that
    is as a contiguous ``(N, *spatial, C)`` array (``torch.channels_last``, and what
    inductor makes of a convolution's output on the CPU), else None."""
    d = x.dim()
    if d < 3 or x.is_contiguous():
        return None
    perm = (0, *range(2, d), 1)
    return perm if x.permute(perm).is_contiguous() else None


def rows(t, perm):
    """What the batch norm kernels read for ``t``: its NumPy view, contiguous
    ``(N, C, *spatial)``, or, stored channels-last (``perm``), the ``(M, C)`` rows
    of that memory (no copy; channel statistics over rows are the same). Other
    strides, and a ``t`` not stored like ``x``, are copied."""
    if perm is None:
        return arr(t.contiguous())
    return arr(t.permute(perm).contiguous().reshape(-1, t.shape[1]))


def unrows(a, x, perm):
    """A kernel output for input ``x`` as a tensor of ``x``'s shape and layout."""
    t = tensor(a)
    if perm is None:
        return t
    return t.view([x.shape[i] for i in perm]).permute(inverse(perm))


def inverse(perm):
    """The permutation that undoes ``perm`` (``t.permute(perm).permute(inverse(perm))`` is
    ``t``)."""
    inv = [0] * len(perm)
    for k, d in enumerate(perm):
        inv[d] = k
    return inv


def empty_as(x, perm=None):
    """An empty tensor shaped like ``x`` in the layout the kernels return (fake kernels)."""
    perm = channels_last(x) if perm is None else perm
    if perm is None:
        return x.new_empty(x.shape)
    return x.new_empty([x.shape[i] for i in perm]).permute(inverse(perm))


def output_order(t):
    """The memory order an output computed from ``t`` takes: ``t``'s own for a dense ``t``
    (``()``: contiguous, :func:`fastopt.torch._layout.memory_order`), contiguous for one
    with gaps (as ``torch.empty_like``)."""
    order = memory_order(t)
    return () if order is None else order


def in_order(t, order):
    """``t``'s elements in the memory order ``order`` (of another tensor; ``()``:
    contiguous, see :func:`fastopt.torch._layout.memory_order`) as a contiguous array: a
    view when ``t`` is stored so, else a copy."""
    return arr((t.permute(order) if order else t).contiguous())


def from_order(a, order):
    """A kernel output ``a`` (contiguous, shaped as ``x.permute(order)``) as a tensor of
    ``x``'s shape stored in the memory order ``order``."""
    return tensor(a).permute(inverse(order)) if order else tensor(a)


def empty_in_order(x, order):
    """An empty tensor of ``x``'s shape stored in the memory order ``order`` (what
    :func:`from_order` returns; fake kernels)."""
    if not order:
        return x.new_empty(x.shape)
    return x.new_empty([x.shape[i] for i in order]).permute(inverse(order))


try:
    from fastopt import _core
except ImportError:   # pragma: no cover - extension not built: no cpp threads to set
    _core = None
_PINNED = "FASTOPT_NUM_THREADS" in os.environ


def threads(kernel, *args, **kwargs):
    """Runs ``kernel`` with fastopt's cpp thread count set to torch's
    (``torch.get_num_threads()``), then puts fastopt's back: fastopt's kernels run on
    torch's OpenMP team when torch is loaded, and more parts than torch's own
    threads only contend with them. ``FASTOPT_NUM_THREADS`` in the environment
    pins fastopt's count instead."""
    if _core is None or _PINNED:
        return kernel(*args, **kwargs)
    n, old = torch.get_num_threads(), _core.get_num_threads()
    if n == old:
        return kernel(*args, **kwargs)
    _core.set_num_threads(n)
    try:
        return kernel(*args, **kwargs)
    finally:
        _core.set_num_threads(old)
