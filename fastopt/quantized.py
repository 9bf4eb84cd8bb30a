"""8-bit block-wise optimizer state (Dettmers et al. 2022, "8-bit Optimizers via
Block-wise Quantization"), see docs/quantized-state.md.

A state array of ``n`` float32 values is stored as ``codes`` (uint8, one per
element, the state's shape) and ``absmax`` (float32, one per block of
``BLOCK = 256`` consecutive elements in C order)::

    value[i] = qmap[codes[i]] * absmax[i // 256]

``qmap`` is the paper's dynamic (tree) map of 256 sorted float32 values in
[-1, 1] (signed, first moments) or [0, 1] (unsigned, second moments); its
values equal bitsandbytes' ``create_dynamic_map(signed)``. Quantizing a block
scales each value by the block's absmax (float32 ``x = value * (1 / absmax)``,
the reciprocal rounded once per block as bitsandbytes does, a division only
where absmax is outside [2**-126, 2**126]; 0 when absmax is 0:
``fastopt.backends.numpy.quantized.ratios``) and takes the nearest code; on a tie
the lower index wins (the exact comparison sequence is
``fastopt.backends.numpy.quantized.nearest``).

>>> q = fastopt.quantize(np.random.randn(1000).astype(np.float32), signed=True)
>>> q.codes.shape, q.absmax.shape, q.dequantize().dtype
((1000,), (4,), dtype('float32'))
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

BLOCK = 256
MIN_SIZE = 4096   # the optimizer classes keep float32 state for smaller params
# params whose state may be 8-bit (16-bit ones computed in float32, rounded once)
PARAM_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def _linspace32(start, end, steps):
    """torch.linspace(start, end, steps) in float32, rounded as torch's CPU kernel
    rounds it (the map's published values carry that rounding): a float32 step;
    the first half counts up from ``start``, the second down from ``end``, each
    value ``start + step * i`` rounded once (torch fuses the multiply-add)."""
    start, end = np.float32(start), np.float32(end)
    step = float(np.float32((end - start) / np.float32(steps - 1)))
    i = np.arange(steps, dtype=np.float64)
    up = float(start) + step * i
    down = float(end) - step * (steps - 1 - i)
    return np.where(i < steps // 2, up, down).astype(np.float32)


def dynamic_map(signed: bool) -> np.ndarray:
    """The 256 sorted float32 values of the dynamic (tree) quantization map.

    Its 7 non-sign bits hold a decade exponent ``e`` in ``-6..0`` written in
    unary, then a linear fraction in the bits left: decade ``10**e`` holds the
    midpoints of ``2**k`` (signed) or ``2**(k+1)`` (unsigned) equal intervals of
    ``[0.1, 1]``, ``k = e + 6``. Signed maps mirror every value; both add 0 and 1.
    """
    data = []
    for k in range(7):
        bounds = _linspace32(0.1, 1.0, (2 ** k if signed else 2 ** (k + 1)) + 1)
        means = (bounds[:-1] + bounds[1:]) / np.float32(2.0)
        scaled = np.float32(10.0 ** (k - 6)) * means
        data += scaled.tolist()
        if signed:
            data += (-scaled).tolist()
    data += [0.0, 1.0]
    assert len(data) == 256
    return np.array(sorted(data), dtype=np.float32)


# The code table of the C++ loops (csrc/include/fastopt/quantize.h quantize_code):
# the code of x is the number of thresholds t <= x, where threshold j is the
# smallest float32 x that the reference search sends to a code above j (the
# search's test is monotone in x). Buckets: the sign, the binade (clamped to
# LUT_E0 .. LUT_E0 + LUT_BINADES - 1) and the top LUT_BITS mantissa bits of |x|,
# chosen so that a bucket holds at most one threshold. An entry packs the code
# at the bucket's low-|x| end (positive) or high-|x| end (negative) in its low
# 8 bits and, above them, where the threshold cuts the bucket's low mantissa bits.
LUT_E0, LUT_BINADES = 103, 25     # |x| in [2**-24, 2): every threshold lies inside
LUT_BITS = {True: 6, False: 7}    # signed, unsigned


def _order_key(a):
    """float32 bits as int64 keys in the order of the values (-0.0 just below +0.0)."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.int64)
    return np.where(u & 0x80000000, 0xFFFFFFFF - u, u | 0x80000000)


def _from_key(k):
    k = np.asarray(k, np.int64)
    return np.where(k & 0x80000000, k & 0x7FFFFFFF, 0xFFFFFFFF - k).astype(np.uint32).view(
        np.float32)


def thresholds(table) -> np.ndarray:
    """The 255 float32 thresholds: threshold j is the smallest x with nearest(x) > j."""
    from fastopt.backends.numpy.quantized import nearest
    lo, hi = _order_key(table[:-1]), _order_key(table[1:])   # codes j and j + 1
    above = np.arange(1, 256)
    while np.any(hi - lo > 1):
        mid = (lo + hi) // 2
        up = nearest(_from_key(mid), table) >= above
        hi, lo = np.where(up, mid, hi), np.where(up, lo, mid)
    return _from_key(hi)


def code_table(table, signed) -> np.ndarray:
    """The bucket table (int32) of quantize_code for the map ``table``."""
    bits = LUT_BITS[signed]
    shift, none = 23 - bits, 16     # none: a cut no low bits reach
    t = thresholds(table)
    mag = np.abs(t).view(np.uint32).astype(np.int64)
    bucket = (mag >> shift) - (LUT_E0 << bits)
    low = mag & ((1 << shift) - 1)
    half = LUT_BINADES << bits
    assert bucket.min() > 0 and bucket.max() < half - 1
    start = ((np.arange(half, dtype=np.int64) + (LUT_E0 << bits)) << shift).astype(np.uint32)
    out = []
    for negative in ((False, True) if signed else (False,)):
        side = (t < 0) == negative
        assert np.bincount(bucket[side], minlength=half).max() <= 1
        # a threshold at the bucket's first x (in the order of the codes) is in its code
        sel = side & ((low < (1 << shift) - 1) if negative else (low > 0))
        if not negative:   # code at x = bucket start; x >= cut: one more
            code = np.searchsorted(t, start.view(np.float32), side="right")
            cut = np.full(half, (1 << shift) + none)
            cut[bucket[sel]] = low[sel]
            entry = (cut - 1) * 256 + code          # low > cut - 1
        else:              # code at the bucket's most negative x; |x| <= cut: one more
            top = -((start.astype(np.int64) + (1 << shift) - 1).astype(np.uint32).view(np.float32))
            code = np.searchsorted(t, top, side="right")
            cut = np.full(half, -none - 1)
            cut[bucket[sel]] = low[sel]
            entry = -(cut + 1) * 256 + code         # -low > -(cut + 1)
        out.append(entry)
    lut = np.concatenate(out).astype(np.int32)
    lut.flags.writeable = False
    return lut


SIGNED_MAP = dynamic_map(True)
UNSIGNED_MAP = dynamic_map(False)
for _a in (SIGNED_MAP, UNSIGNED_MAP):
    _a.flags.writeable = False


def qmap(signed: bool) -> np.ndarray:
    return SIGNED_MAP if signed else UNSIGNED_MAP


def zero_code(signed: bool) -> int:
    return int(np.flatnonzero(qmap(signed) == 0.0)[0])


def blocks(n: int) -> int:
    return (n + BLOCK - 1) // BLOCK


class QuantizedState:
    """A float32 optimizer state held in 8 bits: ``codes`` (uint8, ``shape``),
    ``absmax`` (float32, one per block of 256) and ``signed`` (which map).

    ``QuantizedState(shape, signed)`` is the state of zeros, as torch's fresh
    state; pass ``codes`` and ``absmax`` to wrap existing arrays (no copy). Pass it
    wherever a step takes ``exp_avg`` (signed), ``exp_avg_sq`` (unsigned),
    ``momentum_buffer`` (signed), ``square_avg`` (unsigned) or ``grad_avg`` (signed).

    >>> m = fastopt.QuantizedState((4096,), signed=True)
    >>> float(m.dequantize().max())
    0.0
    """

    __slots__ = ("codes", "absmax", "signed")

    def __init__(self, shape, signed, *, codes=None, absmax=None, device="cpu"):
        if device != "cpu":
            raise ValueError("QuantizedState lives on the CPU (device='cpu') in this version")
        shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
        n = int(np.prod(shape, dtype=np.int64))
        self.signed = _signed(signed)
        if codes is None:
            codes = np.full(shape, zero_code(self.signed), dtype=np.uint8)
        if absmax is None:
            absmax = np.zeros(blocks(n), dtype=np.float32)
        self.codes, self.absmax = codes, absmax
        check(self, "state")

    @property
    def shape(self):
        return self.codes.shape

    @property
    def size(self):
        return self.codes.size

    @property
    def nbytes(self):
        return self.codes.nbytes + self.absmax.nbytes

    def dequantize(self) -> np.ndarray:
        """The float32 values: ``qmap[codes] * absmax[block]``."""
        from fastopt.backends.numpy.quantized import dequantize
        return dequantize(self)

    def __repr__(self):
        return f"QuantizedState(shape={self.shape}, signed={self.signed})"


def _signed(value):
    """``value`` as a bool when it is one (``bool(value)`` made "no" and 0.5 signed)."""
    if value is not True and value is not False and not isinstance(value, np.bool_):
        raise TypeError(f"signed must be True or False, got {value!r}")
    return bool(value)


def check_absmax(q, label):
    """ValueError when a block's absmax is negative: it is the block's largest magnitude
    (NaN where the state diverged). For states that come from outside (loads); a step
    leaves absmax >= 0 or NaN, so the steps themselves do not pay for this pass."""
    if (q.absmax < 0).any():
        raise ValueError(f"{label}.absmax holds negative values: an absmax is a block's "
                         f"largest magnitude (>= 0, or NaN where the state is NaN)")


def check(q, label, shape=None):
    """TypeError / ValueError unless ``q`` is a well-formed QuantizedState (of ``shape``)."""
    if not isinstance(q, QuantizedState):
        raise TypeError(f"{label} must be a QuantizedState, got {type(q).__name__}")
    codes, absmax = q.codes, q.absmax
    if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8:
        raise TypeError(f"{label}.codes must be a uint8 NumPy array")
    if not isinstance(absmax, np.ndarray) or absmax.dtype != np.float32 or absmax.ndim != 1:
        raise TypeError(f"{label}.absmax must be a 1-D float32 NumPy array")
    for part, a in (("codes", codes), ("absmax", absmax)):
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"{label}.{part} must be C-contiguous and writeable")
    if absmax.size != blocks(codes.size):
        raise ValueError(f"{label}.absmax has {absmax.size} values but {codes.size} codes need "
                         f"{blocks(codes.size)} (one per block of {BLOCK})")
    if shape is not None and codes.shape != tuple(shape):
        raise ValueError(f"{label} has shape {codes.shape} but the parameter has shape "
                         f"{tuple(shape)}")


def quantize(array, signed) -> QuantizedState:
    """A new QuantizedState holding float32 ``array`` (any shape) block-wise in 8 bits.

    ``signed=False`` needs non-negative values (second moments). The round trip
    ``quantize(a, s).dequantize()`` is within half the map's local gap times the
    block's absmax of ``a``, element by element.
    """
    signed = _signed(signed)
    if not isinstance(array, np.ndarray):   # np.asarray([1.0]) would be named float64
        raise TypeError(f"quantize takes a float32 NumPy array, got {type(array).__name__}")
    if array.dtype != np.float32:
        raise TypeError(f"quantize takes a float32 array, got {array.dtype}")
    a = np.ascontiguousarray(array)   # the input is read, never written
    if not np.all(np.isfinite(a)):
        raise ValueError("quantize takes finite values")
    if not signed and a.size and a.min() < 0:
        raise ValueError("an unsigned map (signed=False) holds values >= 0 only")
    from fastopt.backends.numpy.quantized import quantize_into
    q = QuantizedState(a.shape, signed)
    quantize_into(a.reshape(-1), q)
    return q
