"""Parameter averaging (EMA): a thin adapter to ``fastopt._core``."""
from fastopt import _core


def ema(avgs, params, *, decay):
    _core.ema_update(avgs, params, decay, 1.0 - decay)
