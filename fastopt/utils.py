"""Weight averaging (EMA) and gradient-norm clipping, fused kernels on every backend.

``ema_update`` is one pass over the average and the parameters;
``clip_grad_norm`` is one reduction pass (deterministic: fixed blocks, double
accumulators merged in order, whatever the thread count) and, when the norm
exceeds ``max_norm``, one scaling pass. Both take a single array or a list of
arrays (one native call for the whole list).
"""
from __future__ import annotations

import math

import numpy as np

from fastopt import _backends, _validate as v


def _module(checked, backend):
    return _backends.module("utils", _backends.choose(v.backend(backend), checked.on_gpu))


def ema_update(avg, param, decay, backend="auto"):
    """Exponential moving average of parameters, in place::

        avg = decay * avg + (1 - decay) * param

    The update of ``torch.optim.swa_utils.AveragedModel`` with
    ``multi_avg_fn=get_ema_multi_avg_fn(decay)`` (the lecture notes' "running
    average of parameters": keep a second copy of the weights that decays
    exponentially). ``avg`` and ``param`` are arrays or lists of arrays of
    the same shapes and dtype; ``0 <= decay <= 1``.

    >>> avg = p.copy()
    >>> for _ in range(steps): train_step(p); fastopt.ema_update(avg, p, 0.999)
    """
    c = v.arrays(("avg", avg, True), ("param", param, False))
    decay = v.unit_interval("decay", decay, closed_right=True)
    _module(c, backend).ema(c["avg"], c["param"], decay=decay)


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


def clip_grad_norm(grads, max_norm, norm_type=2.0, error_if_nonfinite=False, backend="auto"):
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

    >>> total = fastopt.clip_grad_norm(grads, max_norm=1.0)
    """
    c = v.arrays(("grads", grads, True))
    max_norm = v.at_least("max_norm", max_norm)
    norm_type = _norm_type(norm_type)
    error_if_nonfinite = v.flag("error_if_nonfinite", error_if_nonfinite)
    mod = _module(c, backend)
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


class EMA:
    """An exponential moving average of a list of parameters.

    Follows ``torch.optim.swa_utils.AveragedModel(model,
    multi_avg_fn=get_ema_multi_avg_fn(decay))``: the average starts as a copy
    of the parameters; the first :meth:`update` copies them again, every
    later one runs ``avg = decay * avg + (1 - decay) * param`` over all
    parameters in one :func:`ema_update` call.

    >>> ema = fastopt.EMA(params, decay=0.999)
    >>> for _ in range(steps): opt.step(grads); ema.update()
    >>> ema.copy_to(params)          # evaluate with the averaged weights
    """

    def __init__(self, params, decay=0.999, backend="auto"):
        params = list(params)
        self.decay = v.unit_interval("decay", decay, closed_right=True)
        self.backend = v.backend(backend)
        c = v.arrays(("params", params, False))
        self.params = c["params"]
        self.averaged = [p.copy() for p in self.params]
        self.n_averaged = 0

    def update(self):
        """Folds the current parameters into the average."""
        if self.n_averaged == 0:
            for avg, p in zip(self.averaged, self.params):
                avg[...] = p
        else:
            ema_update(self.averaged, self.params, self.decay, backend=self.backend)
        self.n_averaged += 1

    def copy_to(self, params=None):
        """Copies the average into ``params`` (default: the tracked parameters)."""
        params = self.params if params is None else list(params)
        if len(params) != len(self.averaged):
            raise ValueError(f"got {len(params)} arrays, the average has {len(self.averaged)}")
        for p, avg in zip(params, self.averaged):
            p[...] = avg

    def state_dict(self):
        return {"decay": self.decay, "n_averaged": self.n_averaged,
                "averaged": [a.copy() for a in self.averaged]}

    def load_state_dict(self, state):
        """Loads a :meth:`state_dict`; raises (changing nothing) if it does not fit."""
        averaged = list(state["averaged"])
        if len(averaged) != len(self.averaged):
            raise ValueError(f"state has {len(averaged)} averaged arrays, expected {len(self.averaged)}")
        new = []
        for i, (a, mine) in enumerate(zip(averaged, self.averaged)):
            a = np.asarray(a)
            if a.shape != mine.shape or a.dtype != mine.dtype:
                raise ValueError(f"averaged[{i}] has shape {a.shape} and dtype {a.dtype}; "
                                 f"expected {mine.shape} {mine.dtype}")
            new.append(a)
        decay = v.unit_interval("decay", state["decay"], closed_right=True)
        n = int(state["n_averaged"])
        if n < 0:
            raise ValueError(f"Invalid n_averaged value: {n}")
        for mine, a in zip(self.averaged, new):
            mine[...] = a
        self.decay, self.n_averaged = decay, n
