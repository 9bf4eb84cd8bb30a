"""8-bit optimizer state (fastopt.quantized): maps, round trip, steps on every
CPU backend equal to the float32 NumPy reference bit for bit, bad inputs."""
import numpy as np
import pytest

import fastopt
from fastopt import quantized as Q
from fastopt.backends import available_backends

SIZES = [0, 1, 255, 256, 257, 4097, 10 ** 6 + 3]
COMPILED = [b for b in ("cpp", "numba") if b in available_backends()]


def _paper_map(signed):
    """The paper's construction in float64: decades 1e-6..1, midpoints of
    2**k (signed, mirrored) or 2**(k+1) equal parts of [0.1, 1], plus 0 and 1."""
    vals = [0.0, 1.0]
    for k in range(7):
        parts = 2 ** k if signed else 2 ** (k + 1)
        b = np.linspace(0.1, 1.0, parts + 1)
        mids = 10.0 ** (k - 6) * (b[:-1] + b[1:]) / 2
        vals += list(mids) + (list(-mids) if signed else [])
    return np.sort(np.array(vals))


@pytest.mark.parametrize("signed", [True, False])
def test_map_is_the_papers(signed):
    m = Q.dynamic_map(signed)
    assert m.dtype == np.float32 and m.shape == (256,) and np.all(np.diff(m) > 0)
    np.testing.assert_allclose(m, _paper_map(signed), rtol=2e-7, atol=0)
    assert m[-1] == 1.0 and 0.0 in m and (m[0] < -0.99 if signed else m[0] == 0.0)


@pytest.mark.parametrize("signed", [True, False])
def test_map_equals_bitsandbytes_construction(signed):
    torch = pytest.importorskip("torch")
    try:
        from bitsandbytes.functional import create_dynamic_map
        ref = create_dynamic_map(signed=signed).numpy()
    except Exception:   # bitsandbytes absent: its construction in torch, the same float32 ops
        data = []
        for i in range(7):
            b = torch.linspace(0.1, 1, (2 ** i if signed else 2 ** (i + 1)) + 1)
            means = (b[:-1] + b[1:]) / 2.0
            data += ((10 ** (i - 6)) * means).tolist()
            if signed:
                data += (-(10 ** (i - 6)) * means).tolist()
        ref = torch.Tensor(sorted(data + [0, 1.0])).numpy()
    assert np.array_equal(Q.dynamic_map(signed), ref)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("n", [1, 255, 256, 257, 5000])
def test_round_trip_bound_per_block(signed, n):
    rng = np.random.default_rng(n)
    a = (rng.standard_normal(n) * 10.0 ** rng.integers(-4, 3, n)).astype(np.float32)
    a = a if signed else np.abs(a)
    q = fastopt.quantize(a, signed)
    back = q.dequantize()
    table = Q.qmap(signed)
    for b in range(Q.blocks(n)):
        blk, out = a[b * 256:(b + 1) * 256], back[b * 256:(b + 1) * 256]
        am = np.abs(blk).max()
        assert q.absmax[b] == am
        x = blk / am
        gap = np.abs(table[None, :] - x[:, None]).min(axis=1)    # distance to the nearest value
        assert np.all(np.abs(out - blk) <= (gap + 1e-6) * am)
        assert np.abs(out).max() <= am


def test_nearest_ties_go_to_the_lower_code():
    t = Q.SIGNED_MAP
    mid = np.float32((t[130] + t[131]) / 2)
    exact = (t[131] - mid) == (mid - t[130])
    from fastopt.backends.numpy.quantized import nearest
    code = nearest(np.array([mid], np.float32), t)[0]
    assert code == (130 if exact else (131 if (t[131] - mid) < (mid - t[130]) else 130))
    assert list(nearest(t.copy(), t)) == list(range(256))


def _problem(n, seed, signed_states):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    states = []
    for j, s in enumerate(signed_states):   # later states smaller: centered RMSprop stays real
        x = rng.standard_normal(n).astype(np.float32) * np.float32(0.1 ** (j + 1))
        states.append(fastopt.quantize(x if s else x * x, s))
    return p, g, states


