"""The 16-bit conversions (docs/rounding.md): fastopt/_rounding.py (the bit-level
reference, also compiled by numba) against numpy's float16 and ml_dtypes'
bfloat16 conversions, and csrc/include/fastopt/half.h (through test bindings
in fastopt._core) against fastopt/_rounding.py bit for bit."""
import ml_dtypes
import numpy as np
import pytest

from fastopt import _rounding as R
from fastopt.backends.numpy.dropout import philox4x32_10

try:
    from fastopt import _core
except ImportError:  # pragma: no cover - the cpp backend is optional
    _core = None

needs_core = pytest.mark.skipif(_core is None, reason="fastopt._core (cpp backend) not built")
BF16 = np.dtype(ml_dtypes.bfloat16)
U64 = np.uint64


def u64(a):
    return np.asarray(a).astype(U64)


def f32_bits(x):
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def as_f32(bits):
    return bits.astype(np.uint32).view(np.float32)


ALL16 = np.arange(65536, dtype=np.uint32).astype(np.uint16)


def sample_f32(seed=0):
    """float32 patterns covering every exponent, with the cases that matter:
    ties (and one float32 ulp around them) of both 16-bit types, float16
    subnormals and the overflow boundary, zeros, inf, NaN (quiet, signaling,
    both signs), float32 subnormals, and random patterns."""
    rng = np.random.default_rng(seed)
    parts = [rng.integers(0, 2 ** 32, size=1 << 18, dtype=np.uint64).astype(np.uint32)]
    for h_to_f32, next_bits in ((R.bf16_to_f32, 16), (R.f16_to_f32, 16)):
        h = u64(ALL16[:0x7C00])                     # finite non-negative patterns
        lo = as_f32(h_to_f32(h)).astype(np.float64)
        hi = as_f32(h_to_f32(h + U64(1))).astype(np.float64)
        ok = np.isfinite(hi)
        mid = ((lo + hi) / 2)[ok].astype(np.float32)  # exact: a few bits more than 16
        m = mid.view(np.uint32)
        parts += [m, m - 1, m + 1]
    special = [0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
               0xFF800001, 0x7FBFFFFF, 0x00000001, 0x807FFFFF, 0x477FE000, 0x477FEFFF,
               0x477FF000, 0x477FF001, 0x477FFFFF, 0x47800000, 0x7F7FFFFF, 0xFF7FFFFF,
               0x38800000, 0x387FFFFF, 0x33000000, 0x33000001, 0x32FFFFFF, 0x33800000,
               0x2F000000, 0x2F800000, 0x2FFFFFFF, 0x30000000, 0x0]
    parts.append(np.array(special, dtype=np.uint32))
    for e in range(256):                            # every exponent, random mantissas
        mant = rng.integers(0, 1 << 23, size=256, dtype=np.uint32)
        parts.append((np.uint32(e) << np.uint32(23)) | mant)
    x = np.concatenate(parts)
    return np.concatenate([x, x | np.uint32(0x80000000)])


X = sample_f32()
IS_NAN = np.isnan(X.view(np.float32))


def test_widen_all_16_bit_patterns_exactly():
    f16 = ALL16.view(np.float16).astype(np.float32).view(np.uint32)
    bf16 = ALL16.view(BF16).astype(np.float32).view(np.uint32)
    assert np.array_equal(R.f16_to_f32(u64(ALL16)).astype(np.uint32), f16)
    assert np.array_equal(R.bf16_to_f32(u64(ALL16)).astype(np.uint32), bf16)


@pytest.mark.parametrize("kind", ["f16", "bf16"])
def test_rne_matches_numpy_and_ml_dtypes(kind):
    dtype = np.float16 if kind == "f16" else BF16
    ours = getattr(R, f"f32_to_{kind}_rne")(u64(X)).astype(np.uint16)
    with np.errstate(over="ignore", invalid="ignore"):
        theirs = X.view(np.float32).astype(dtype).view(np.uint16)
    assert np.array_equal(ours[~IS_NAN], theirs[~IS_NAN])
    # NaN: a quiet NaN with the input's sign and leading payload bits
    top = X[IS_NAN] >> np.uint32(16)
    if kind == "bf16":
        expected = top | np.uint32(0x0040)
    else:
        expected = (top & np.uint32(0x8000)) | np.uint32(0x7E00) | (
            (X[IS_NAN] >> np.uint32(13)) & np.uint32(0x3FF))
    assert np.array_equal(ours[IS_NAN], expected.astype(np.uint16))
    assert np.isnan(ours[IS_NAN].view(dtype).astype(np.float32)).all()


