"""``fastopt.EMA``: an exponential moving average of a list of parameters
(torch's ``AveragedModel`` with ``get_ema_multi_avg_fn``), on :func:`fastopt.ema_update`."""
from __future__ import annotations

import operator

import numpy as np

from fastopt import _validate as v
from fastopt._arrays import as_array
from fastopt._specs import KERNELS
from fastopt.functional.averaging import ema_update

_DECAY = KERNELS["ema_update"].hyper("decay")   # the class takes the kernel's rule


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
        self.decay = v.check(_DECAY.kind, "decay", decay)
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
        """Copies the average into ``params`` (default: the tracked parameters): arrays
        of the average's shapes and dtypes, writeable, all checked before any is written."""
        params = self.params if params is None else list(params)
        if len(params) != len(self.averaged):
            raise ValueError(f"got {len(params)} arrays, the average has {len(self.averaged)}")
        params = [as_array(p, f"params[{i}]") for i, p in enumerate(params)]   # torch: views
        for i, (p, avg) in enumerate(zip(params, self.averaged)):
            if p.dtype != avg.dtype:
                raise TypeError(f"params[{i}] has dtype {p.dtype}, the average {avg.dtype}")
            if p.shape != avg.shape:   # p[...] = avg would broadcast
                raise ValueError(f"params[{i}] has shape {p.shape}, the average {avg.shape}")
            if not getattr(p.flags, "writeable", True):   # cupy: always writeable
                raise ValueError(f"params[{i}] is read-only")
        for p, avg in zip(params, self.averaged):
            p[...] = avg

    def state_dict(self):
        return {"decay": self.decay, "n_averaged": self.n_averaged,
                "averaged": [a.copy() for a in self.averaged]}

    def load_state_dict(self, state):
        """Loads a :meth:`state_dict`; raises (changing nothing) if it does not fit."""
        if not isinstance(state, dict) or not {"decay", "n_averaged", "averaged"} <= state.keys():
            raise ValueError("an EMA state must be a dict with 'decay', 'n_averaged' and "
                             "'averaged' (EMA.state_dict())")
        n = state["n_averaged"]
        try:   # an int, a NumPy integer, a 0-d integer array or tensor (torch's buffer)
            if isinstance(n, (bool, np.bool_)):
                raise TypeError
            n = operator.index(n)
        except TypeError:
            raise TypeError(f"n_averaged must be an int, got {n!r}") from None
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
        decay = v.check(_DECAY.kind, "decay", state["decay"])
        n = int(n)
        if n < 0:
            raise ValueError(f"Invalid n_averaged value: {n}")
        for mine, a in zip(self.averaged, new):
            mine[...] = a
        self.decay, self.n_averaged = decay, n