def _copy(p, g, states):
    return p.copy(), g.copy(), [Q.QuantizedState(q.shape, q.signed, codes=q.codes.copy(),
                                                 absmax=q.absmax.copy()) for q in states]


CASES = {
    "adam": ((True, False), lambda p, g, s, b: fastopt.adam_step(
        p, g, s[0], s[1], step=3, lr=1e-2, weight_decay=0.1, backend=b)),
    "adamw": ((True, False), lambda p, g, s, b: fastopt.adam_step(
        p, g, s[0], s[1], step=2, lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True,
        maximize=True, backend=b)),
    "sgd": ((True,), lambda p, g, s, b: fastopt.sgd_step(
        p, g, s[0], lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01, backend=b)),
    "sgd_nesterov_first": ((True,), lambda p, g, s, b: fastopt.sgd_step(
        p, g, s[0], lr=0.1, momentum=0.9, nesterov=True, first_step=True, backend=b)),
    "rmsprop": ((False,), lambda p, g, s, b: fastopt.rmsprop_step(
        p, g, s[0], lr=1e-2, weight_decay=0.1, backend=b)),
    "rmsprop_centered_momentum": ((False, True, True), lambda p, g, s, b: fastopt.rmsprop_step(
        p, g, s[0], grad_avg=s[1], momentum_buffer=s[2], centered=True, momentum=0.5, lr=1e-2,
        backend=b)),
}


def _same(a, b):
    return np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", SIZES)
def test_backend_equals_reference_bit_for_bit(backend, case, n):
    signs, run = CASES[case]
    ref = _problem(n, n + 7, signs)
    got = _copy(*ref)
    for _ in range(3):   # several steps: the re-quantized state feeds the next one
        run(ref[0], ref[1], ref[2], "numpy")
        run(got[0], got[1], got[2], backend)
    assert _same(got[0], ref[0])
    for a, b in zip(got[2], ref[2]):
        assert np.array_equal(a.codes, b.codes) and _same(a.absmax, b.absmax)


@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
def test_list_form_equals_each_alone(backend):
    a, b = _problem(300, 1, (True, False)), _problem(4097, 2, (True, False))
    la, lb = _copy(*a), _copy(*b)
    fastopt.adam_step([la[0], lb[0]], [la[1], lb[1]], [la[2][0], lb[2][0]], [la[2][1], lb[2][1]],
                      step=1, lr=1e-2, backend=backend)
    for p, g, s in (a, b):
        fastopt.adam_step(p, g, s[0], s[1], step=1, lr=1e-2, backend=backend)
    assert _same(la[0], a[0]) and _same(lb[0], b[0])
    assert np.array_equal(la[2][0].codes, a[2][0].codes)


def test_reference_tracks_float32_adam():
    n = 20000
    p, g, (m, v) = _problem(n, 3, (True, False))
    p32, m32, v32 = p.copy(), m.dequantize(), v.dequantize()
    fastopt.adam_step(p, g, m, v, step=5, lr=1e-3, backend="numpy")
    fastopt.adam_step(p32, g, m32, v32, step=5, lr=1e-3, backend="numpy")
    np.testing.assert_allclose(m.dequantize(), m32, atol=0.02 * np.abs(m32).max())
    np.testing.assert_allclose(p, p32, atol=2e-4)


def _snapshot(p, states):
    return [p.copy()] + [x.copy() for q in states for x in (q.codes, q.absmax)]


def _unchanged(before, p, states):
    after = _snapshot(p, states)
    return all(np.array_equal(x, y) for x, y in zip(before, after))