def test_float16_overflow_by_hand():
    x = u64(f32_bits([65536.0, -70000.0, 3e38, np.inf, -np.inf]))
    for r in (0, 0x7FFFFFFF, 0xFFFFFFFF):
        out = R.f32_to_f16_sr(x, np.full(x.shape, r, dtype=U64))
        assert list(out) == [0x7C00, 0xFC00, 0x7C00, 0x7C00, 0xFC00]
    # [65504, 65536): lo = 65504, hi = inf standing for 65536
    x = u64(f32_bits([65504.0, 65520.0]))
    assert list(R.f32_to_f16_sr(x, np.zeros(2, U64))) == [0x7BFF, 0x7BFF]
    assert list(R.f32_to_f16_sr(x, np.full(2, 0xFFFFFFFF, U64))) == [0x7BFF, 0x7C00]


def test_rne_cases_by_hand():
    def f16(x):
        return R.f32_to_f16_rne(u64(f32_bits(x))).astype(np.uint16)
    assert list(f16([65504.0, 65519.0, 65520.0, 1e6, -1e6, np.inf])) == [
        0x7BFF, 0x7BFF, 0x7C00, 0x7C00, 0xFC00, 0x7C00]
    # 2^-24 is the smallest subnormal; 2^-25 is a tie with 0 (even), above it rounds up
    assert list(f16([2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * 1.0000001, 3 * 2.0 ** -25])) == [
        1, 0, 1, 2]
    assert list(f16([-0.0, 1.0, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11])) == [
        0x8000, 0x3C00, 0x3C00, 0x3C02]


def _lo_hi(kind, x32):
    """The two 16-bit neighbours of finite float32 values (truncation and one
    step away from zero) as float64."""
    widen = R.f16_to_f32 if kind == "f16" else R.bf16_to_f32
    zero_r = np.zeros(x32.shape, dtype=U64)
    lo = getattr(R, f"f32_to_{kind}_sr")(u64(x32.view(np.uint32)), zero_r)
    hi = lo + U64(1)
    return (as_f32(widen(lo)).astype(np.float64), as_f32(widen(hi)).astype(np.float64), lo)


@pytest.mark.parametrize("kind", ["f16", "bf16"])
def test_stochastic_rounding_picks_a_neighbour(kind):
    # float16: |x| >= 65536 is inf whatever r (tested by hand below)
    limit = 65536.0 if kind == "f16" else np.inf
    finite = ~IS_NAN & (np.abs(X.view(np.float32)) < limit)
    x = X[finite]
    r = np.random.default_rng(1).integers(0, 2 ** 32, size=x.size, dtype=np.uint64)
    out = getattr(R, f"f32_to_{kind}_sr")(u64(x), r)
    widen = R.f16_to_f32 if kind == "f16" else R.bf16_to_f32
    trunc = getattr(R, f"f32_to_{kind}_sr")(u64(x), np.zeros_like(r))
    assert np.all((out == trunc) | (out == trunc + U64(1)))
    # exactly representable values never move, whatever r
    exact = as_f32(widen(trunc)).view(np.uint32) == x
    assert np.array_equal(out[exact], trunc[exact])
    # r = 0 truncates toward zero: |result| <= |x|
    xv = np.abs(x.view(np.float32).astype(np.float64))
    tv = np.abs(as_f32(widen(trunc)).astype(np.float64))
    tiny = xv < 2.0 ** -33 if kind == "f16" else np.zeros(xv.shape, bool)
    assert np.all(tv <= xv)
    # and the largest r rounds away from zero unless exact (or below 2^-33 for float16)
    top = getattr(R, f"f32_to_{kind}_sr")(u64(x), np.full_like(r, 0xFFFFFFFF))
    moved = ~exact & ~tiny
    assert np.array_equal(top[moved], trunc[moved] + U64(1))
    # NaN stays a (quiet) NaN, as in RNE
    nan = X[IS_NAN]
    assert np.array_equal(getattr(R, f"f32_to_{kind}_sr")(u64(nan), np.zeros(nan.size, U64)),
                          getattr(R, f"f32_to_{kind}_rne")(u64(nan)))


