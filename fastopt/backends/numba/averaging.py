"""Parameter averaging (EMA) in Numba, mirroring fastopt/backends/numpy/averaging.py.
Scalars go in the array's dtype. Arrays below ``_serial.SERIAL_BELOW`` elements
run the serial build (same bits, no thread wake-up)."""
from numba import prange

from fastopt.backends.numba._serial import by_size, compile_pair

def _ema_body(avg, param, decay, one_minus_decay):
    for i in prange(avg.size):
        avg[i] = decay * avg[i] + one_minus_decay * param[i]


_ema = compile_pair(_ema_body)


def ema(avgs, params, *, decay):
    for avg, param in zip(avgs, params):
        if avg.size:
            t = avg.dtype.type
            by_size(_ema, avg.size)(avg.reshape(-1), param.reshape(-1), t(decay), t(1.0 - decay))