@pytest.mark.parametrize("backend", ["numpy", "auto"] + COMPILED)
def test_bad_inputs_raise_and_write_nothing(backend):
    p, g, (m, v) = _problem(1000, 4, (True, False))
    before = _snapshot(p, [m, v])
    bad = [
        (ValueError, lambda: fastopt.adam_step(p, g, v, m, step=1, lr=0.1, backend=backend)),
        (ValueError, lambda: fastopt.adam_step(
            p, g, m, Q.QuantizedState(v.shape, True), step=1, lr=0.1, backend=backend)),
        (TypeError, lambda: fastopt.adam_step(p, g, m, np.zeros_like(p), step=1, lr=0.1,
                                              backend=backend)),
        (ValueError, lambda: fastopt.adam_step(p, g, m, v, step=1, lr=0.1, amsgrad=True,
                                               max_exp_avg_sq=np.zeros_like(p), backend=backend)),
        (ValueError, lambda: fastopt.adam_step(p[:999], g[:999], m, v, step=1, lr=0.1,
                                               backend=backend)),
        (ValueError, lambda: fastopt.adam_step(p, g, m, v, step=1, lr=-1.0, backend=backend)),
        (TypeError, lambda: fastopt.adam_step(p.astype(np.float64), g.astype(np.float64), m, v,
                                              step=1, lr=0.1, backend=backend)),
        (ValueError, lambda: fastopt.adam_step(p, g, m, m, step=1, lr=0.1, backend=backend)),
        (ValueError, lambda: fastopt.rmsprop_step(p, g, m, lr=0.1, backend=backend)),
    ]
    for exc, call in bad:
        with pytest.raises(exc):
            call()
        assert _unchanged(before, p, [m, v])
    m.absmax = np.zeros(3, np.float32)   # wrong number of blocks
    with pytest.raises(ValueError, match="absmax"):
        fastopt.adam_step(p, g, m, v, step=1, lr=0.1, backend=backend)
    assert _unchanged([before[0]] + before[3:], p, [v]) and np.array_equal(m.codes, before[1])


def _around_thresholds(signed, ulps=64):
    """Every float32 within ``ulps`` of each threshold of the map, both signs."""
    t = np.abs(Q.thresholds(Q.qmap(signed))).view(np.uint32).astype(np.int64)
    bits = (t[:, None] + np.arange(-ulps, ulps + 1)[None, :]).ravel().astype(np.uint32)
    x = bits.view(np.float32)
    return np.concatenate([x, -x])


@pytest.mark.skipif("cpp" not in available_backends(), reason="cpp backend not built")
@pytest.mark.parametrize("signed", [True, False])
def test_cpp_codes_equal_the_reference_search(signed):
    """The codes the cpp steps write (whichever of the AVX-512 lines, the AVX2
    bucket table or the scalar loop this CPU takes) equal the reference's search,
    around every threshold, at the map's values, and on random bit patterns."""
    from fastopt import _core
    from fastopt.backends.cpp.quantized import SIGNED, UNSIGNED
    from fastopt.backends.numpy.quantized import nearest
    table, lut = SIGNED if signed else UNSIGNED
    rng = np.random.default_rng(11)
    near_values = (table.view(np.uint32).astype(np.int64)[:, None]
                   + np.arange(-3, 4)[None, :]).ravel().astype(np.uint32).view(np.float32)
    x = np.concatenate([
        _around_thresholds(signed), near_values,
        rng.integers(0, 2 ** 32, 2 ** 20, dtype=np.uint64).astype(np.uint32).view(np.float32),
        rng.uniform(-1, 1, 2 ** 20).astype(np.float32),
        np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 2.0, 1.0000001],
                 np.float32)])
    for n in (x.size, 4097, 17):   # SIMD tails
        got = _core.quantize_codes_8bit(x[:n], table, lut, signed, 1.0)
        np.testing.assert_array_equal(got, nearest(x[:n], table))
    # scaled by a block's reciprocal as in a step (x = value * fl(1 / absmax))
    am = np.float32(3.7e-3)
    v = (x[np.isfinite(x) & (np.abs(x) <= 1)] * am).astype(np.float32)
    got = _core.quantize_codes_8bit(v, table, lut, signed, float(am))
    np.testing.assert_array_equal(got, nearest(v * (np.float32(1) / am), table))


