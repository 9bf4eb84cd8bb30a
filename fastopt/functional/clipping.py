"""Gradient norms and clipping, fused kernels on every backend.

``clip_grad_norm`` is one reduction pass (deterministic: fixed blocks, double
accumulators merged in order, whatever the thread count) and, when the norm
exceeds ``max_norm``, one scaling pass. It takes a single array or a list of
arrays (one native call for the whole list).
"""
from __future__ import annotations

import math


from fastopt import backends as _backends, _validate as v


def _module(checked, backend):
    return _backends.module("clipping", _backends.choose(v.backend(backend), checked.on_gpu))


def _norm_type(norm_type):
    norm_type = v.real("norm_type", norm_type)
    if not norm_type > 0.0:
        raise ValueError(f"Invalid norm_type value: {norm_type} (must be > 0 or inf)")
    return norm_type


def grad_norm(grads, norm_type=2.0, backend="auto"):
    """The total ``norm_type``-norm of all gradients together, as a float:
    ``(sum over every element of |g|^p)^(1/p)``, ``max |g|`` for ``inf``
    (``torch.nn.utils.get_total_norm``). Reduced in double."""
    c = v.arrays(("grads", grads, False))
    norm_type = _norm_type(norm_type)
    return float(_module(c, backend).grad_norm(c["grads"], norm_type=norm_type))


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
    c = v.arrays(("grads", grads, True))
    max_norm = v.at_least("max_norm", max_norm)
    norm_type = _norm_type(norm_type)
    error_if_nonfinite = v.flag("error_if_nonfinite", error_if_nonfinite)
    sync = v.flag("sync", sync)
    mod = _module(c, backend)
    if not sync and c.on_gpu:
        if error_if_nonfinite:
            raise ValueError("error_if_nonfinite=True needs the norm on the host: it cannot be "
                             "combined with sync=False")
        return mod.clip_grad_norm_device(c["grads"], max_norm=max_norm, norm_type=norm_type)
    norm = float(mod.grad_norm(c["grads"], norm_type=norm_type))
    if error_if_nonfinite and not math.isfinite(norm):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients is non-finite, "
                           f"so it cannot be clipped. To disable this error and scale the "
                           f"gradients by the non-finite norm anyway, set "
                           f"error_if_nonfinite=False")
    coef = max_norm / (norm + 1e-6)
    if not coef >= 1.0:  # also NaN: torch multiplies by the NaN coefficient
        mod.scale(c["grads"], coef=coef)
    return norm
