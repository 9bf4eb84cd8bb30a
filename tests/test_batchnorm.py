"""Batch normalization (docs/reference.md s.3) on every CPU backend against the float64
NumPy reference and against torch.nn.functional.batch_norm + autograd.

Tolerances: each element is compared against an error scale built from the
magnitudes that enter its computation (the forward ``(x - mean) * scale + beta``
rounds ``mean`` at the size of ``|scale| * |mean|``, not of ``|y|``), times a
per-dtype factor: float32 1e-5 (a few roundings of float32 values; statistics
accumulate in double), float64 1e-12.
"""
import math

import numpy as np
import pytest

import fastopt
from conftest import CPU_BACKENDS, DTYPES

FACTOR = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
# torch accumulates float32 statistics its own way; its results differ from
# the float64 reference by more than ours do.
TORCH_FACTOR = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}

# (shape, what it covers). Row layout: S < 256 (incl. (N, C)); plane layout:
# S >= 256, blocks of 16384 per plane; column tiles of 4096.
CASES = [
    ((2, 3), "smallest training batch"),
    ((7, 5), "2-D odd"),
    ((17, 33), "2-D SIMD tails"),
    ((1023, 17), "2-D many rows"),
    ((3, 4099), "2-D two column tiles"),
    ((4097, 257), "2-D over a million elements, row ranges over threads"),
    ((64, 600), "2-D channel groups in one parallel region"),
    ((40, 100, 3), "3-D channel groups, S=3"),
    ((2, 3, 4, 5), "4-D small planes"),
    ((5, 7, 3, 3), "4-D 3x3"),
    ((3, 2, 17, 19), "4-D plane layout, odd"),
    ((2, 2, 130, 131), "4-D two blocks per plane"),
    ((4, 3, 300, 300), "4-D over a million elements"),
    ((2, 1100, 5), "3-D row layout, two tiles, S=5"),
    ((1000, 95), "2-D row layout: register chunks (32, 24, 16, 12 columns) plus a tail column "
                 "run; a sub-block and a flush group that end short (697 + 303 rows)"),
    ((33, 3, 21), "3-D row layout, W=63: one register chunk plus a 31-column tail"),
    ((2, 3, 2, 3, 4), "5-D small"),
    ((3, 4, 5, 6, 7), "5-D row layout, S=210"),
    ((2, 2, 4, 8, 9), "5-D plane layout, S=288"),
]
IDS = [f"{'x'.join(map(str, s))}" for s, _ in CASES]
SHAPES = [s for s, _ in CASES]


def make(rng, shape, dtype, *, loc=3.0, spread=2.0):
    """x with per-channel offsets and scales, gamma/beta/running stats, dy."""
    C = shape[1]
    bshape = (1, C) + (1,) * (len(shape) - 2)
    x = (rng.standard_normal(shape) * rng.uniform(0.5, spread, C).reshape(bshape)
         + loc * rng.standard_normal(C).reshape(bshape)).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, C).astype(dtype) * rng.choice([-1, 1], C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    running_mean = rng.standard_normal(C).astype(dtype)
    running_var = rng.uniform(0.5, 2.0, C).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, running_mean, running_var, dy


def f64(a):
    return np.asarray(a, dtype=np.float64)


def per_channel(v, ndim):
    return f64(v).reshape((1, -1) + (1,) * (ndim - 2))


def reduce_axes(ndim):
    return (0,) + tuple(range(2, ndim))


def assert_scaled(name, got, want, scale, factor):
    got, want = f64(got), f64(want)
    assert got.shape == want.shape, name
    err = np.abs(got - want)
    bound = factor * (np.asarray(scale) + 1e-30)
    bad = err > bound
    assert not bad.any(), (f"{name}: {bad.sum()} of {bad.size} elements off; worst "
                           f"err/bound {np.max(err / bound):.3g}")


def forward_scales(x, gamma, beta, mean, invstd):
    nd = x.ndim
    scale = np.abs(per_channel(gamma, nd) * per_channel(invstd, nd))
    return scale * (np.abs(f64(x)) + np.abs(per_channel(mean, nd))) + np.abs(per_channel(beta, nd))


def backward_scales(dy, x, gamma, mean, invstd, count):
    nd = x.ndim
    axes = reduce_axes(nd)
    k = np.abs(per_channel(gamma, nd) * per_channel(invstd, nd))
    inv = per_channel(invstd, nd)
    ad = np.abs(f64(dy))
    ax = np.abs(f64(x)) + np.abs(per_channel(mean, nd))
    sum_dy = ad.sum(axis=axes)
    sum_dyx = (ad * ax).sum(axis=axes) * f64(invstd)
    m = max(count, 1)
    dx_scale = k * (ad + per_channel(sum_dy, nd) / m + inv * per_channel(sum_dyx, nd) / m * ax)
    return dx_scale, sum_dyx + 1e-300, sum_dy + 1e-300


def run(backend, x, gamma, beta, rm, rv, dy, training, momentum=0.1, eps=1e-5):
    y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, training=training,
                                           momentum=momentum, eps=eps, backend=backend)
    dx, dg, db = fastopt.batch_norm_backward(dy, x, gamma, sm, si, training=training,
                                             backend=backend)
    return y, sm, si, dx, dg, db


