"""Inverted dropout in plain NumPy (docs/reference.md s.4): the reference statement of
the counter-based mask and of the forward/backward values.

Philox4x32-10 is written here once, vectorized over counters with uint64
arithmetic (a 32x32 product fits in 64 bits). Element ``i`` is kept iff
``w_i >= round(p * 2**32)`` where ``w_i`` is word ``i % 4`` of Philox on the
counter ``(j & 0xffffffff, j >> 32, 0, 0)``, ``j = i // 4``, key
``(seed & 0xffffffff, seed >> 32)``. The mask is bit-packed, little bit order
(element ``i`` in bit ``i % 8`` of byte ``i // 8``), unused bits 0.

Values: ``y = x * scale`` where kept, ``+0`` where dropped, with ``scale`` the
compute type's rounding of ``1 / (1 - p)`` (0 when ``p == 1``; float32 for
float16/bfloat16 arrays). Computed in float64: the product of two float32
values is exact in float64, so rounding it once to float32 gives exactly the
float32 product the compiled backends form. For 16-bit arrays the exact
product is rounded once to the 16-bit type; the compiled backends round the
float32 product, which can differ by one 16-bit step where the float32
rounding lands on a 16-bit tie.
"""
import numpy as np

from fastopt._validate import compute_dtype

_U32 = np.uint64(0xFFFFFFFF)
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of the counters (c0, c1, c2, c3) (uint32-valued arrays or
    ints) under the key (k0, k1) (ints): four uint64 arrays of 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & _U32 for c in (c0, c1, c2, c3))
    k0, k1 = int(k0) & 0xFFFFFFFF, int(k1) & 0xFFFFFFFF
    for _ in range(10):
        p0 = _M0 * c0                      # < 2**64: exact
        p1 = _M1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & _U32
        hi1, lo1 = p1 >> np.uint64(32), p1 & _U32
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0 = (k0 + _W0) & 0xFFFFFFFF
        k1 = (k1 + _W1) & 0xFFFFFFFF
    return c0, c1, c2, c3


def threshold(p: float) -> int:
    """round(p * 2**32), ties to even (p * 2**32 is exact in float64)."""
    return round(float(p) * 2.0 ** 32)


def scale(p: float, dtype) -> float:
    """1 / (1 - p) in double, rounded once to the compute type of ``dtype``
    (float32 for float16/bfloat16, else ``dtype``; 0 when p == 1)."""
    return float(compute_dtype(dtype).type(0.0 if p == 1.0 else 1.0 / (1.0 - p)))


def keep(n: int, p: float, seed: int):
    """Boolean keep flags of elements 0 .. n-1."""
    calls = (n + 3) // 4
    j = np.arange(calls, dtype=np.uint64)
    words = philox4x32_10(j & _U32, j >> np.uint64(32), 0, 0, seed & 0xFFFFFFFF, seed >> 32)
    w = np.stack(words, axis=1).reshape(-1)[:n]     # word i % 4 of call i // 4
    t = threshold(p)
    if t > 0xFFFFFFFF:                              # 64-bit compare: w < 2**32 <= t
        return np.zeros(n, dtype=bool)
    return w >= np.uint64(t)


def mask(n, p, seed):
    return np.packbits(keep(n, p, seed), bitorder="little")


def _apply(a, keep_flags, p):
    """a * scale where kept (the float64 product of a dtype value and the scale,
    exact, rounded once to the dtype), +0 where dropped."""
    out = np.zeros(a.size, dtype=np.float64)
    out[keep_flags] = a.reshape(-1)[keep_flags].astype(np.float64) * scale(p, a.dtype)
    with np.errstate(over="ignore"):   # beyond the type's range: inf, as the kernels give
        return out.astype(a.dtype).reshape(a.shape)


def forward(x, p, seed):
    k = keep(x.size, p, seed)
    return _apply(x, k, p), np.packbits(k, bitorder="little")


def backward(dy, mask_bytes, p):
    k = np.unpackbits(mask_bytes, count=dy.size, bitorder="little").astype(bool)
    return _apply(dy, k, p)