def test_quantize_refuses_bad_arrays():
    with pytest.raises(TypeError, match="float32 array, got float64"):
        fastopt.quantize(np.zeros(4), True)
    for other, name in (([1.0, 2.0], "list"), ((1.0,), "tuple"), (1.0, "float")):
        with pytest.raises(TypeError, match=f"float32 NumPy array, got {name}$"):
            fastopt.quantize(other, True)   # was "got float64", the dtype of np.asarray
    with pytest.raises(ValueError):
        fastopt.quantize(-np.ones(4, np.float32), False)
    with pytest.raises(ValueError):
        Q.QuantizedState((300,), True, codes=np.zeros(300, np.uint8), absmax=np.zeros(1, np.float32))
    for signed in (1, 0, "no", None, np.float32(1)):   # before: bool(signed), so "no" was signed
        with pytest.raises(TypeError, match="signed must be True or False"):
            fastopt.quantize(np.ones(4, np.float32), signed)
        with pytest.raises(TypeError, match="signed must be True or False"):
            Q.QuantizedState((4,), signed)
    assert fastopt.quantize(np.ones(4, np.float32), np.bool_(True)).signed is True
    z = Q.QuantizedState((3, 100), False)
    assert z.shape == (3, 100) and np.array_equal(z.dequantize(), np.zeros((3, 100), np.float32))


@pytest.mark.parametrize("backend", COMPILED)
def test_nearest_code_on_edges_equals_reference(backend):
    """Map values, midpoints and their float32 neighbours, -0.0, tiny values: the
    compiled search (cpp: a bucket table plus compare-steps) picks the reference's code.
    Quantized through SGD's first momentum step (buf = grad exactly), so the signed
    map; the unsigned map's search is covered by the Adam and RMSprop cases."""
    signed = True
    t = Q.qmap(signed).astype(np.float64)
    mids = (t[:-1] + t[1:]) / 2
    pts = np.concatenate([t, mids, -t, -mids, [0.0, -0.0, 1e-30, -1e-30, 1e-45, 0.3, -0.7]])
    x = pts.astype(np.float32)
    x = np.concatenate([x, np.nextafter(x, np.float32(2)), np.nextafter(x, np.float32(-2))])
    x = np.clip(x, -1 if signed else 0, 1).astype(np.float32)
    blocks = np.concatenate([x, np.ones((-x.size) % 256, np.float32)])    # every block's absmax 1
    blocks = blocks.reshape(-1, 256)
    blocks[:, -1] = 1.0
    g = blocks.reshape(-1)
    outs = []
    for b in ("numpy", backend):
        buf = Q.QuantizedState(g.shape, True)
        fastopt.sgd_step(np.zeros_like(g), g.copy(), buf, lr=0.0, momentum=0.5, first_step=True,
                         backend=b)
        outs.append(buf.codes.copy())
    assert np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_without_momentum_ignores_an_8bit_buffer(backend, dtype):
    """momentum == 0 uses no state: an (unused) QuantizedState buffer takes the float
    path, so the step equals the float step without a buffer, for every dtype."""
    rng = np.random.default_rng(7)
    p = rng.standard_normal(4097).astype(dtype)
    g = rng.standard_normal(4097).astype(dtype)
    q = fastopt.quantize(rng.standard_normal(4097).astype(np.float32), signed=True)
    codes, absmax = q.codes.copy(), q.absmax.copy()
    expected = p.copy()
    kw = dict(lr=0.1, weight_decay=0.01, backend=backend)
    fastopt.sgd_step(expected, g, None, **kw)
    fastopt.sgd_step(p, g, q, **kw)
    assert np.array_equal(p, expected)
    assert np.array_equal(q.codes, codes) and np.array_equal(q.absmax, absmax)


def _near_thresholds(signed, ulps=3):
    """Every threshold of the map (where the nearest code changes) and its float32
    neighbours up to ``ulps`` away, in [-1, 1] (signed) or [0, 1]."""
    xs = [Q.thresholds(Q.qmap(signed))]
    up = down = xs[0]
    for _ in range(ulps):
        up, down = np.nextafter(up, np.float32(2)), np.nextafter(down, np.float32(-2))
        xs += [up, down]
    return np.concatenate(xs).astype(np.float32)


