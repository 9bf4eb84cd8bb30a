"""8-bit block-wise optimizer state (Dettmers et al. 2022, "8-bit Optimizers via
Block-wise Quantization"), see docs/quantized-state.md.

A state array of ``n`` float32 values is stored as ``codes`` (uint8, one per
element, the state's shape) and ``absmax`` (float32, one per block of
``BLOCK = 256`` consecutive elements in C order)::

    value[i] = qmap[codes[i]] * absmax[i // 256]

``qmap`` is the paper's dynamic (tree) map of 256 sorted float32 values in
[-1, 1] (signed, first moments) or [0, 1] (unsigned, second moments); its
values equal bitsandbytes' ``create_dynamic_map(signed)``. Quantizing a block
divides each value by the block's absmax (float32 ``x = value / absmax``, 0 when
absmax is 0) and takes the nearest code; on a tie the lower index wins (the
exact comparison sequence is ``fastopt.backends.numpy.quantized.nearest``).

>>> q = fastopt.quantize(np.random.randn(1000).astype(np.float32), signed=True)
>>> q.codes.shape, q.absmax.shape, q.dequantize().dtype
((1000,), (4,), dtype('float32'))
"""
from __future__ import annotations

import numpy as np

BLOCK = 256
MIN_SIZE = 4096   # the optimizer classes keep float32 state for smaller params


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


LUT_BITS, LUT_STEPS = 14, 4


def _order_key(a):
    """float32 bits as uint32 keys in the order of the values (-0.0 just below +0.0)."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return np.where(u & 0x80000000, ~u & 0xFFFFFFFF, u | 0x80000000)


def search_table(table) -> np.ndarray:
    """A speed-up of the nearest-code search the C++ loops use (same result): for each
    bucket of the top ``LUT_BITS`` bits of the order key, the last index whose value
    is <= every float of the bucket (0 if none); ``LUT_STEPS`` compare-steps
    ``i += qmap[i+1] <= x`` then reach the search's ``i`` (asserted here)."""
    keys = _order_key(table)
    shift = 32 - LUT_BITS
    starts = np.arange(1 << LUT_BITS, dtype=np.uint64) << np.uint64(shift)
    lut = np.maximum(np.searchsorted(keys, starts, side="right") - 1, 0)
    per_bucket = np.bincount((keys >> np.uint64(shift)).astype(np.int64)).max()
    assert per_bucket + 1 <= LUT_STEPS
    return lut.astype(np.int32)   # int32: the C++ loop gathers it in SIMD registers


SIGNED_MAP = dynamic_map(True)
UNSIGNED_MAP = dynamic_map(False)
SIGNED_LUT, UNSIGNED_LUT = search_table(SIGNED_MAP), search_table(UNSIGNED_MAP)
# The maps followed by +inf: the C++ compare-steps read qmap[i + 1] without a bounds check.
SIGNED_PADDED, UNSIGNED_PADDED = (np.concatenate([m, np.full(8, np.inf, np.float32)])
                                  for m in (SIGNED_MAP, UNSIGNED_MAP))
for _a in (SIGNED_MAP, UNSIGNED_MAP, SIGNED_LUT, UNSIGNED_LUT, SIGNED_PADDED, UNSIGNED_PADDED):
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
        self.signed = bool(signed)
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
    a = np.asarray(array)
    if a.dtype != np.float32:
        raise TypeError(f"quantize takes a float32 array, got {a.dtype}")
    a = np.ascontiguousarray(a)   # the input is read, never written
    if not np.all(np.isfinite(a)):
        raise ValueError("quantize takes finite values")
    if not signed and a.size and a.min() < 0:
        raise ValueError("an unsigned map (signed=False) holds values >= 0 only")
    from fastopt.backends.numpy.quantized import quantize_into
    q = QuantizedState(a.shape, signed)
    quantize_into(a.reshape(-1), q)
    return q
