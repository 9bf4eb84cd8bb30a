"""8-bit state beside bfloat16 / float16 params (issue 16 with issue 18's
mixed precision): the reference widens param and grad to float32, runs the
float32 8-bit step and rounds the param once to nearest even; every compiled
backend equals it bit for bit; the classes hold 8-bit state for 16-bit params."""
import ml_dtypes
import numpy as np
import pytest

import fastopt
from fastopt import quantized as Q
from fastopt._rounding import f32_to_bf16_rne, f32_to_f16_rne
from fastopt.backends import available_backends
from test_quantized import _copy

COMPILED = [b for b in ("cpp", "numba") if b in available_backends()]
HALF = [np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)]
SIZES = [1, 7, 255, 257, 4097, 10 ** 5 + 3]

CASES = {   # state maps, step(p, g, states, backend)
    "adam": ((True, False), lambda p, g, s, b: fastopt.adam_step(
        p, g, s[0], s[1], step=3, lr=1e-2, weight_decay=0.1, backend=b)),
    "adamw_maximize": ((True, False), lambda p, g, s, b: fastopt.adam_step(
        p, g, s[0], s[1], step=2, lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True,
        maximize=True, backend=b)),
    "sgd_nesterov": ((True,), lambda p, g, s, b: fastopt.sgd_step(
        p, g, s[0], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, backend=b)),
    "rmsprop_centered_momentum": ((False, True, True), lambda p, g, s, b: fastopt.rmsprop_step(
        p, g, s[0], grad_avg=s[1], momentum_buffer=s[2], centered=True, momentum=0.5, lr=1e-2,
        backend=b)),
}


def _problem(n, seed, signs, dtype, grad_dtype):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(np.float32).astype(dtype)
    g = rng.standard_normal(n).astype(np.float32).astype(grad_dtype)
    states = []
    for j, s in enumerate(signs):
        x = rng.standard_normal(n).astype(np.float32) * np.float32(0.1 ** (j + 1))
        # second moments >= 0.01 > grad_avg**2 (below ~0.005 after a step): centered
        # RMSprop stays real although quantization sends small values to code 0
        states.append(fastopt.quantize(x if s else x * x + np.float32(0.01), s))
    return p, g, states


def _bits(a):
    return a.view(np.uint16 if a.itemsize == 2 else np.uint32)


