"""Inverted dropout in Numba, mirroring fastopt/backends/numpy/dropout.py: Philox4x32-10
per counter in 64-bit integer arithmetic, one mask byte (two Philox calls,
eight elements) per loop iteration, parallel over bytes. Scalars come from
fastopt._scalars.dropout and are passed in the array's dtype. 16-bit arrays run
the float32 loops on widened copies, each result rounded once
(fastopt/backends/numba/_storage.py): the C++ backend's bits."""
import numpy as np
from numba import njit, prange

from fastopt.backends.numba import ParallelKernel

from fastopt import _scalars
from fastopt.backends.numba import _storage
from fastopt.backends.numba._serial import SERIAL_BELOW

_MASK32 = np.uint64(0xFFFFFFFF)


@njit(cache=True, inline="always")
def _philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on one counter; every value is a uint64 holding 32 bits."""
    m = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        n0 = (p1 >> s32) ^ c1 ^ k0
        n2 = (p0 >> s32) ^ c3 ^ k1
        c0, c1, c2, c3 = n0, p1 & m, n2, p0 & m
        k0 = (k0 + np.uint64(0x9E3779B9)) & m
        k1 = (k1 + np.uint64(0xBB67AE85)) & m
    return c0, c1, c2, c3


@njit(cache=True)
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Test entry point (known-answer vectors): ints in, four ints out."""
    return _philox4x32_10(np.uint64(c0), np.uint64(c1), np.uint64(c2), np.uint64(c3),
                          np.uint64(k0), np.uint64(k1))


@njit(cache=True, inline="always")
def _mask_byte(b, count, k0, k1, t):
    """Mask byte b (elements 8b .. 8b+count-1): two Philox calls."""
    m = np.uint64(0xFFFFFFFF)
    byte = 0
    for half in range(2):
        j = np.uint64(2) * b + np.uint64(half)
        w0, w1, w2, w3 = _philox4x32_10(j & m, j >> np.uint64(32), np.uint64(0), np.uint64(0),
                                        k0, k1)
        base = 4 * half
        if base + 0 < count and w0 >= t:
            byte |= 1 << (base + 0)
        if base + 1 < count and w1 >= t:
            byte |= 1 << (base + 1)
        if base + 2 < count and w2 >= t:
            byte |= 1 << (base + 2)
        if base + 3 < count and w3 >= t:
            byte |= 1 << (base + 3)
    return byte


@njit(cache=True, inline="always")
def _forward_byte(x, y, mask, b, n, k0, k1, t, scale, zero):
    first = 8 * b
    count = min(8, n - first)
    byte = _mask_byte(np.uint64(b), count, k0, k1, t)
    mask[b] = np.uint8(byte)
    for k in range(count):
        y[first + k] = x[first + k] * scale if (byte >> k) & 1 else zero


@njit(cache=True, inline="always")
def _backward_word(dy, mask, dx, c, scale, zero):
    """Elements 32c .. 32c+31 from the 32-bit mask word of bytes 4c .. 4c+3 (bit k is
    element 32c+k: the mask's byte order). A constant trip count and a per-lane
    shift of one word vectorize; the per-byte loop with its variable count and
    per-bit branch did not, and ran 2.5-4x slower (slower than NumPy's one multiply
    by a float mask; benchmarks/RESULTS.md, issue 17 session 5)."""
    b = 4 * c
    w = (np.uint32(mask[b]) | (np.uint32(mask[b + 1]) << np.uint32(8))
         | (np.uint32(mask[b + 2]) << np.uint32(16)) | (np.uint32(mask[b + 3]) << np.uint32(24)))
    i0 = 32 * c
    for k in range(32):
        v = dy[i0 + k] * scale
        dx[i0 + k] = v if (w >> np.uint32(k)) & np.uint32(1) else zero


