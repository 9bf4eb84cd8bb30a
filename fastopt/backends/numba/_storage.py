"""16-bit arrays in the numba backend: float32 working copies.

numba has no 16-bit float type. A float16 / bfloat16 array is read through its
uint16 view and widened to a float32 copy with fastopt/_rounding.py's integer
functions (compiled in fastopt/backends/numba/_half.py); the float32 kernel
runs unchanged on it; each result is rounded back once, to nearest even, by the
same functions. Two extra passes and a float32 temporary per array: numba is
the fallback when the C++ extension is missing, and this keeps one numba
statement of each kernel. Values equal the C++ backend's where the kernel's
float32 results do (dropout: bit for bit).
"""
import ml_dtypes
import numpy as np
from numba import prange

from fastopt.backends.numba import _half
from fastopt.backends.numba._serial import by_size, compile_pair

_BF16 = np.dtype(ml_dtypes.bfloat16)


def _widen_body(h, out, bf16):
    for i in prange(h.size):
        v = np.uint64(h[i])
        out[i] = np.uint32(_half.bf16_to_f32(v) if bf16 else _half.f16_to_f32(v))


def _narrow_body(u, out, bf16):
    for i in prange(u.size):
        v = np.uint64(u[i])
        out[i] = np.uint16(_half.f32_to_bf16_rne(v) if bf16 else _half.f32_to_f16_rne(v))


_WIDEN = compile_pair(_widen_body)
_NARROW = compile_pair(_narrow_body)


def is_16bit(a):
    return a.dtype.itemsize == 2


def widen(a):
    """A float32 copy of the 16-bit array ``a`` (exact)."""
    out = np.empty(a.shape, np.float32)
    by_size(_WIDEN, a.size)(a.reshape(-1).view(np.uint16), out.reshape(-1).view(np.uint32),
                            a.dtype == _BF16)
    return out


def store(src, out):
    """``out[...] = src`` (float32) rounded once to ``out``'s 16-bit type."""
    by_size(_NARROW, out.size)(src.reshape(-1).view(np.uint32), out.reshape(-1).view(np.uint16),
                               out.dtype == _BF16)