def _same_states(a, b):
    return all(np.array_equal(x.codes, y.codes) and np.array_equal(_bits(x.absmax), _bits(y.absmax))
               for x, y in zip(a, b))


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_is_the_float32_step_rounded_once(dtype, case):
    """Independent statement: the float32 8-bit step on the widened values, then
    ml_dtypes' / NumPy's float32 -> 16-bit cast (round to nearest even)."""
    signs, run = CASES[case]
    half = _problem(4099, 5, signs, dtype, dtype)
    wide = (half[0].astype(np.float32), half[1].astype(np.float32), _copy(*half)[2])
    for _ in range(3):
        run(*half, "numpy")
        run(*wide, "numpy")
        assert np.array_equal(_bits(half[0]), _bits(wide[0].astype(dtype)))
        wide[0][...] = half[0].astype(np.float32)   # the next step starts from the rounded param
        assert _same_states(half[2], wide[2])


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("grad32", [False, True], ids=["grad16", "grad32"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", SIZES)
def test_backend_equals_reference_bit_for_bit(backend, dtype, grad32, case, n):
    signs, run = CASES[case]
    ref = _problem(n, n + 11, signs, dtype, np.float32 if grad32 else dtype)
    got = _copy(*ref)
    for _ in range(3):
        run(*ref, "numpy")
        run(*got, backend)
    assert np.array_equal(_bits(got[0]), _bits(ref[0]))
    assert _same_states(got[2], ref[2])


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_rounding_edges_equal_reference(backend, dtype):
    """Params whose update lands on ties, overflow, subnormals and NaN: the param's
    rounding (half.h's RNE) equals the reference's (fastopt._rounding) bit for bit."""
    rng = np.random.default_rng(1)
    n = 4096
    wide = rng.standard_normal(n).astype(np.float32)
    wide[:8] = [65504.0, -65504.0, 3e38, 1e-8, -1e-30, np.nan, 1.0, -0.0]
    p = wide.astype(dtype)
    g = (rng.standard_normal(n) * 10.0 ** rng.integers(-8, 4, n)).astype(np.float32)
    outs = []
    for b in ("numpy", backend):
        pb = p.copy()
        m, v = Q.QuantizedState((n,), True), Q.QuantizedState((n,), False)
        fastopt.adam_step(pb, g, m, v, step=1, lr=1e-3, backend=b)
        outs.append((_bits(pb).copy(), m, v))
    assert np.array_equal(outs[0][0], outs[1][0])
    assert _same_states(outs[0][1:], outs[1][1:])


def test_narrowing_is_halfh_rne():
    """The reference rounds with fastopt._rounding (the statement half.h follows)."""
    from fastopt.backends.numpy.quantized import narrow_into
    x = np.array([1.00390625, 1.01171875, 65520.0, np.nan, -3e-8], np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    for dtype, rne in ((np.dtype(ml_dtypes.bfloat16), f32_to_bf16_rne), (np.dtype(np.float16), f32_to_f16_rne)):
        out = np.zeros(x.size, dtype)
        narrow_into([out], [x])
        assert np.array_equal(out.view(np.uint16), rne(u).astype(np.uint16))


@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
def test_mixed_options_with_8bit_state_refused_and_nothing_written(backend):
    """A float32 master copy, grad_scale and stochastic rounding are not combined
    with 8-bit state in this version: a clear error and every array as it was."""
    p, g, (m, v) = _problem(5000, 2, (True, False), np.dtype(ml_dtypes.bfloat16), np.float32)
    before = [p.copy(), m.codes.copy(), v.codes.copy()]
    for kw in (dict(master_param=p.astype(np.float32)), dict(grad_scale=2.0),
               dict(stochastic_rounding=True, seed=1)):
        with pytest.raises(ValueError, match="8-bit state"):
            fastopt.adam_step(p, g, m, v, step=1, lr=0.1, backend=backend, **kw)
    with pytest.raises(TypeError):   # a float16 grad beside a bfloat16 param
        fastopt.adam_step(p, g.astype(np.float16), m, v, step=1, lr=0.1, backend=backend)
    assert np.array_equal(_bits(p), _bits(before[0]))
    assert np.array_equal(m.codes, before[1]) and np.array_equal(v.codes, before[2])


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_class_holds_8bit_state_for_16bit_params(dtype):
    """fastopt.Adam(state_bits=8) on 16-bit params: 8-bit state for the large one,
    float state for the small one, the large one's trajectory equal to the
    functional 8-bit step's."""
    rng = np.random.default_rng(4)
    big, small = (rng.standard_normal(5000).astype(dtype), rng.standard_normal(100).astype(dtype))
    ref = big.copy()
    m, v = Q.QuantizedState(ref.shape, True), Q.QuantizedState(ref.shape, False)
    opt = fastopt.Adam([big, small], lr=1e-2, state_bits=8)
    for t in range(1, 4):
        g = rng.standard_normal(5000).astype(dtype)
        opt.step([g, rng.standard_normal(100).astype(dtype)])
        fastopt.adam_step(ref, g, m, v, step=t, lr=1e-2)
    st_big, st_small = opt.state
    assert all(isinstance(x, Q.QuantizedState) for x in st_big.values())
    assert not any(isinstance(x, Q.QuantizedState) for x in st_small.values())
    assert np.array_equal(_bits(big), _bits(ref))
    assert _same_states([st_big["exp_avg"], st_big["exp_avg_sq"]], [m, v])
