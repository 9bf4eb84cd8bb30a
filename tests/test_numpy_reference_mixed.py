"""The NumPy reference's mixed precision (docs/mixed-precision.md) against closed forms.

The reference computes in float64 and rounds each stored result once to its array's type.
This file checks that the casts it relies on are single correct roundings (against an
independent nearest-value search over every 16-bit value), then hand-computed steps in
each mode: 16-bit params and states, float32 master copies, grad_scale, found_inf.
"""
import ml_dtypes
import numpy as np
import pytest

import fastopt

BF16, F16, F32 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16), np.dtype(np.float32)
HALVES = [BF16, F16]
REF = dict(backend="numpy")


def _table(dtype):
    """Every finite value of a 16-bit type, ascending, as float64, with its bit pattern."""
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    with np.errstate(invalid="ignore"):
        values = bits.view(dtype).astype(np.float64)
    keep = np.isfinite(values) & ~((values == 0) & (bits >= 0x8000))   # one zero (+0)
    order = np.argsort(values[keep], kind="stable")
    return values[keep][order], bits[keep][order]


def nearest_even(x, dtype):
    """Round-to-nearest-even of float64 values to ``dtype``, by search: the two neighbours
    of x, the nearer one, the one with an even last bit on a tie; beyond the largest
    finite value, inf from half an ulp past it (IEEE)."""
    values, bits = _table(dtype)
    finfo = ml_dtypes.finfo(dtype) if dtype == BF16 else np.finfo(dtype)
    big = float(finfo.max)
    ulp_top = big - float(values[-2])
    ax = np.abs(x)
    hi = np.searchsorted(values, ax, side="left").clip(0, values.size - 1)
    lo = (hi - 1).clip(0)
    exact = values[hi] == ax
    lo = np.where(exact, hi, lo)
    d_lo, d_hi = ax - values[lo], values[hi] - ax
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (bits[hi] % 2 == 0) & ~exact)
    out = np.where(pick_hi, values[hi], values[lo])
    out = np.where(ax >= big + ulp_top / 2, np.inf, np.where(ax > big, big, out))
    return np.copysign(out, x)


def _hard_values(dtype, rng):
    """Ties, ties plus or minus a little, subnormals, values near and beyond the top."""
    values, _ = _table(dtype)
    mids = (values[:-1] + values[1:]) / 2                       # exact in float64
    pick = rng.choice(mids.size, 3000)
    nudge = mids[pick] * 2.0 ** -40
    big = values[-1]
    x = np.concatenate([mids[pick], mids[pick] + nudge, mids[pick] - nudge,
                        rng.standard_normal(2000) * 10.0 ** rng.integers(-8, 5, 2000),
                        values[1:200] * 1.37, [big, big * (1 + 2.0 ** -12), big * 1.01, 1e300]])
    return np.concatenate([x, -x])


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_float64_casts_round_once_to_nearest_even(dtype, rng):
    x = _hard_values(dtype, rng)
    with np.errstate(over="ignore"):
        got = x.astype(dtype).astype(np.float64)
        held = np.empty(x.size, dtype)      # assignment into an array casts the same way
        held[...] = x
    np.testing.assert_array_equal(got, nearest_even(x, dtype))
    np.testing.assert_array_equal(held.astype(np.float64), got)


def test_the_search_itself_on_known_cases():
    """nearest_even is an independent statement: hand-checked ties and overflow."""
    one = 1.0
    assert nearest_even(np.array([one + 2.0 ** -8]), BF16)[0] == 1.0             # tie: even
    assert nearest_even(np.array([one + 3 * 2.0 ** -8]), BF16)[0] == 1 + 2.0 ** -6
    assert nearest_even(np.array([one + 2.0 ** -8 + 2.0 ** -40]), BF16)[0] == 1 + 2.0 ** -7
    assert nearest_even(np.array([65520.0]), F16)[0] == np.inf                     # half ulp past max
    assert nearest_even(np.array([65519.0]), F16)[0] == 65504.0
    assert nearest_even(np.array([2.0 ** -25]), F16)[0] == 0.0                     # tie with 0
    assert nearest_even(np.array([1.5 * 2.0 ** -24]), F16)[0] == 2.0 ** -23


