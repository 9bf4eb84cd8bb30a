"""How the torch drop-in hands tensors to fastopt's kernels: C-contiguous NumPy arrays.

fastopt's kernels take C-contiguous arrays, and every optimizer here is
elementwise, so any layout works once parameter, gradient and state are read
in one common element order. That order is the parameter's memory order: for a
dense parameter (no gaps, no overlap: contiguous, transposed, channels_last)
the dimensions sorted by stride, so the parameter and every tensor with its
strides (``torch.zeros_like(p)`` state) are used in place, zero-copy. A tensor
that does not fit (a strided view ``torch.randn(10, 5, 2)[..., 0]``, a
gradient with other strides) is gathered into a contiguous copy and, when it
is written, scattered back after the step.
"""
from __future__ import annotations

import torch

from fastopt._arrays import torch_numpy


def real(t):
    """``torch.view_as_real`` for complex tensors (what torch's optimizers step on)."""
    return torch.view_as_real(t) if t.is_complex() else t


def memory_order(t):
    """``()`` for a contiguous ``t``; for another dense ``t`` the permutation of its
    dimensions that makes it contiguous; ``None`` when ``t`` has gaps or overlaps."""
    if t.is_contiguous():
        return ()
    sizes, strides = t.shape, t.stride()
    dims = sorted(range(t.dim()), key=lambda d: -strides[d])
    expected = 1
    for d in reversed(dims):
        if sizes[d] != 1:
            if strides[d] != expected:
                return None
            expected *= sizes[d]
    return tuple(dims)


def arranged(t, order):
    """``(array, back)``: ``t`` (real view) in the element order ``order``
    (:func:`memory_order` of its parameter) as a C-contiguous NumPy array. ``back``
    is None when the array is ``t``'s own memory, else the view of ``t`` to copy the
    array back into after an in-place update."""
    view = real(t.detach())
    if order:
        view = view.permute(order)
    if view.is_contiguous():
        return torch_numpy(view), None
    return torch_numpy(view.contiguous()), view


def scatter(backs):
    """Copies gathered arrays back into their tensors: ``[(array, view), ...]``."""
    for array, view in backs:   # (bfloat16 arrays through their bits)
        src = torch.from_numpy(array.view("u2")).view(view.dtype) if view.dtype == torch.bfloat16 \
            else torch.from_numpy(array)
        view.copy_(src)


def step_slab(steps, counts):
    """A NumPy view over all of ``steps`` (0-d CPU tensors) when they are consecutive
    elements of one of the arrays ``counts`` holds (``{data pointer: array}``), so
    that one ``+= 1`` counts them all; else None."""
    if not steps:
        return None
    first = steps[0]
    size = first.element_size()
    base = first.data_ptr()
    for j, s in enumerate(steps):
        if s.dim() != 0 or s.dtype != first.dtype or s.device.type != "cpu" \
                or s.data_ptr() != base + j * size:
            return None
    for start, array in list(counts.items()):
        if array.itemsize == size and start <= base \
                and base + len(steps) * size <= start + array.nbytes:
            lo = (base - start) // size
            return array[lo:lo + len(steps)]
    return None
