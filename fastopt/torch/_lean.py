"""The short road of the batch norm ops' kernels (:mod:`fastopt.torch.ops`) for the common
case: CPU float32/float64 tensors, per-channel tensors of the input's dtype, ``x`` (and
``dy``) contiguous or channels-last.

Such a call goes straight to fastopt's native fast path
(``fastopt._core.batch_norm_forward_fast`` / ``_backward_fast``, the same C++ checks
``fastopt.batch_norm_forward`` runs first) on NumPy views of the tensors. The general road
(torch-named checks, dtype widening, copies of other layouts, the validated Python entry)
costs about 150 us of Python a call under load, as much as the kernels of a
``(256, 2048)`` layer. Every function returns None where the fast path does not take the
call (an empty or one-value batch, another dtype or device, a wrong shape, momentum or eps
out of range, ...); the caller then runs the general road, which raises the torch-named
errors. Nothing is written before the fast path has accepted the call.
"""
from __future__ import annotations

import math

import torch

from fastopt.functional.batchnorm import _backward_fast, _filled, _forward_fast
from fastopt.torch._io import channels_last, threads, unrows

_FLOATS = (torch.float32, torch.float64)


def _same(x, *others):
    """x is a CPU float32/float64 tensor and every other tensor (or None) a CPU one of
    its dtype."""
    if x.dtype not in _FLOATS or not x.is_cpu:
        return False
    return all(t is None or (t.dtype == x.dtype and t.is_cpu) for t in others)


def _rows(t, perm):
    """The kernels' view of ``t`` (detached): itself when contiguous, the ``(M, C)`` rows
    of its memory when channels-last (``perm``); None for any other layout."""
    t = t.detach()
    if perm is None:
        return t.numpy() if t.is_contiguous() else None
    t = t.permute(perm)
    return t.reshape(-1, t.shape[-1]).numpy() if t.is_contiguous() else None


def _np(t):
    return None if t is None else t.detach().numpy()


def forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """``(y, save_mean, save_invstd)`` of batch norm, the running statistics updated in
    place in training (the caller bumps their version counters), or None."""
    if (_forward_fast is None or not _same(x, weight, bias, running_mean, running_var)
            or not (0.0 <= momentum <= 1.0 and 0.0 < eps < math.inf)):
        return None
    perm = channels_last(x)
    xa = _rows(x, perm)
    if xa is None:
        return None
    out = threads(_forward_fast, xa, _filled(xa, _np(weight), 1.0), _filled(xa, _np(bias), 0.0),
                   _np(running_mean), _np(running_var), bool(training), float(momentum),
                   float(eps), "auto")
    if out is None:
        return None
    y, mean, invstd = out
    return unrows(y, x, perm), torch.from_numpy(mean), torch.from_numpy(invstd)


def backward(dy, x, weight, save_mean, save_invstd, training):
    """``(dx, dweight, dbias)``, ``dx`` in ``x``'s layout, or None (also when ``dy`` is
    not stored as ``x`` is)."""
    if _backward_fast is None or not _same(x, dy, weight, save_mean, save_invstd):
        return None
    perm = channels_last(x)
    xa, dya = _rows(x, perm), _rows(dy, perm)
    if xa is None or dya is None:
        return None
    out = threads(_backward_fast, dya, xa, _filled(xa, _np(weight), 1.0), _np(save_mean),
                   _np(save_invstd), bool(training), "auto")
    if out is None:
        return None
    dx, dw, db = out
    return unrows(dx, x, perm), torch.from_numpy(dw), torch.from_numpy(db)