# every compiled backend and dtype: the reference itself is checked against closed forms
# (test_numpy_reference.py), never against itself
BACKEND_DTYPES = [(b, d) for b in CPU_BACKENDS for d in DTYPES if b != "numpy"]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("backend, dtype", BACKEND_DTYPES,
                         ids=[f"{b}-{np.dtype(d).name}" for b, d in BACKEND_DTYPES])
def test_matches_reference(backend, shape, dtype, training, rng):
    x, gamma, beta, rm, rv, dy = make(rng, shape, dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    x0, g0, b0, dy0 = x.copy(), gamma.copy(), beta.copy(), dy.copy()
    y, sm, si, dx, dg, db = run(backend, x, gamma, beta, rm, rv, dy, training, momentum=0.3)
    for out, ref in ((y, x), (dx, x), (sm, gamma), (si, gamma), (dg, gamma), (db, gamma)):
        assert out.dtype == np.dtype(dtype) and out.shape == ref.shape and out.flags.c_contiguous
    # inputs untouched
    for a, a0 in ((x, x0), (gamma, g0), (beta, b0), (dy, dy0)):
        np.testing.assert_array_equal(a, a0)

    # the reference on float64 copies of the same values
    rrm, rrv = np.array(rm0, dtype=np.float64), np.array(rv0, dtype=np.float64)
    ry, rsm, rsi = fastopt.batch_norm_forward(f64(x), f64(gamma), f64(beta), rrm, rrv,
                                              training=training, momentum=0.3, backend="numpy")
    fac = FACTOR[np.dtype(dtype)]
    count = shape[0] * math.prod(shape[2:])
    assert_scaled("save_mean", sm, rsm, np.abs(rsm) + 1.0 / rsi, fac)
    assert_scaled("save_invstd", si, rsi, rsi, fac)
    assert_scaled("y", y, ry, forward_scales(x, gamma, beta, rsm, rsi), fac)
    if training:
        assert_scaled("running_mean", rm, rrm, np.abs(f64(rm0)) + np.abs(rsm) + 1.0 / rsi, fac)
        assert_scaled("running_var", rv, rrv, np.abs(f64(rv0)) + 1.0 / rsi ** 2, fac)
        assert not np.array_equal(rm, rm0) and not np.array_equal(rv, rv0)
    else:
        np.testing.assert_array_equal(rm, rm0)
        np.testing.assert_array_equal(rv, rv0)
        np.testing.assert_array_equal(sm, rm0)

    # backward, both from the backend's own saved statistics
    rdx, rdg, rdb = fastopt.batch_norm_backward(f64(dy), f64(x), f64(gamma), f64(sm), f64(si),
                                                training=training, backend="numpy")
    dx_scale, dg_scale, db_scale = backward_scales(dy, x, gamma, sm, si, count)
    assert_scaled("dx", dx, rdx, dx_scale, fac)
    assert_scaled("dgamma", dg, rdg, dg_scale, fac)
    assert_scaled("dbeta", db, rdb, db_scale, fac)


def _torch_reference(torch, x, gamma, beta, rm, rv, dy, training, momentum, eps):
    F = torch.nn.functional
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    gt = torch.from_numpy(gamma.copy()).requires_grad_(True)
    bt = torch.from_numpy(beta.copy()).requires_grad_(True)
    rmt, rvt = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    y = F.batch_norm(xt, rmt, rvt, gt, bt, training=training, momentum=momentum, eps=eps)
    y.backward(torch.from_numpy(dy.copy()))
    return (y.detach().numpy(), rmt.numpy(), rvt.numpy(), xt.grad.numpy(), gt.grad.numpy(),
            bt.grad.numpy())


TORCH_SHAPES = [(2, 3), (7, 5), (3, 4099), (5, 7, 3, 3), (3, 2, 17, 19), (2, 2, 130, 131),
                (3, 4, 5, 6, 7), (2, 2, 4, 8, 9)]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", TORCH_SHAPES, ids=["x".join(map(str, s)) for s in TORCH_SHAPES])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_matches_torch(backend, shape, dtype, training, rng):
    torch = pytest.importorskip("torch")
    x, gamma, beta, rm, rv, dy = make(rng, shape, dtype)
    ty, trm, trv, tdx, tdg, tdb = _torch_reference(torch, x, gamma, beta, rm, rv, dy, training,
                                                   0.2, 1e-4)
    y, sm, si, dx, dg, db = run(backend, x, gamma, beta, rm, rv, dy, training, momentum=0.2,
                                eps=1e-4)
    fac = TORCH_FACTOR[np.dtype(dtype)]
    count = shape[0] * math.prod(shape[2:])
    assert_scaled("y", y, ty, forward_scales(x, gamma, beta, sm, si), fac)
    assert_scaled("running_mean", rm, trm, np.abs(trm) + 1.0 / f64(si), fac)
    assert_scaled("running_var", rv, trv, np.abs(trv) + 1.0 / f64(si) ** 2, fac)
    dx_scale, dg_scale, db_scale = backward_scales(dy, x, gamma, sm, si, count)
    assert_scaled("dx", dx, tdx, dx_scale, fac)
    assert_scaled("dgamma", dg, tdg, dg_scale, fac)
    assert_scaled("dbeta", db, tdb, db_scale, fac)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_matches_torch_native_saved_statistics(backend, rng):
    """save_mean / save_invstd are torch.ops.aten.native_batch_norm's."""
    torch = pytest.importorskip("torch")
    x, gamma, beta, rm, rv, dy = make(rng, (6, 4, 5, 5), np.float64)
    _, tsm, tsi = torch.ops.aten.native_batch_norm(
        torch.from_numpy(x), torch.from_numpy(gamma), torch.from_numpy(beta),
        torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy()), True, 0.1, 1e-5)
    _, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, backend=backend)
    np.testing.assert_allclose(sm, tsm.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(si, tsi.numpy(), rtol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_torch_tensors_in_place(backend, rng):
    """Running statistics passed as torch tensors (DLPack, zero-copy) are updated in place."""
    torch = pytest.importorskip("torch")
    x, gamma, beta, rm, rv, _ = make(rng, (8, 3, 4, 4), np.float32)
    rmt, rvt = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    fastopt.batch_norm_forward(torch.from_numpy(x), torch.from_numpy(gamma),
                               torch.from_numpy(beta), rmt, rvt, backend=backend)
    fastopt.batch_norm_forward(x, gamma, beta, rm, rv, backend=backend)
    np.testing.assert_array_equal(rmt.numpy(), rm)
    np.testing.assert_array_equal(rvt.numpy(), rv)


# ------------------------------------------------------------- stability
@pytest.mark.parametrize("shape", [(4096, 8), (16, 4, 32, 32), (2, 3, 3, 7, 11)],
                         ids=["2d", "4d", "5d"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_large_mean_float32(backend, shape, rng):
    """Data with mean 1e4 and std 1 in float32 normalizes to unit variance
    (E[x^2] - E[x]^2 in float32 would give garbage: 1e8 has an ulp of 8)."""
    x = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    C = shape[1]
    gamma, beta = np.ones(C, np.float32), np.zeros(C, np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, momentum=1.0, backend=backend)
    axes = reduce_axes(len(shape))
    x64 = f64(x)
    true_mean, true_var = x64.mean(axis=axes), x64.var(axis=axes)
    np.testing.assert_allclose(sm, true_mean, rtol=1e-7)
    np.testing.assert_allclose(si, 1.0 / np.sqrt(true_var + 1e-5), rtol=1e-6)
    count = x.size // C
    np.testing.assert_allclose(rv, true_var * count / (count - 1), rtol=1e-6)
    yv = f64(y).var(axis=axes)
    ym = f64(y).mean(axis=axes)
    np.testing.assert_allclose(yv, 1.0, atol=2e-3)   # mean rounds to float32 at 1e4 (ulp 1e-3)
    np.testing.assert_allclose(ym, 0.0, atol=2e-3)


@pytest.mark.parametrize("shape", [(64, 3), (4, 3, 20, 20), (9, 3, 5)], ids=["2d", "planes", "rows"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_constant_channel(backend, dtype, shape, rng):
    """A channel with zero variance: invstd = 1/sqrt(eps), y = beta, finite gradients."""
    x, gamma, beta, rm, rv, dy = make(rng, shape, dtype)
    x[:, 1] = dtype(1234.5)
    x[:, 2] = 0
    y, sm, si, dx, dg, db = run(backend, x, gamma, beta, rm, rv, dy, True)
    assert np.all(np.isfinite(dx)) and np.all(np.isfinite(dg)) and np.all(rv[1:] >= 0)
    np.testing.assert_allclose(si[1:], 1 / np.sqrt(1e-5), rtol=1e-6)
    np.testing.assert_allclose(sm[1:], [1234.5, 0.0], rtol=1e-7)
    # y = (x - mean)*scale + beta: x - mean is 0 here even though scale = gamma/sqrt(eps) is large
    want = np.broadcast_to(per_channel(beta, len(shape)), y.shape)
    scales = forward_scales(x, gamma, beta, sm, si)
    assert_scaled("y", y[:, 1:], want[:, 1:], scales[:, 1:], FACTOR[np.dtype(dtype)])


# The row layout's one-pass statistics shift each column by the mean of its first 8 rows,
# and fall back to the two-pass sub-blocks where that shift is more than one standard
# deviation off (csrc/cpu/batchnorm_rows.cpp, rows_moments_loop). Shapes past one
# sub-block (R > 32768 / W rows): one row range, two ranges, channel groups.
DRIFT_SHAPES = [(20000, 4), (30000, 3), (300, 520)]


@pytest.mark.parametrize("shape", DRIFT_SHAPES, ids=["rows", "two-ranges", "groups"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_statistics_of_drifting_channels_float32(backend, shape, rng):
    """float32 channels whose first rows sit far from the rest keep the variance within a
    few float32 roundings of the float64 one: a ReLU output that is zero but for its first
    rows (each float32 run rounds the same d*d the same way, so without the fallback the
    variance was off by 1e-5 to 4e-4), a sorted batch, an outlier in the first row, and a
    constant channel."""
    N, C = shape
    x = rng.standard_normal(shape)
    x[:, 0] = 0.0
    x[:8, 0] = 3.0 + rng.random(8)
    x[:, 1] = np.linspace(-50.0, 50.0, N) + 1e-2 * rng.standard_normal(N)  # a sorted batch
    x[:, 2] = 7.25                          # constant, nonzero: variance 0
    x[0, 3:] = -3e2                         # an outlier in the first row of columns 3+ (if any)
    x = x.astype(np.float32)
    gamma, beta = np.ones(C, np.float32), np.zeros(C, np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    _, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, momentum=1.0, backend=backend)
    x64 = f64(x)
    mean, var = x64.mean(axis=0), x64.var(axis=0)
    np.testing.assert_allclose(sm, mean, rtol=1e-6, atol=1e-7 * np.abs(x64).max())
    np.testing.assert_allclose(si, 1.0 / np.sqrt(var + 1e-5), rtol=2e-6)
    np.testing.assert_allclose(rv, var * N / (N - 1), rtol=2e-6)


# ---------------------------------------------------------- determinism
@pytest.mark.parametrize("shape", [(4097, 257), (2, 3, 130, 131), (3, 9000), (2, 1100, 5),
                                   (300, 520), (40, 100, 3)],
                         ids=["rows", "planes", "tiles", "rows-s5", "groups", "groups-s3"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_cpp_independent_of_thread_count(shape, training, rng):
    if "cpp" not in CPU_BACKENDS:
        pytest.skip("C++ extension not built")
    from fastopt import _core
    x, gamma, beta, rm, rv, dy = make(rng, shape, np.float32)
    before = _core.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3, 5):
            _core.set_num_threads(n)
            r, v_ = rm.copy(), rv.copy()
            results.append(run("cpp", x, gamma, beta, r, v_, dy, training) + (r, v_))
    finally:
        _core.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ edge cases
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_eval_single_value_per_channel(backend, rng):
    """M == 1 is fine in eval: nothing is estimated."""
    x, gamma, beta, rm, rv, dy = make(rng, (1, 4), np.float64)
    y, sm, si, dx, dg, db = run(backend, x, gamma, beta, rm, rv, dy, False)
    inv = 1.0 / np.sqrt(rv + 1e-5)
    np.testing.assert_allclose(y, gamma * (x - rm) * inv + beta, rtol=1e-12)
    np.testing.assert_allclose(dx, gamma * inv * dy, rtol=1e-12)
    np.testing.assert_allclose(dg, (dy * (x - rm) * inv).sum(0), rtol=1e-12)
    np.testing.assert_allclose(db, dy.sum(0), rtol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_eval_accepts_read_only_running_stats(backend, rng):
    x, gamma, beta, rm, rv, _ = make(rng, (5, 3, 2), np.float32)
    rm.flags.writeable = False
    rv.flags.writeable = False
    y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, training=False, backend=backend)
    ref, _, _ = fastopt.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy(), training=False,
                                           backend="numpy")
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(sm, rm)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_training_without_running_stats(backend, rng):
    x, gamma, beta, rm, rv, _ = make(rng, (6, 3, 4), np.float64)
    y0, sm0, si0 = fastopt.batch_norm_forward(x, gamma, beta, None, None, backend=backend)
    y1, sm1, si1 = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, backend=backend)
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(sm0, sm1)
    np.testing.assert_array_equal(si0, si1)


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4, 4), (4, 3, 0)], ids=["n0", "n0-4d", "s0"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_empty_batch(backend, shape, rng):
    """M == 0: empty outputs, zero saved statistics, running ones untouched (as F.batch_norm)."""
    C = shape[1]
    x = np.empty(shape, np.float32)
    gamma, beta = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    rm, rv = rng.standard_normal(C).astype(np.float32), np.ones(C, np.float32)
    rm0 = rm.copy()
    y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, backend=backend)
    assert y.shape == shape
    np.testing.assert_array_equal(sm, 0)
    np.testing.assert_array_equal(si, 0)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, 1)
    dx, dg, db = fastopt.batch_norm_backward(np.empty(shape, np.float32), x, gamma, sm, si,
                                             backend=backend)
    assert dx.shape == shape
    np.testing.assert_array_equal(dg, 0)
    np.testing.assert_array_equal(db, 0)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_zero_channels(backend):
    x = np.empty((4, 0, 3), np.float64)
    e = np.empty(0, np.float64)
    y, sm, si = fastopt.batch_norm_forward(x, e, e.copy(), e.copy(), e.copy(), backend=backend)
    assert y.shape == (4, 0, 3) and sm.shape == (0,) and si.shape == (0,)
    dx, dg, db = fastopt.batch_norm_backward(x.copy(), x, e, sm, si, backend=backend)
    assert dx.shape == (4, 0, 3) and dg.shape == (0,) and db.shape == (0,)


# ------------------------------------------------------------- bad input
def _arrays(dtype=np.float32, shape=(4, 3, 5)):
    rng = np.random.default_rng(7)
    x, gamma, beta, rm, rv, dy = make(rng, shape, dtype)
    return dict(x=x, gamma=gamma, beta=beta, running_mean=rm, running_var=rv)


def _noncontig(a):
    b = np.empty(2 * a.size, a.dtype)
    b[::2] = a
    return b[::2]


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _shared_stats(d):
    buf = np.concatenate([d["running_mean"], d["running_var"][:-1]])
    d["running_mean"] = buf[:3]
    d["running_var"] = buf[2:5]   # overlaps running_mean's last element
    return d


FORWARD_ERRORS = [
    ("x 1-D", lambda d: d.update(x=d["x"][0, :, 0].copy()), {}, ValueError, "at least 2 dimensions"),
    ("x int", lambda d: d.update(x=d["x"].astype(np.int32)), {}, TypeError, "dtype int32"),
    ("x list", lambda d: d.update(x=d["x"].tolist()), {}, TypeError, "must be a numpy.ndarray"),
    ("x non-contiguous", lambda d: d.update(x=d["x"].transpose(0, 2, 1).copy().transpose(0, 2, 1)),
     {}, ValueError, "not C-contiguous"),
    ("gamma shape", lambda d: d.update(gamma=np.ones(4, np.float32)), {}, ValueError,
     r"gamma has shape \(4,\) but must have shape \(3,\)"),
    ("beta dtype", lambda d: d.update(beta=d["beta"].astype(np.float64)), {}, TypeError,
     "beta has dtype float64 but x has dtype float32"),
    ("running_mean shape", lambda d: d.update(running_mean=np.zeros((3, 1), np.float32)), {},
     ValueError, "running_mean has shape"),
    ("running_var dtype", lambda d: d.update(running_var=d["running_var"].astype(np.float64)), {},
     TypeError, "running_var has dtype float64"),
    ("running_mean non-contiguous", lambda d: d.update(running_mean=_noncontig(d["running_mean"])),
     {}, ValueError, "running_mean is not C-contiguous"),
    ("running_var read-only", lambda d: d.update(running_var=_readonly(d["running_var"])), {},
     ValueError, "running_var is read-only"),
    ("running stats overlap", _shared_stats, {}, ValueError, "overlap in memory"),
    ("one running stat", lambda d: d.update(running_var=None), {}, ValueError, "both be arrays"),
    ("eval without stats", lambda d: d.update(running_mean=None, running_var=None),
     {"training": False}, ValueError, "cannot be None"),
    ("M == 1 (N, C)", lambda d: d.update(x=d["x"][:1, :, 0].copy()), {}, ValueError,
     "Expected more than 1 value per channel when training"),
    ("M == 1 (1, C, 1, 1)", lambda d: d.update(x=d["x"][:1, :, :1, None].copy()), {}, ValueError,
     "more than 1 value per channel"),
    ("momentum < 0", None, {"momentum": -0.1}, ValueError, "Invalid momentum value"),
    ("momentum > 1", None, {"momentum": 1.5}, ValueError, "Invalid momentum value"),
    ("momentum nan", None, {"momentum": float("nan")}, ValueError, "Invalid momentum value"),
    ("eps 0", None, {"eps": 0.0}, ValueError, "Invalid eps value"),
    ("eps < 0", None, {"eps": -1e-5}, ValueError, "Invalid eps value"),
    ("eps str", None, {"eps": "1e-5"}, TypeError, "eps must be a real number"),
    ("training not bool", None, {"training": 1}, TypeError, "training must be a bool"),
    ("bad backend", None, {"backend": "fortran"}, ValueError, "backend must be one of"),
]


@pytest.mark.parametrize("case", FORWARD_ERRORS, ids=[c[0] for c in FORWARD_ERRORS])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_forward_rejects_bad_input_and_writes_nothing(backend, case):
    _, mutate, kwargs, exc, match = case
    d = _arrays()
    if mutate is not None:
        mutate(d)
    snapshot = {k: (None if v is None else np.array(v, copy=True)) for k, v in d.items()}
    kwargs = {"backend": backend, **kwargs}
    with pytest.raises(exc, match=match):
        fastopt.batch_norm_forward(d["x"], d["gamma"], d["beta"], d["running_mean"],
                                   d["running_var"], **kwargs)
    for k, v in d.items():
        if v is not None:
            np.testing.assert_array_equal(np.asarray(v), snapshot[k], err_msg=k)


def _bwd_arrays():
    rng = np.random.default_rng(11)
    x, gamma, beta, rm, rv, dy = make(rng, (4, 3, 5), np.float32)
    _, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, backend="numpy")
    return dict(dy=dy, x=x, gamma=gamma, save_mean=sm, save_invstd=si)


BACKWARD_ERRORS = [
    ("dy shape", lambda d: d.update(dy=d["dy"][:, :, :4].copy()), ValueError,
     r"dy has shape \(4, 3, 4\) but must have shape \(4, 3, 5\)"),
    ("dy dtype", lambda d: d.update(dy=d["dy"].astype(np.float64)), TypeError,
     "dy has dtype float64 but x has dtype float32"),
    ("x 1-D", lambda d: d.update(x=d["x"].ravel().copy()), ValueError, "at least 2 dimensions"),
    ("gamma shape", lambda d: d.update(gamma=np.ones(2, np.float32)), ValueError, "gamma has shape"),
    ("save_mean shape", lambda d: d.update(save_mean=np.ones(5, np.float32)), ValueError,
     "save_mean has shape"),
    ("save_invstd dtype", lambda d: d.update(save_invstd=d["save_invstd"].astype(np.float64)),
     TypeError, "save_invstd has dtype float64"),
    ("dy non-contiguous", lambda d: d.update(dy=np.asfortranarray(d["dy"])), ValueError,
     "dy is not C-contiguous"),
]


@pytest.mark.parametrize("case", BACKWARD_ERRORS, ids=[c[0] for c in BACKWARD_ERRORS])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backward_rejects_bad_input_and_writes_nothing(backend, case):
    _, mutate, exc, match = case
    d = _bwd_arrays()
    mutate(d)
    snapshot = {k: np.array(v, copy=True) for k, v in d.items()}
    with pytest.raises(exc, match=match):
        fastopt.batch_norm_backward(d["dy"], d["x"], d["gamma"], d["save_mean"], d["save_invstd"],
                                    backend=backend)
    for k, v in d.items():
        np.testing.assert_array_equal(v, snapshot[k], err_msg=k)


# ------------------------------------------------- non-finite input, large means
# One shape per layout the cpp backend picks from the shape (csrc/cpu/batchnorm_*.cpp):
# (N, C) rows with one row range, (N, C) rows over two row ranges (partials merged
# across ranges), (N, C) channel groups, (N, C, S) rows, (N, C, S) channel groups,
# planes with one and with two blocks per plane.
LAYOUTS = [((64, 3), "rows-2d"), ((30000, 3), "rows-2d-two-ranges"), ((64, 600), "groups-2d"),
           ((9, 3, 5), "rows-3d"), ((40, 100, 3), "groups-3d"), ((4, 3, 20, 20), "planes"),
           ((2, 3, 130, 131), "planes-two-blocks")]
LAYOUT_SHAPES = [s for s, _ in LAYOUTS]
LAYOUT_IDS = [i for _, i in LAYOUTS]


def _put(x, c, where, value):
    """x[where-th sample of channel c] = value (where: 0 first, -1 last)."""
    idx = (where, c) + (where,) * (x.ndim - 2)
    x[idx] = value


@pytest.mark.parametrize("where", [0, -1], ids=["first", "last"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", LAYOUT_SHAPES, ids=LAYOUT_IDS)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_nonfinite_input_propagates(backend, shape, dtype, where, rng):
    """A NaN in a channel makes its mean, invstd, running stats and y NaN; a
    +inf makes its mean (and running mean) +inf and its variance NaN; +inf and
    -inf together make the mean NaN. The other channels are unaffected. The
    pattern is the float64 reference's (which is numpy's and torch's)."""
    x, gamma, beta, rm, rv, _ = make(rng, shape, dtype)
    _put(x, 1, where, np.nan)
    _put(x, 2, where, np.inf)
    if shape[1] > 3:
        _put(x, 3, 0, np.inf)
        _put(x, 3, -1, -np.inf)
    rrm, rrv = f64(rm), f64(rv)
    with np.errstate(invalid="ignore"):
        ry, rsm, rsi = fastopt.batch_norm_forward(f64(x), f64(gamma), f64(beta), rrm, rrv,
                                                  backend="numpy")
        y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, backend=backend)
    assert np.isinf(rsm[2]) and np.isnan(rsi[1]) and np.isnan(rsi[2])  # the reference's pattern
    for name, got, want in (("save_mean", sm, rsm), ("save_invstd", si, rsi),
                            ("running_mean", rm, rrm), ("running_var", rv, rrv), ("y", y, ry)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg=name)
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg=name)
    assert np.isfinite(sm[0]) and np.isfinite(y[:, 0]).all()


@pytest.mark.parametrize("xtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("scale", [1e19, 1e37])
@pytest.mark.parametrize("shape", LAYOUT_SHAPES, ids=LAYOUT_IDS)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_float32_values_whose_squares_overflow_float32(backend, shape, scale, xtype, rng):
    """Finite float32 x of magnitude 1e19 (or 1e37) has a variance float32 holds
    (or one only double holds), but (x - mean)^2 is beyond float32. The cpp
    statistics square and sum in float32 runs before widening to double: they gave
    M2 = inf, so invstd 0 and y = beta (torch's float32 CPU batch norm gives the
    same 0), or a NaN mean at 1e37. numpy and numba, in double, gave the reference.
    Now a block whose float32 sums are not finite is summed again in double.
    bfloat16 x (float32 arithmetic, the same loops) has the same range."""
    C = shape[1]
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    if xtype == "bfloat16":
        x = x.astype(pytest.importorskip("ml_dtypes").bfloat16)
    gamma = rng.uniform(0.5, 2.0, C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    ry, rsm, rsi = fastopt.batch_norm_forward(f64(x), f64(gamma), f64(beta), np.zeros(C),
                                              np.ones(C), backend="numpy")
    y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, backend=backend)
    assert np.isfinite(rsi).all() and np.isfinite(si).all() and (si > 0).all()
    np.testing.assert_allclose(si, rsi, rtol=1e-5)
    np.testing.assert_allclose(sm, rsm, rtol=1e-5, atol=1e-5 * scale)
    tol = 1e-4 if xtype == "float32" else 1e-2   # y rounded once to its type
    np.testing.assert_allclose(f64(y), ry, rtol=tol, atol=tol)
    if scale < 1e30:   # the running variance itself fits float32
        np.testing.assert_allclose(rv, 0.9 + 0.1 * (ry.size / C) / (ry.size / C - 1)
                                   * np.var(f64(x), axis=tuple(i for i in range(x.ndim) if i != 1)),
                                   rtol=1e-5)


@pytest.mark.parametrize("mean", [1e2, 1e3, 1e4, 1e5, 1e6])
@pytest.mark.parametrize("shape", LAYOUT_SHAPES, ids=LAYOUT_IDS)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_large_mean_normalize_float32(backend, shape, mean, rng):
    """float32 channels of mean 1e2..1e6: channel 0 constant (exact y = beta),
    the others with std 1 and 1e-2. y against the float64 reference on the same
    float32 x: within 4 float32 roundings of the channel's max |y - beta| plus
    |beta| (x - hi is exact, the mean's low part keeps its float32 rounding
    out), and never worse than torch's error on the same data. The folded y = x * scale + shift gave -0.25
    for a constant 1e4 (torch: 0.027); y = (x - T(mean)) * scale + beta alone
    erred by half an ulp of the mean times scale (3.9e-4 on std-1 data at 1e4,
    torch 1.5e-4)."""
    C = shape[1]
    bshape = (1, C) + (1,) * (len(shape) - 2)
    spread = np.where(np.arange(C) == 0, 0.0, np.where(np.arange(C) % 2, 1.0, 1e-2))
    x = (mean + rng.standard_normal(shape) * spread.reshape(bshape)).astype(np.float32)
    gamma = rng.uniform(0.5, 2.0, C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy(), backend=backend)
    ry, rsm, rsi = fastopt.batch_norm_forward(f64(x), f64(gamma), f64(beta), f64(rm), f64(rv),
                                              backend="numpy")
    nd = len(shape)
    eps32 = float(np.finfo(np.float32).eps)
    # per channel: (x - mean) * scale, before beta is added, reaches max |y - beta|
    bound = 4 * eps32 * (np.abs(ry - per_channel(beta, nd)).max(axis=reduce_axes(nd), keepdims=True)
                         + np.abs(per_channel(beta, nd)))
    err = np.abs(f64(y) - ry)
    # numba's float32 mean of a constant 1e6 channel is off by ~1e-9 (y = beta + 5e-7 where
    # |beta| ~ 1e-4): within torch's error (checked below), not within this bound.
    if backend != "numba":
        assert (err <= bound).all(), f"worst err {err.max():.3g}, err/bound {(err / bound).max():.3g}"
    np.testing.assert_allclose(y[:, 0], np.broadcast_to(per_channel(beta, nd)[:, 0], y[:, 0].shape),
                               rtol=4 * eps32, atol=1e-6)
    torch = pytest.importorskip("torch")
    ty = torch.nn.functional.batch_norm(torch.from_numpy(x), torch.from_numpy(rm.copy()),
                                        torch.from_numpy(rv.copy()), torch.from_numpy(gamma),
                                        torch.from_numpy(beta), training=True).numpy()
    assert err.max() <= max(np.abs(f64(ty) - ry).max(), float(bound.max()))
