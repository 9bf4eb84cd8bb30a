"""Parameter averaging: ``ema_update``, one fused pass over the average and the
parameters, on every backend. It takes a single array or a list of arrays (one
native call for the whole list)."""
from __future__ import annotations

from fastopt import backends as _backends, _validate as v
from fastopt._entry import entry
from fastopt._specs import KERNELS

try:  # native fast path (csrc/bindings/averaging.cpp); False for anything not plainly valid
    from fastopt._core import ema_update_fast as _ema_fast
except ImportError:  # pragma: no cover - extension not built
    _ema_fast = None


@entry("ema_update", "_ema_fast", "avg, param, decay, backend")
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
    c, h = v.call(KERNELS["ema_update"], locals())
    _backends.module("averaging", _backends.choose(h["backend"], c.on_gpu)).ema(c["avg"], c["param"], decay=h["decay"])
