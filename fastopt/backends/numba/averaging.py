"""Parameter averaging (EMA) in Numba, mirroring fastopt/backends/numpy/averaging.py.
Scalars go in the array's dtype."""
from numba import njit, prange

from fastopt.backends.numba import parallel_njit


@parallel_njit
def _ema(avg, param, decay, one_minus_decay):
    for i in prange(avg.size):
        avg[i] = decay * avg[i] + one_minus_decay * param[i]


def ema(avgs, params, *, decay):
    for avg, param in zip(avgs, params):
        if avg.size:
            t = avg.dtype.type
            _ema(avg.reshape(-1), param.reshape(-1), t(decay), t(1.0 - decay))
