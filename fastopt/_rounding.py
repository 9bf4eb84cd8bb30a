"""Bit-level statement of the 16-bit conversions (docs/rounding.md): bfloat16 and
float16 widened to float32, float32 rounded back to nearest-even or
stochastically from a 32-bit random word.

The same functions as ``csrc/include/fastopt/half.h``, for the tests (the
reference the C++ and the CUDA code are checked against, bit for bit) and for
the numba backend, which compiles them with ``njit`` (numba has no 16-bit
float type). So they use nothing but integer operators and :func:`select` on
``uint64`` values holding 32-bit (or 16-bit) patterns, and work alike on numpy
``uint64`` arrays and on numba scalars. Every constant is an ``np.uint64``:
in numba, mixing a ``uint64`` with an ``int64`` literal gives a float.

Inputs: ``u`` the float32 bit pattern (``x.view(np.uint32)``), ``h`` a 16-bit
pattern, ``r`` a uint32 random word, each as uint64. Outputs likewise; cast
with ``.astype(np.uint16)`` / ``np.uint32`` and ``.view`` the float type.

>>> import numpy as np
>>> u = np.array([1.0, 1.00390625], np.float32).view(np.uint32).astype(np.uint64)
>>> f32_to_bf16_rne(u)          # 1 + 2^-8 is a tie: to even, 1.0
array([16256, 16256], dtype=uint64)
"""
import numpy as np

_0, _1 = np.uint64(0), np.uint64(1)
_ABS32 = np.uint64(0x7FFFFFFF)
_INF32 = np.uint64(0x7F800000)
_FULL32 = np.uint64(0xFFFFFFFF)


def select(c, a, b):
    """``a`` where ``c`` else ``b``, without branches or overflow (c is 0/1)."""
    c = np.uint64(c)
    return a * c + b * (_1 - c)


# ---------------------------------------------------------------- widening
def bf16_to_f32(h):
    return h << np.uint64(16)


def f16_to_f32(h):
    sign = (h & np.uint64(0x8000)) << np.uint64(16)
    exp = (h >> np.uint64(10)) & np.uint64(0x1F)
    m = h & np.uint64(0x3FF)
    normal = sign | ((exp + np.uint64(112)) << np.uint64(23)) | (m << np.uint64(13))
    special = sign | _INF32 | (m << np.uint64(13))
    # subnormal: move the leading bit to bit 10 in steps of 5, 3, 2, 1
    c5 = m < np.uint64(0x020)
    m = select(c5, m << np.uint64(5), m)
    c3 = m < np.uint64(0x100)
    m = select(c3, m << np.uint64(3), m)
    c2 = m < np.uint64(0x200)
    m = select(c2, m << np.uint64(2), m)
    c1 = m < np.uint64(0x400)
    m = select(c1, m << _1, m)
    s = (np.uint64(5) * np.uint64(c5) + np.uint64(3) * np.uint64(c3)
         + np.uint64(2) * np.uint64(c2) + np.uint64(c1))
    sub = sign | ((np.uint64(113) - s) << np.uint64(23)) | ((m & np.uint64(0x3FF)) << np.uint64(13))
    zero_or_sub = select((h & np.uint64(0x3FF)) != _0, sub, sign)
    return select(exp == np.uint64(0x1F), special, select(exp == _0, zero_or_sub, normal))


# ---------------------------------------------------- round to nearest even
def _quiet_bf16(u):
    return (u >> np.uint64(16)) | np.uint64(0x0040)


def f32_to_bf16_rne(u):
    rounded = (u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & _1)) >> np.uint64(16)
    return select((u & _ABS32) > _INF32, _quiet_bf16(u), rounded)


def _f16_sub_shift(a):
    """126 - E below 2^-14 (E the biased exponent), 14 above (unused there)."""
    e = a >> np.uint64(23)
    return select(e >= np.uint64(112), np.uint64(14), np.uint64(126) - e)


def _f16_special(a, sign, h):
    """Overflow already folded into h; NaN -> quiet NaN with its leading payload."""
    nan = np.uint64(0x7E00) | ((a >> np.uint64(13)) & np.uint64(0x3FF))
    return sign | select(a > _INF32, nan, h)


def f32_to_f16_rne(u):
    sign = (u >> np.uint64(16)) & np.uint64(0x8000)
    a = u & _ABS32
    r = (a - np.uint64(0x38000000)) & _FULL32
    normal = (r + np.uint64(0xFFF) + ((r >> np.uint64(13)) & _1)) >> np.uint64(13)
    shift = _f16_sub_shift(a)
    shift = select(shift > np.uint64(25), np.uint64(25), shift)
    m24 = (a & np.uint64(0x7FFFFF)) | np.uint64(0x800000)
    sub = (m24 + ((_1 << (shift - _1)) - _1) + ((m24 >> shift) & _1)) >> shift
    h = select(a >= np.uint64(0x38800000), normal, sub)
    h = select(a >= np.uint64(0x477FF000), np.uint64(0x7C00), h)
    return _f16_special(a, sign, h)


# ------------------------------------------------------ stochastic rounding
def f32_to_bf16_sr(u, r):
    rounded = (u + (r >> np.uint64(16))) >> np.uint64(16)
    return select((u & _ABS32) > _INF32, _quiet_bf16(u), rounded)


def f32_to_f16_sr(u, r):
    sign = (u >> np.uint64(16)) & np.uint64(0x8000)
    a = u & _ABS32
    normal = (((a - np.uint64(0x38000000)) & _FULL32) + (r >> np.uint64(19))) >> np.uint64(13)
    shift = _f16_sub_shift(a)
    d = select(shift > np.uint64(32), np.uint64(32), shift)
    mask = _FULL32 >> (np.uint64(32) - d)
    m24 = (a & np.uint64(0x7FFFFF)) | np.uint64(0x800000)
    rnd = r >> (np.uint64(32) - d)
    up = np.uint64(rnd > mask - (m24 & mask))
    q = m24 >> select(d > np.uint64(31), np.uint64(31), d)
    h = select(shift > np.uint64(32), _0, q + up)
    h = select(a >= np.uint64(0x38800000), normal, h)
    h = select(a >= np.uint64(0x47800000), np.uint64(0x7C00), h)
    return _f16_special(a, sign, h)


def fma_f32(a, b, c):
    """``a * b + c`` for float32 arrays, rounded once to float32 (C's ``fmaf``), in numpy.

    The product of two float32 values is exact in float64, and so is TwoSum's error
    ``e`` of the float64 sum ``s``. Rounding ``s`` to float32 then errs only when ``s``
    lies exactly halfway between two float32 values and ``e`` is not zero: the exact
    value is then past the halfway point, on ``e``'s side. (Not part of the numba set
    above: the C++ and numba call a hardware or library fma.)
    """
    a, b, c = (np.asarray(x, np.float32).astype(np.float64) for x in (a, b, c))
    p = a * b
    s = p + c
    bb = s - p
    e = (p - (s - bb)) + (c - bb)
    r = s.astype(np.float32)
    r64 = r.astype(np.float64)
    other = np.nextafter(r, np.where(s > r64, np.float32(np.inf), np.float32(-np.inf)))
    halfway = (s == (r64 + other.astype(np.float64)) * 0.5) & (e != 0)
    past = np.sign(e) == np.sign(other.astype(np.float64) - r64)
    return np.where(halfway & past, other, r)