def philox_words(n, seed, step=1):
    """Word i % 4 of Philox4x32-10 at the optimizer-step counter of element i
    (MP-CONTRACT / docs/rounding.md)."""
    j = np.arange((n + 3) // 4, dtype=np.uint64)
    w = philox4x32_10(j & U64(0xFFFFFFFF), j >> U64(32), step & 0xFFFFFFFF,
                      0x53520000 | (step >> 32 & 0xFFFF), seed & 0xFFFFFFFF, seed >> 32)
    return np.stack(w, axis=1).reshape(-1)[:n]


@pytest.mark.parametrize("kind,value", [
    ("bf16", 1.0 + 2.0 ** -9), ("bf16", -3.14159), ("bf16", 1e-40),
    ("f16", 1.0 + 2.0 ** -12), ("f16", 0.1), ("f16", -6.0e-6), ("f16", 3.0e-8),
    ("f16", 1e-9), ("f16", 65510.0)])
def test_stochastic_rounding_is_unbiased(kind, value):
    n = 1 << 18
    x = np.full(n, value, dtype=np.float32)
    r = philox_words(n, seed=12345)
    out = getattr(R, f"f32_to_{kind}_sr")(u64(f32_bits(x)), r)
    widen = R.f16_to_f32 if kind == "f16" else R.bf16_to_f32
    vals = as_f32(widen(out)).astype(np.float64)
    lo, hi, _ = _lo_hi(kind, x[:1])
    x64 = float(np.float32(value))
    if np.isinf(hi[0]):                         # the float16 overflow: hi stands for 65536
        hi = np.array([65536.0])
        vals = np.where(np.isinf(vals), 65536.0, vals)
    p = (abs(x64) - abs(lo[0])) / (abs(hi[0]) - abs(lo[0]))
    assert 0.0 < p < 1.0
    sigma = abs(hi[0] - lo[0]) * np.sqrt(p * (1 - p) / n)
    assert abs(vals.mean() - x64) < 3 * sigma
    assert set(np.unique(vals)) == {lo[0], hi[0]}


def test_stochastic_rounding_depends_on_seed_and_step():
    n = 4096
    x = u64(f32_bits(np.random.default_rng(2).standard_normal(n)))
    a = R.f32_to_bf16_sr(x, philox_words(n, seed=1))
    b = R.f32_to_bf16_sr(x, philox_words(n, seed=2))
    c = R.f32_to_bf16_sr(x, philox_words(n, seed=1, step=2))
    assert (a != b).mean() > 0.3 and (a != c).mean() > 0.3
    assert np.array_equal(a, R.f32_to_bf16_sr(x, philox_words(n, seed=1)))


def test_numba_compiles_the_reference():
    numba = pytest.importorskip("numba")
    from fastopt.backends.numba import _half

    @numba.njit
    def apply1(f, a):
        out = np.empty_like(a)
        for i in range(a.size):
            out[i] = f(a[i])
        return out

    @numba.njit
    def apply2(f, a, r):
        out = np.empty_like(a)
        for i in range(a.size):
            out[i] = f(a[i], r[i])
        return out

    fns = {name: getattr(_half, name) for name in (
        "bf16_to_f32", "f16_to_f32", "f32_to_bf16_rne", "f32_to_f16_rne")}
    srs = {name: getattr(_half, name) for name in ("f32_to_bf16_sr", "f32_to_f16_sr")}
    x = u64(X)
    r = np.random.default_rng(3).integers(0, 2 ** 32, size=x.size, dtype=np.uint64)
    for name in ("bf16_to_f32", "f16_to_f32"):
        assert np.array_equal(apply1(fns[name], u64(ALL16)), getattr(R, name)(u64(ALL16)))
    for name in ("f32_to_bf16_rne", "f32_to_f16_rne"):
        assert np.array_equal(apply1(fns[name], x), getattr(R, name)(x))
    for name in srs:
        assert np.array_equal(apply2(srs[name], x, r), getattr(R, name)(x, r))


@needs_core
def test_cpp_equals_reference_bit_for_bit():
    assert np.array_equal(_core._f16_to_f32(ALL16), R.f16_to_f32(u64(ALL16)).astype(np.uint32))
    assert np.array_equal(_core._bf16_to_f32(ALL16), R.bf16_to_f32(u64(ALL16)).astype(np.uint32))
    for kind in ("f16", "bf16"):
        assert np.array_equal(getattr(_core, f"_f32_to_{kind}_rne")(X),
                              getattr(R, f"f32_to_{kind}_rne")(u64(X)).astype(np.uint16))
        for seed in range(3):
            r = np.random.default_rng(seed).integers(0, 2 ** 32, size=X.size,
                                                     dtype=np.uint64).astype(np.uint32)
            for special in (0, 0xFFFFFFFF):
                r[:: 7 + seed] = special
            assert np.array_equal(getattr(_core, f"_f32_to_{kind}_sr")(X, r),
                                  getattr(R, f"f32_to_{kind}_sr")(u64(X), u64(r)).astype(np.uint16))


def _set_fp_env(rounding=None, flush=False):
    """The calling thread's float environment: C99 fesetround (x86 values) and
    MXCSR's flush-to-zero/denormals-are-zero bits through torch, where given.
    Returns a function that restores the defaults."""
    import ctypes
    libm = ctypes.CDLL(None)
    modes = {"nearest": 0x000, "downward": 0x400, "upward": 0x800, "towardzero": 0xC00}
    if rounding is not None:
        assert libm.fesetround(modes[rounding]) == 0
    if flush:
        torch = pytest.importorskip("torch")
        assert torch.set_flush_denormal(True)

    def restore():
        libm.fesetround(0)
        if flush:
            import torch
            torch.set_flush_denormal(False)
    return restore


@needs_core
@pytest.mark.skipif(__import__("platform").machine() not in ("x86_64", "AMD64"),
                    reason="the fesetround mode values are x86's")
@pytest.mark.parametrize("rounding,flush", [("downward", False), ("upward", False),
                                            ("towardzero", False), ("nearest", True),
                                            ("downward", True)])
def test_cpp_conversions_ignore_the_float_environment(rounding, flush):
    """half.h promises the same bits whatever the rounding and flush-to-zero
    modes: float16's subnormals are widened with an exact float subtraction
    (rounding downward would give -0 for +0 without its sign clearing), and
    everything else is integer code."""
    expect_widen = R.f16_to_f32(u64(ALL16)).astype(np.uint32)
    expect_rne = {k: getattr(R, f"f32_to_{k}_rne")(u64(X)).astype(np.uint16)
                  for k in ("f16", "bf16")}
    restore = _set_fp_env(rounding, flush)
    try:
        widened = _core._f16_to_f32(ALL16)
        rounded = {k: getattr(_core, f"_f32_to_{k}_rne")(X) for k in ("f16", "bf16")}
    finally:
        restore()
    assert np.array_equal(widened, expect_widen)
    for k in rounded:
        assert np.array_equal(rounded[k], expect_rne[k]), k


# ------------------------------------------------------- fma_f32 (Adam's first moment)

def _exact_fma_f32(a, b, c):
    """a * b + c in exact rational arithmetic, rounded to nearest-even float32 by hand."""
    from fractions import Fraction
    x = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    lo = np.float32(float(x))            # within one float32 step of x (two roundings)
    for _ in range(2):
        if Fraction(float(lo)) > x:
            lo = np.nextafter(lo, np.float32(-np.inf))
    while Fraction(float(np.nextafter(lo, np.float32(np.inf)))) <= x:
        lo = np.nextafter(lo, np.float32(np.inf))
    hi = np.nextafter(lo, np.float32(np.inf))
    dl, dh = x - Fraction(float(lo)), Fraction(float(hi)) - x
    if dl != dh:
        return lo if dl < dh else hi
    return lo if lo.view(np.uint32) % 2 == 0 else hi


def test_fma_f32_halfway_after_double_rounding():
    """The case a float64 sum gets wrong: a * b + c sits 2^-70 below the halfway point
    between 1 + 2^-23 and 1 + 2^-22; float64 rounds it onto that point and ties-to-even
    would then go up. The exact result is 1 + 2^-23."""
    a = np.float32(1 + 2.0 ** -23)
    b = np.float32(2.0 ** -24 * (1 - 2.0 ** -23))
    c = np.float32(1 + 2.0 ** -23)
    naive = np.float32(np.float64(a) * np.float64(b) + np.float64(c))
    assert naive == np.float32(1 + 2.0 ** -22)
    assert R.fma_f32(a, b, c) == c == _exact_fma_f32(a, b, c)
    assert R.fma_f32(-a, b, -c) == -c                       # and mirrored


def test_fma_f32_against_exact_arithmetic_and_libm():
    rng = np.random.default_rng(7)
    n = 3000
    a = rng.standard_normal(n).astype(np.float32)
    b = (rng.standard_normal(n) * 10.0 ** rng.integers(-30, 5, n)).astype(np.float32)
    c = rng.standard_normal(n).astype(np.float32)
    c[:1000] = -(a[:1000].astype(np.float64) * b[:1000]).astype(np.float32)  # cancellation
    # halfway families as in the test above, scaled and signed at random
    k = rng.integers(-20, 20, 500).astype(np.float64)
    odd = (1 + 2.0 ** -23 * (2 * rng.integers(0, 2 ** 21, 500) + 1)) * 2.0 ** k
    a[1000:1500] = (1 + 2.0 ** -23)
    b[1000:1500] = (np.spacing(odd.astype(np.float32)).astype(np.float64) / 2
                    * (1 - 2.0 ** -23) * rng.choice([1.0, -1.0], 500))
    c[1000:1500] = odd
    got = R.fma_f32(a, b, c)
    want = np.array([_exact_fma_f32(x, y, z) for x, y, z in zip(a, b, c)], np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    naive = (a.astype(np.float64) * b + c).astype(np.float32)
    assert (naive != want).sum() > 0          # the family does exercise the fix
    import ctypes.util
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.fmaf.restype = ctypes.c_float
    libm.fmaf.argtypes = [ctypes.c_float] * 3
    ref = np.array([libm.fmaf(float(x), float(y), float(z)) for x, y, z in zip(a, b, c)],
                   np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))