def _rand(rng, n, dtype, low=0.1):
    x = rng.standard_normal(n)
    x = np.where(np.abs(x) < low, low, x)
    return x.astype(dtype)


def _r(x, dtype):
    return nearest_even(np.asarray(x, np.float64), np.dtype(dtype)) if np.dtype(dtype) in HALVES \
        else np.asarray(x, np.float64).astype(dtype).astype(np.float64)


@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("state", ["param", "float32"])
def test_adam_first_step_by_hand(dtype, state, rng):
    """Step 1 from zero state: m = (1-b1) g, v = (1-b2) g^2 and the update is
    lr * g / (|g| + eps) exactly (bias corrections cancel); each result rounded once."""
    n, lr, b1, b2, eps = 64, 1e-2, 0.9, 0.999, 1e-8
    sdt = dtype if state == "param" else F32
    p, g = _rand(rng, n, dtype), _rand(rng, n, dtype)
    m, v = np.zeros(n, sdt), np.zeros(n, sdt)
    x0, g0 = p.astype(np.float64), g.astype(np.float64)
    fastopt.adam_step(p, g, m, v, step=1, lr=lr, beta1=b1, beta2=b2, eps=eps, **REF)
    np.testing.assert_array_equal(m.astype(np.float64), _r((1 - b1) * g0, sdt))
    np.testing.assert_array_equal(v.astype(np.float64), _r((1 - b2) * g0 * g0, sdt))
    np.testing.assert_array_equal(p.astype(np.float64), _r(x0 - lr * g0 / (np.abs(g0) + eps), dtype))


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_master_copy_takes_the_update_and_param_its_rounding(dtype, rng):
    n, lr = 100, 0.05
    master = rng.standard_normal(n).astype(np.float32)
    p = master.astype(dtype)
    g = _rand(rng, n, dtype)
    x0, g0 = master.astype(np.float64), g.astype(np.float64)
    fastopt.sgd_step(p, g, lr=lr, master_param=master, **REF)
    want = (x0 - lr * g0).astype(np.float32)
    np.testing.assert_array_equal(master, want)
    np.testing.assert_array_equal(p.astype(np.float64), _r(want, dtype))   # RNE of the master


@pytest.mark.parametrize("dtype", HALVES + [F32], ids=str)
def test_grad_scale_divides_the_gradient(dtype, rng):
    """Plain SGD with weight decay: param - lr (grad / s + wd param), rounded once."""
    n, lr, wd, s = 50, 0.1, 0.01, 3.0
    p, g = _rand(rng, n, dtype), _rand(rng, n, dtype)
    x0, g0 = p.astype(np.float64), g.astype(np.float64)
    fastopt.sgd_step(p, g, lr=lr, weight_decay=wd, grad_scale=np.array([s], np.float32), **REF)
    np.testing.assert_array_equal(p.astype(np.float64), _r(x0 - lr * (g0 / s + wd * x0), dtype))


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_adagrad_with_float32_grad_by_hand(dtype, rng):
    n, lr = 40, 0.1
    p, g = _rand(rng, n, dtype), _rand(rng, n, F32)
    s = np.abs(_rand(rng, n, F32))
    x0, g0, s0 = p.astype(np.float64), g.astype(np.float64), s.astype(np.float64)
    fastopt.adagrad_step(p, g, s, step=1, lr=lr, **REF)
    s1 = s0 + g0 * g0
    np.testing.assert_array_equal(s.astype(np.float64), _r(s1, F32))
    np.testing.assert_array_equal(p.astype(np.float64), _r(x0 - lr * g0 / (np.sqrt(s1) + 1e-10), dtype))


def test_found_inf_writes_nothing_and_zero_runs(rng):
    p, g, buf = _rand(rng, 9, BF16), _rand(rng, 9, BF16), _rand(rng, 9, F32)
    before = [a.copy() for a in (p, g, buf)]
    fastopt.sgd_step(p, g, buf, lr=0.1, momentum=0.9, found_inf=np.ones(1, np.float32), **REF)
    for a, b in zip((p, g, buf), before):
        assert a.tobytes() == b.tobytes()
    fastopt.sgd_step(p, g, buf, lr=0.1, momentum=0.9, found_inf=np.zeros(1, np.float32), **REF)
    assert p.tobytes() != before[0].tobytes()
