"""Gradient norms and clipping, fused kernels on every backend.

``clip_grad_norm`` is one reduction pass (deterministic: fixed blocks, double
accumulators merged in order, whatever the thread count) and, when the norm
exceeds ``max_norm``, one scaling pass. It takes a single array or a list of
arrays (one native call for the whole list).
"""
from __future__ import annotations

import math


from fastopt import backends as _backends, _validate as v
from fastopt._entry import entry
from fastopt._specs import KERNELS

try:  # native fast paths (csrc/bindings/clipping.cpp); None for anything not plainly valid
    from fastopt._core import clip_grad_norm_fast as _clip_fast, grad_norm_fast as _norm_fast
except ImportError:  # pragma: no cover - extension not built
    _clip_fast = _norm_fast = None


def _module(checked, backend):
    return _backends.module("clipping", _backends.choose(backend, checked.on_gpu))


@entry("grad_norm", "_norm_fast", "grads, norm_type, backend", returns_result=True)
def grad_norm(grads, norm_type=2.0, backend="auto"):
    """The total ``norm_type``-norm of all gradients together, as a float:
    ``(sum over every element of |g|^p)^(1/p)``, ``max |g|`` for ``inf``
    (``torch.nn.utils.get_total_norm``). Reduced in double."""
    c, h = v.call(KERNELS["grad_norm"], locals())
    return float(_module(c, h["backend"]).grad_norm(c["grads"], norm_type=h["norm_type"]))


@entry("clip_grad_norm", "_clip_fast",
       "grads, max_norm, norm_type, error_if_nonfinite, backend, sync", returns_result=True)
def clip_grad_norm(grads, max_norm, norm_type=2.0, error_if_nonfinite=False, backend="auto", *,
                   sync=True):
    """Scales gradients in place so that their total norm is at most ``max_norm``;
    returns the total norm before clipping (a float).

    ::

        norm = (sum |g|^p) ** (1/p)          (max |g| when norm_type is inf)
        coef = min(1, max_norm / (norm + 1e-6))
        g *= coef                            (skipped when coef == 1: a no-op)

    Equals ``torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)``
    applied to the parameters' ``.grad``: one reduction pass over all the
    gradients (deterministic: fixed blocks, double accumulators merged in a
    fixed order, whatever the thread count) and one scaling pass.
    ``error_if_nonfinite=True`` raises ``RuntimeError`` on a NaN/inf norm
    before anything is scaled.

    ``sync=False`` (GPU arrays): no host synchronization. The norm stays on
    the device and is returned as a 0-d float64 cupy array; the scaling
    launch reads it and applies ``min(1, max_norm / (norm + 1e-6))`` on the
    device (bit-identical to ``sync=True``), so the call can also be captured
    in a CUDA graph. It cannot be combined with ``error_if_nonfinite=True``
    (that check needs the norm on the host). On CPU arrays ``sync`` changes
    nothing (a float is returned).

    >>> total = fastopt.clip_grad_norm(grads, max_norm=1.0)
    >>> total_on_gpu = fastopt.clip_grad_norm(cupy_grads, 1.0, sync=False)
    """
    c, h = v.call(KERNELS["clip_grad_norm"], locals())
    max_norm, norm_type = h["max_norm"], h["norm_type"]
    mod = _module(c, h["backend"])
    if not h["sync"] and c.on_gpu:
        if h["error_if_nonfinite"]:
            raise ValueError("error_if_nonfinite=True needs the norm on the host: it cannot be "
                             "combined with sync=False")
        return mod.clip_grad_norm_device(c["grads"], max_norm=max_norm, norm_type=norm_type)
    return clip(mod, c["grads"], max_norm, norm_type, h["error_if_nonfinite"])


def clip(mod, grads, max_norm, norm_type, error_if_nonfinite):
    """clip_grad_norm on validated CPU arrays with backend module ``mod`` (also the
    numba fast path's, fastopt/backends/numba/_fast.py)."""
    norm = float(mod.grad_norm(grads, norm_type=norm_type))
    if error_if_nonfinite and not math.isfinite(norm):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients is non-finite, "
                           f"so it cannot be clipped. To disable this error and scale the "
                           f"gradients by the non-finite norm anyway, set "
                           f"error_if_nonfinite=False")
    coef = max_norm / (norm + 1e-6)
    if not coef >= 1.0:  # also NaN: torch multiplies by the NaN coefficient
        mod.scale(grads, coef=coef)
    return norm