@pytest.mark.parametrize("backend", COMPILED)
def test_codes_at_every_threshold_equal_reference(backend):
    """One Adam step with betas (0, 0) stores m = g and v = g * g exactly; blocks
    holding 1.0 have absmax 1, so the quantized values are the chosen floats: every
    threshold of both maps and its neighbours (cpp: the bucket table of
    fastopt.quantized.code_table, whose every float32 was also checked against the
    search offline)."""
    from fastopt.backends.numpy.quantized import nearest
    m_x = _near_thresholds(True)
    # v = fl(g * g): square roots of the unsigned thresholds and their neighbours
    r = np.sqrt(np.clip(_near_thresholds(False), 0, 1)).astype(np.float32)
    v_g = np.concatenate([r, np.nextafter(r, np.float32(2)), np.nextafter(r, np.float32(0))])
    n = max(m_x.size, v_g.size)
    pad = lambda a: np.concatenate([a, np.ones(n - a.size, np.float32)])   # noqa: E731
    g = np.stack([pad(m_x), pad(v_g)]).reshape(-1)
    g = np.concatenate([g, np.ones(-g.size % 255, np.float32)]).reshape(-1, 255)
    g = np.concatenate([g, np.ones((g.shape[0], 1), np.float32)], axis=1).reshape(-1)  # absmax 1
    m, v = Q.QuantizedState(g.shape, True), Q.QuantizedState(g.shape, False)
    fastopt.adam_step(np.zeros_like(g), g, m, v, step=1, lr=0.0, beta1=0.0, beta2=0.0,
                      backend=backend)
    assert np.all(m.absmax == 1.0) and np.all(v.absmax == 1.0)
    assert np.array_equal(m.codes, nearest(g, Q.qmap(True)))
    assert np.array_equal(v.codes, nearest((g * g).astype(np.float32), Q.qmap(False)))


def test_reference_scales_by_the_blocks_float32_reciprocal():
    """The reference's x (ratios): value * fl32(1 / absmax) for absmax in
    [2**-126, 2**126], value / absmax outside it (where the reciprocal is subnormal
    or overflows), 0 for a block of absmax 0."""
    from fastopt.backends.numpy.quantized import ratios
    rng = np.random.default_rng(3)
    absmax = np.array([3.0, 0.7, 2.0 ** -126, 1e-39, 2.0 ** 126, 3e38, 0.0], np.float32)
    vals = (rng.uniform(-1, 1, (absmax.size, 256)) * absmax[:, None]).astype(np.float32)
    x = ratios(vals.reshape(-1), absmax).reshape(absmax.size, 256)
    recip = (np.float32(1) / absmax[:5]).astype(np.float32)
    assert _same(x[:2], (vals[:2] * recip[:2, None]).astype(np.float32))
    assert _same(x[2], (vals[2] * recip[2]).astype(np.float32))
    assert _same(x[4], (vals[4] * recip[4]).astype(np.float32))
    for b in (3, 5):
        assert _same(x[b], (vals[b] / absmax[b]).astype(np.float32))
    assert np.all(x[6] == 0)
    # a product differs from the quotient: the two definitions are not the same rule
    assert not _same(x[0], (vals[0] / absmax[0]).astype(np.float32))


def threshold_blocks(scale):
    """Every threshold of the signed map times ``scale`` and its float32 neighbours,
    in blocks of 256 whose absmax is ``scale`` (each block's last element)."""
    x = _near_thresholds(True) * np.float32(scale)
    x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, -np.float32(np.inf))])
    x = np.clip(x, -np.float32(scale), np.float32(scale)).astype(np.float32)
    g = np.concatenate([x, np.full(-x.size % 255, np.float32(scale) / 2, np.float32)]).reshape(-1, 255)
    return np.concatenate([g, np.full((g.shape[0], 1), scale, np.float32)], axis=1).reshape(-1)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("scale", [3.0, 0.3, 1e-39, 2.0 ** -126, 3e38, 2.0 ** 126])
def test_codes_near_thresholds_with_inexact_reciprocals_equal_reference(backend, scale):
    """Blocks whose absmax has an inexact reciprocal (3, 0.3), a subnormal one
    (3e38: the kernels divide) or none (1e-39: subnormal absmax, divide), holding
    every threshold of the signed map times absmax and its neighbours: the compiled
    codes equal the reference's (SGD's first momentum step stores buf = grad)."""
    g = threshold_blocks(scale)
    outs = []
    for b in ("numpy", backend):
        buf = Q.QuantizedState(g.shape, True)
        fastopt.sgd_step(np.zeros_like(g), g.copy(), buf, lr=0.0, momentum=0.5, first_step=True,
                         backend=b)
        assert np.all(buf.absmax == np.float32(scale))
        outs.append(buf.codes.copy())
    assert np.array_equal(outs[0], outs[1])