@njit(cache=True, inline="always")
def _backward_tail(dy, mask, dx, scale, zero):
    for i in range(32 * (dy.size // 32), dy.size):
        v = dy[i] * scale
        dx[i] = v if (mask[i >> 3] >> (i & 7)) & 1 else zero


# Parallel loops for large arrays; serial ones below PARALLEL_MIN elements,
# where waking numba's threads costs more than the work (fastopt/backends/numba/_serial.py).
PARALLEL_MIN = SERIAL_BELOW


@njit(parallel=True, cache=True)
def _forward_par(x, y, mask, k0, k1, t, scale):
    for b in prange(mask.size):
        _forward_byte(x, y, mask, b, x.size, k0, k1, t, scale, x.dtype.type(0))


@njit(cache=True)
def _forward_ser(x, y, mask, k0, k1, t, scale):
    for b in range(mask.size):
        _forward_byte(x, y, mask, b, x.size, k0, k1, t, scale, x.dtype.type(0))


@njit(parallel=True, cache=True)
def _backward_par(dy, mask, dx, scale):
    for c in prange(dy.size // 32):
        _backward_word(dy, mask, dx, c, scale, dy.dtype.type(0))
    _backward_tail(dy, mask, dx, scale, dy.dtype.type(0))


@njit(cache=True)
def _backward_ser(dy, mask, dx, scale):
    for c in range(dy.size // 32):
        _backward_word(dy, mask, dx, c, scale, dy.dtype.type(0))
    _backward_tail(dy, mask, dx, scale, dy.dtype.type(0))


@njit(parallel=True, cache=True)
def _mask_par(mask, n, k0, k1, t):
    for b in prange(mask.size):
        mask[b] = np.uint8(_mask_byte(np.uint64(b), min(8, n - 8 * b), k0, k1, t))


@njit(cache=True)
def _mask_ser(mask, n, k0, k1, t):
    for b in range(mask.size):
        mask[b] = np.uint8(_mask_byte(np.uint64(b), min(8, n - 8 * b), k0, k1, t))


_forward_par = ParallelKernel(_forward_par, _forward_ser)
_backward_par = ParallelKernel(_backward_par, _backward_ser)
_mask_par = ParallelKernel(_mask_par, _mask_ser)


def _key(seed):
    return np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)


def _in_float32(kernel, a, *args):
    """``kernel`` (forward or backward) on a float32 copy of the 16-bit ``a``; the
    values rounded back to ``a``'s type. Returns what ``kernel`` returns."""
    out = kernel(_storage.widen(a), *args)
    values = out[0] if isinstance(out, tuple) else out
    result = np.empty(a.shape, a.dtype)
    _storage.store(values, result)
    return (result,) + out[1:] if isinstance(out, tuple) else result


def forward(x, p, seed):
    if _storage.is_16bit(x):
        return _in_float32(forward, x, p, seed)
    s = _scalars.dropout(p)
    y = np.empty_like(x)
    mask = np.empty((x.size + 7) // 8, dtype=np.uint8)
    k0, k1 = _key(seed)
    run = _forward_par if x.size >= PARALLEL_MIN else _forward_ser
    run(x.reshape(-1), y.reshape(-1), mask, k0, k1, np.uint64(s.threshold), x.dtype.type(s.scale))
    return y, mask


def backward(dy, mask, p):
    if _storage.is_16bit(dy):
        return _in_float32(backward, dy, mask, p)
    s = _scalars.dropout(p)
    dx = np.empty_like(dy)
    run = _backward_par if dy.size >= PARALLEL_MIN else _backward_ser
    run(dy.reshape(-1), mask, dx.reshape(-1), dy.dtype.type(s.scale))
    return dx


def mask(n, p, seed):
    s = _scalars.dropout(p)
    out = np.empty((n + 7) // 8, dtype=np.uint8)
    k0, k1 = _key(seed)
    run = _mask_par if n >= PARALLEL_MIN else _mask_ser
    run(out, n, k0, k1, np.uint64(s.threshold))
    return out
