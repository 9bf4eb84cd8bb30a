"""Batch norm without an affine transform (torch's ``affine=False``):
``gamma=None`` means 1 and ``beta=None`` means 0 on every backend, and a
``None`` saved statistic is refused before anything runs (issue 15 bug 3).

Each backend is compared with the float64 NumPy reference given explicit ones
and zeros, and with torch's ``F.batch_norm(..., weight=None, bias=None)``.
Tolerances: as tests/test_batchnorm.py (float32 1e-5, float64 1e-12, on an
error scale of the magnitudes that enter each value).
"""
import numpy as np
import pytest

import fastopt
from conftest import CPU_BACKENDS, DTYPES

FACTOR = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
SHAPES = [(2, 3), (17, 33), (3, 2, 17, 19), (2, 1100, 5), (4, 3, 300, 300)]


def _inputs(rng, shape, dtype):
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    return dict(x=x, rm=rng.standard_normal(C).astype(dtype),
                rv=rng.uniform(0.5, 2.0, C).astype(dtype),
                g=rng.uniform(0.5, 2.0, C).astype(dtype), b=rng.standard_normal(C).astype(dtype),
                dy=rng.standard_normal(shape).astype(dtype))


def _close(got, want, dtype, scale):
    err = np.abs(np.asarray(got, np.float64) - want)
    assert np.all(err <= FACTOR[np.dtype(dtype)] * scale), float(np.max(err / scale))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("which", ["gamma", "beta", "both"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_none_affine_matches_reference(backend, shape, dtype, which, training, rng):
    d = _inputs(rng, shape, dtype)
    C = shape[1]
    gamma = None if which in ("gamma", "both") else d["g"]
    beta = None if which in ("beta", "both") else d["b"]
    f64 = {k: v.astype(np.float64) for k, v in d.items()}
    rg = np.ones(C) if gamma is None else f64["g"]
    rb = np.zeros(C) if beta is None else f64["b"]
    ry, rsm, rsi = fastopt.batch_norm_forward(f64["x"], rg, rb, f64["rm"], f64["rv"],
                                              training=training, backend="numpy")
    rdx, rdg, rdb = fastopt.batch_norm_backward(f64["dy"], f64["x"], rg, rsm, rsi,
                                                training=training, backend="numpy")
    rm, rv = d["rm"].copy(), d["rv"].copy()
    y, sm, si = fastopt.batch_norm_forward(d["x"], gamma, beta, rm, rv, training=training,
                                           backend=backend)
    dx, dg, db = fastopt.batch_norm_backward(d["dy"], d["x"], gamma, sm, si, training=training,
                                             backend=backend)
    bshape = (1, C) + (1,) * (len(shape) - 2)
    scale_c = np.abs(rg * rsi)
    y_scale = (scale_c.reshape(bshape) * (np.abs(f64["x"]) + np.abs(rsm).reshape(bshape))
               + np.abs(rb).reshape(bshape) + 1.0)
    _close(y, ry, dtype, y_scale)
    _close(sm, rsm, dtype, np.abs(rsm) + 1.0)
    _close(si, rsi, dtype, np.abs(rsi))
    # the reference call updated f64's running statistics in place (training)
    _close(rm, f64["rm"], dtype, np.abs(f64["rm"]) + 1.0)
    _close(rv, f64["rv"], dtype, np.abs(f64["rv"]) + 1.0)
    M = d["x"].size // C
    _close(dg, rdg, dtype, np.sqrt(M) * 10.0 + np.abs(rdg))
    _close(db, rdb, dtype, np.sqrt(M) * 10.0 + np.abs(rdb))
    dx_scale = (np.abs(rg * rsi).reshape(bshape) * (np.abs(f64["dy"]) + 10.0)) + 1e-30
    _close(dx, rdx, dtype, dx_scale)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_none_affine_matches_torch(backend, rng):
    torch = pytest.importorskip("torch")
    d = _inputs(rng, (8, 4, 5, 5), np.float64)
    rm, rv = d["rm"].copy(), d["rv"].copy()
    y, _, _ = fastopt.batch_norm_forward(d["x"], None, None, rm, rv, backend=backend)
    trm, trv = torch.from_numpy(d["rm"].copy()), torch.from_numpy(d["rv"].copy())
    ty = torch.nn.functional.batch_norm(torch.from_numpy(d["x"]), trm, trv, None, None, True)
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("missing", ["save_mean", "save_invstd"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_none_saved_statistic_rejected_before_anything_runs(backend, missing, rng):
    d = _inputs(rng, (6, 3, 4), np.float32)
    _, sm, si = fastopt.batch_norm_forward(d["x"], d["g"], d["b"], None, None, backend=backend)
    args = dict(save_mean=sm, save_invstd=si)
    args[missing] = None
    snapshot = {k: v.copy() for k, v in d.items()}
    kept = {k: v.copy() for k, v in args.items() if v is not None}
    with pytest.raises(ValueError, match=f"{missing} is None"):
        fastopt.batch_norm_backward(d["dy"], d["x"], d["g"], args["save_mean"],
                                    args["save_invstd"], backend=backend)
    for k, v in d.items():
        np.testing.assert_array_equal(v, snapshot[k], err_msg=k)
    for k, v in kept.items():
        np.testing.assert_array_equal(args[k], v, err_msg=k)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bad_forward_input_with_none_gamma_leaves_running_stats(backend, rng):
    """A rejected call with gamma=None (beta of the wrong shape) updates nothing."""
    d = _inputs(rng, (6, 3, 4), np.float64)
    rm, rv = d["rm"].copy(), d["rv"].copy()
    with pytest.raises(ValueError, match="beta has shape"):
        fastopt.batch_norm_forward(d["x"], None, np.zeros(2), rm, rv, backend=backend)
    np.testing.assert_array_equal(rm, d["rm"])
    np.testing.assert_array_equal(rv, d["rv"])
