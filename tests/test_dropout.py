"""Inverted dropout with counter-based bit-packed masks (docs/reference.md s.4).

Every backend must give the same mask, bit for bit, for a seed, and the same
values; the NumPy reference (fastopt/backends/numpy/dropout.py) is the oracle.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastopt
from fastopt import _scalars
from fastopt.backends.numpy import dropout as ref

from conftest import CPU_BACKENDS, DTYPES

COMPILED = [b for b in CPU_BACKENDS if b != "numpy"]

# Random123 tests/kat_vectors, the three "philox4x32 10" lines:
# counter (4 words), key (2 words) -> output (4 words).
KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]

# Mask sizes: single bits, around a byte, around the C++ block (128 elements,
# 16 bytes), odd sizes, and one over a million (crosses the thread split).
MASK_SIZES = [0, 1, 7, 8, 9, 15, 17, 31, 33, 63, 64, 65, 127, 128, 129, 255, 257, 1023, 4097,
              12_345, 1_000_003]
SEEDS = [0, 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1, 0x243F6A8885A308D3, 12345678901234567]
PS = [0.0, 0.1, 0.5, 0.9, 1.0]


def _philox_impls():
    impls = {"numpy": lambda c, k: tuple(int(w) for w in ref.philox4x32_10(*c, *k))}
    if "numba" in CPU_BACKENDS:
        from fastopt.backends.numba import dropout as nb
        impls["numba"] = lambda c, k: tuple(int(w) for w in nb.philox4x32_10(*c, *k))
    if "cpp" in CPU_BACKENDS:
        from fastopt import _core
        impls["cpp"] = lambda c, k: tuple(_core._philox4x32_10(list(c), list(k)))
    return impls


@pytest.mark.parametrize("impl", list(_philox_impls()))
@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_philox_known_answers(impl, ctr, key, expected):
    assert _philox_impls()[impl](ctr, key) == expected


def test_reference_philox_is_vectorized_over_counters():
    c = np.array([KAT[0][0][0], KAT[1][0][0]], dtype=np.uint64)
    out = ref.philox4x32_10(c, c, c, c, 0, 0)   # only the first matches a KAT (key 0)
    assert tuple(int(w[0]) for w in out) == KAT[0][2]


def _expected_keep(n, p, seed):
    return ref.keep(n, p, seed)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("n", MASK_SIZES)
def test_mask_identical_across_backends(backend, n):
    for seed in SEEDS:
        for p in (0.5, 0.3):
            expected = ref.mask(n, p, seed)
            got = fastopt.dropout_mask(n, p, seed=seed, backend=backend)
            assert got.dtype == np.uint8 and got.shape == ((n + 7) // 8,)
            np.testing.assert_array_equal(got, expected, err_msg=f"n={n} seed={seed} p={p}")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_mask_layout_is_little_bit_order_c_order(backend):
    n, p, seed = 1000, 0.5, 7
    keep = _expected_keep(n, p, seed)
    m = fastopt.dropout_mask((10, 100), p, seed=seed, backend=backend)
    for i in range(n):
        assert bool((m[i // 8] >> (i % 8)) & 1) == keep[i]
    # word i % 4 of Philox on counter i // 4, directly
    for i in (0, 1, 2, 3, 4, 5, 998, 999):
        words = ref.philox4x32_10(i // 4, 0, 0, 0, seed, 0)
        assert keep[i] == (int(words[i % 4]) >= round(p * 2**32))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_unused_bits_of_last_byte_are_zero(backend):
    for n in (1, 7, 9, 129):
        m = fastopt.dropout_mask(n, 0.0, seed=3, backend=backend)   # p = 0 keeps all
        assert m[-1] == (1 << (n % 8 or 8)) - 1
        assert np.all(m[:-1] == 0xFF)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 17, 127, 129, 1023, 4097, 1_000_003])
def test_forward_backward_match_reference_bitwise(backend, dtype, n, rng):
    x = rng.standard_normal(n).astype(dtype) * 3
    dy = rng.standard_normal(n).astype(dtype)
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    for p in (0.0, 0.25, 0.5, 0.7, 1.0):
        y_ref, m_ref = ref.forward(x, p, seed)
        y, m = fastopt.dropout_forward(x, p, seed=seed, backend=backend)
        assert y.dtype == x.dtype and y.shape == x.shape
        np.testing.assert_array_equal(m, m_ref)
        # bit-identical values (view as integers: +0 vs -0 and NaN count)
        np.testing.assert_array_equal(y.view(np.uint8), y_ref.view(np.uint8))
        dx = fastopt.dropout_backward(dy, m, p, backend=backend)
        np.testing.assert_array_equal(dx.view(np.uint8), ref.backward(dy, m_ref, p).view(np.uint8))
        np.testing.assert_array_equal(m, fastopt.dropout_mask(n, p, seed=seed, backend=backend))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_values_exactly_as_specified(backend, dtype, rng):
    x = rng.standard_normal((37, 29)).astype(dtype)
    dy = rng.standard_normal((37, 29)).astype(dtype)
    for p in (0.1, 0.5, 1 / 3, 0.99):
        y, m = fastopt.dropout_forward(x, p, seed=99, backend=backend)
        keep = np.unpackbits(m, count=x.size, bitorder="little").astype(bool).reshape(x.shape)
        scale = np.dtype(dtype).type(1.0 / (1.0 - p))
        assert np.array_equal(y[keep], x[keep] * scale)          # the dtype's product, exactly
        assert np.all(y[~keep] == 0) and not np.any(np.signbit(y[~keep]))
        np.testing.assert_allclose(y[keep], x[keep].astype(np.float64) / (1 - p),
                                   rtol=2 * np.finfo(dtype).eps)
        dx = fastopt.dropout_backward(dy, m, p, backend=backend)
        assert np.array_equal(dx, dy * keep * scale)
        np.testing.assert_allclose(dx, dy.astype(np.float64) * keep / (1 - p),
                                   rtol=2 * np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.8, 0.97])
def test_keep_fraction(backend, p):
    n = 400_000
    for seed in (0, 1, 2**64 - 1):
        m = fastopt.dropout_mask(n, p, seed=seed, backend=backend)
        keep = np.unpackbits(m, count=n, bitorder="little")
        sd = math.sqrt(p * (1 - p) / n)
        assert abs(keep.mean() - (1 - p)) < 5 * sd
        # every bit position of a byte and every Philox word is used alike
        for lane in range(8):
            part = keep[lane::8]
            assert abs(part.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / part.size)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_seeds_give_different_masks(backend):
    n = 4096
    masks = {s: fastopt.dropout_mask(n, 0.5, seed=s, backend=backend).tobytes()
             for s in (0, 1, 2**32, 2**32 + 1, 2**63, 2**64 - 1)}
    assert len(set(masks.values())) == len(masks)   # high key word matters too


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_p_zero_p_one_and_eval(backend, dtype, rng):
    x = rng.standard_normal(1001).astype(dtype)
    x[3] = np.nan
    x[5] = np.inf
    y, m = fastopt.dropout_forward(x, 0.0, seed=5, backend=backend)
    np.testing.assert_array_equal(y, x)                      # scale 1: values untouched
    assert np.all(np.unpackbits(m, count=x.size, bitorder="little") == 1)
    with np.errstate(all="raise"):
        y, m = fastopt.dropout_forward(x, 1.0, seed=5, backend=backend)
    assert np.all(m == 0)
    assert np.all(y == 0) and not np.any(np.signbit(y))      # dropped NaN/inf give +0
    dx = fastopt.dropout_backward(x, m, 1.0, backend=backend)
    assert np.all(dx == 0)
    y, m = fastopt.dropout_forward(x, 0.5, seed=5, training=False, backend=backend)
    assert y is x and m is None
    assert fastopt.dropout_backward(x, None, 0.5, backend=backend) is x


def test_threshold_rounds_half_to_even():
    from fastopt import _core
    cases = [0.0, 1.0, 0.5, 0.1, 1 / 3, 2.0**-33, 3 * 2.0**-33, 5 * 2.0**-33, 1 - 2.0**-33,
             1 - 3 * 2.0**-33, np.nextafter(1.0, 0.0), 5e-324]
    for p in cases:
        t = round(p * 2**32)
        assert ref.threshold(p) == t
        assert _scalars.dropout(p).threshold == t
        if "cpp" in CPU_BACKENDS:
            assert _core.dropout_threshold(p) == t
    assert ref.threshold(2.0**-33) == 0 and ref.threshold(3 * 2.0**-33) == 2
    assert ref.threshold(1 - 2.0**-33) == 2**32   # drops everything


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_threshold_edges(backend):
    n = 2000
    # t == 0 keeps all; t == 2**32 - 1 keeps only words equal to 2**32 - 1;
    # t == 2**32 (p just below 1) drops all
    assert np.array_equal(fastopt.dropout_mask(n, 2.0**-33, seed=1, backend=backend),
                          fastopt.dropout_mask(n, 0.0, seed=1, backend=backend))
    assert not np.any(fastopt.dropout_mask(n, 1 - 2.0**-33, seed=1, backend=backend))
    p = 1 - 2.0**-32 * 1.4    # t = 2**32 - 1
    np.testing.assert_array_equal(fastopt.dropout_mask(n, p, seed=1, backend=backend),
                                  ref.mask(n, p, 1))


@pytest.mark.skipif("cpp" not in CPU_BACKENDS, reason="C++ extension not built")
def test_cpp_result_independent_of_thread_count(rng):
    from fastopt import _core
    x = rng.standard_normal(300_001).astype(np.float32)
    before = _core.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3, 5):
            _core.set_num_threads(threads)
            y, m = fastopt.dropout_forward(x, 0.4, seed=77, backend="cpp")
            outs.append((y, m, fastopt.dropout_backward(x, m, 0.4, backend="cpp"),
                         fastopt.dropout_mask(x.size, 0.4, seed=77, backend="cpp")))
    finally:
        _core.set_num_threads(before)
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_shapes_and_torch_input(backend, rng):
    x = rng.standard_normal((3, 5, 7)).astype(np.float32)
    y, m = fastopt.dropout_forward(x, 0.5, seed=11, backend=backend)
    y_flat, m_flat = fastopt.dropout_forward(x.reshape(-1), 0.5, seed=11, backend=backend)
    assert y.shape == x.shape and m.shape == (14,)
    np.testing.assert_array_equal(y.reshape(-1), y_flat)
    np.testing.assert_array_equal(m, m_flat)
    np.testing.assert_array_equal(m, fastopt.dropout_mask((3, 5, 7), 0.5, seed=11,
                                                          backend=backend))
    assert fastopt.dropout_mask((), 0.5, seed=11, backend=backend).shape == (1,)
    torch = pytest.importorskip("torch")
    yt, mt = fastopt.dropout_forward(torch.from_numpy(x), 0.5, seed=11, backend=backend)
    np.testing.assert_array_equal(yt, y)
    np.testing.assert_array_equal(mt, m)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backward_gradcheck(backend, rng):
    p, seed = 0.4, 2024
    x = rng.standard_normal((6, 7))
    w = rng.standard_normal((6, 7))          # loss = sum(w * dropout(x)): gradient = backward(w)

    def loss(xv):
        return float(np.sum(w * fastopt.dropout_forward(xv, p, seed=seed, backend=backend)[0]))

    _, mask = fastopt.dropout_forward(x, p, seed=seed, backend=backend)
    analytic = fastopt.dropout_backward(w, mask, p, backend=backend)
    result = fastopt.gradcheck(loss, [x], [analytic], rtol=1e-7)
    result.assert_passed()
    assert result.max_rel_error < 1e-7
    assert np.any(analytic == 0) and np.any(analytic != 0)


# ------------------------------------------------------------- bad inputs
def _bad_forward_calls(x):
    return [
        (ValueError, lambda: fastopt.dropout_forward(x, -0.1, seed=1)),
        (ValueError, lambda: fastopt.dropout_forward(x, 1.5, seed=1)),
        (ValueError, lambda: fastopt.dropout_forward(x, float("nan"), seed=1)),
        (TypeError, lambda: fastopt.dropout_forward(x, "0.5", seed=1)),
        (TypeError, lambda: fastopt.dropout_forward(x, None, seed=1)),
        (ValueError, lambda: fastopt.dropout_forward(x, 0.5, seed=-1)),
        (ValueError, lambda: fastopt.dropout_forward(x, 0.5, seed=2**64)),
        (TypeError, lambda: fastopt.dropout_forward(x, 0.5, seed=1.0)),
        (TypeError, lambda: fastopt.dropout_forward(x, 0.5, seed=True)),
        (TypeError, lambda: fastopt.dropout_forward(x, 0.5, seed="1")),
        (TypeError, lambda: fastopt.dropout_forward(x, 0.5)),
        (TypeError, lambda: fastopt.dropout_forward(x.astype(np.int32), 0.5, seed=1)),
        (TypeError, lambda: fastopt.dropout_forward(x.astype(np.complex64), 0.5, seed=1)),
        (TypeError, lambda: fastopt.dropout_forward(list(x), 0.5, seed=1)),
        (ValueError, lambda: fastopt.dropout_forward(x[::2], 0.5, seed=1)),
        (ValueError, lambda: fastopt.dropout_forward(x.reshape(10, 10).T, 0.5, seed=1)),
        (ValueError, lambda: fastopt.dropout_forward(x, 0.5, seed=1, backend="fortran")),
        (TypeError, lambda: fastopt.dropout_forward(x, 0.5, seed=1, training=1)),
    ]


def test_bad_forward_inputs_raise_and_change_nothing(rng):
    x = rng.standard_normal(100).astype(np.float32)
    before = x.copy()
    for exc, call in _bad_forward_calls(x):
        with pytest.raises(exc):
            call()
        np.testing.assert_array_equal(x, before)


def test_bad_backward_and_mask_inputs_raise(rng):
    dy = rng.standard_normal(100)
    before = dy.copy()
    _, m = fastopt.dropout_forward(dy, 0.5, seed=1)
    m_before = m.copy()
    bad = [
        (TypeError, lambda: fastopt.dropout_backward(dy, m.astype(np.int8), 0.5)),
        (TypeError, lambda: fastopt.dropout_backward(dy, m.view(bool), 0.5)),
        (TypeError, lambda: fastopt.dropout_backward(dy, np.unpackbits(m).astype(np.float32), 0.5)),
        (ValueError, lambda: fastopt.dropout_backward(dy, m[:-1], 0.5)),
        (ValueError, lambda: fastopt.dropout_backward(dy, np.concatenate([m, m[:1]]), 0.5)),
        (ValueError, lambda: fastopt.dropout_backward(dy, np.repeat(m, 2)[::2], 0.5)),
        (ValueError, lambda: fastopt.dropout_backward(dy, m, -0.5)),
        (ValueError, lambda: fastopt.dropout_backward(dy, m, float("nan"))),
        (TypeError, lambda: fastopt.dropout_backward(dy.astype(np.int64), m, 0.5)),
        (ValueError, lambda: fastopt.dropout_backward(dy[::2], m, 0.5)),
        (TypeError, lambda: fastopt.dropout_backward(dy, list(m), 0.5)),
        (ValueError, lambda: fastopt.dropout_mask(-1, 0.5, seed=1)),
        (TypeError, lambda: fastopt.dropout_mask(2.5, 0.5, seed=1)),
        (TypeError, lambda: fastopt.dropout_mask((2, "3"), 0.5, seed=1)),
        (ValueError, lambda: fastopt.dropout_mask(10, 1.01, seed=1)),
        (ValueError, lambda: fastopt.dropout_mask(10, 0.5, seed=2**64)),
        (TypeError, lambda: fastopt.dropout_mask(10, 0.5, seed=None)),
    ]
    for exc, call in bad:
        with pytest.raises(exc):
            call()
        np.testing.assert_array_equal(dy, before)
        np.testing.assert_array_equal(m, m_before)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_mask_that_is_not_1d_raises_on_every_backend(backend, rng):
    """A mask with the right byte count in another shape (np.packbits along rows gives
    one) was run by numpy and cpp and crashed numba's typing; every backend refuses it."""
    dy = rng.standard_normal((4, 16))
    _, m = fastopt.dropout_forward(dy, 0.5, seed=3, backend=backend)
    for shaped in (m.reshape(2, 4), m.reshape(8, 1), m.reshape(1, 1, 8)):
        with pytest.raises(ValueError, match=r"mask must be 1-D .* got shape"):
            fastopt.dropout_backward(dy, shaped, 0.5, backend=backend)
    with pytest.raises(ValueError, match=r"mask must be 1-D"):
        fastopt.dropout_backward(dy, m.reshape(8, 1), 0.5)   # the fast paths too


def test_numpy_integer_seed_and_readonly_input(rng):
    x = rng.standard_normal(50)
    x.flags.writeable = False
    y1, m1 = fastopt.dropout_forward(x, 0.5, seed=np.uint64(2**64 - 1))
    y2, m2 = fastopt.dropout_forward(x, 0.5, seed=2**64 - 1)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.skipif(not COMPILED, reason="no compiled backend")
@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 3000), seed=st.integers(0, 2**64 - 1),
       p=st.floats(0.0, 1.0, allow_nan=False))
def test_property_compiled_backends_equal_reference(n, seed, p):
    x = np.linspace(-3, 3, n, dtype=np.float32) + np.float32(0.1)
    y_ref, m_ref = ref.forward(x, p, seed)
    for backend in COMPILED:
        y, m = fastopt.dropout_forward(x, p, seed=seed, backend=backend)
        np.testing.assert_array_equal(m, m_ref)
        np.testing.assert_array_equal(y.view(np.uint32), y_ref.view(np.uint32))
