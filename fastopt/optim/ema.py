"""``fastopt.EMA``: an exponential moving average of a list of parameters
(torch's ``AveragedModel`` with ``get_ema_multi_avg_fn``), on :func:`fastopt.ema_update`."""
from __future__ import annotations

import numpy as np

from fastopt import _validate as v
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
        decay = v.check(_DECAY.kind, "decay", state["decay"])
        n = int(state["n_averaged"])
        if n < 0:
            raise ValueError(f"Invalid n_averaged value: {n}")
        for mine, a in zip(self.averaged, new):
            mine[...] = a
        self.decay, self.n_averaged = decay, n
