"""Parameter averaging (EMA) in plain NumPy, float64 (the oracle of
fastopt.functional.averaging). Backend functions receive validated lists and
never validate."""
import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def ema(avgs, params, *, decay):
    for avg, param in zip(avgs, params):
        avg[...] = decay * _f64(avg) + (1.0 - decay) * _f64(param)
