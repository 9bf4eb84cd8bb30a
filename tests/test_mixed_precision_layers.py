"""Batch norm and dropout on float16 / bfloat16 arrays (DESIGN s.7, issue 18).

Batch norm: a 16-bit ``x`` / ``dy`` with float32 ``gamma``, ``beta``, running and
saved statistics; ``y`` / ``dx`` in ``x``'s type, ``dgamma`` / ``dbeta`` float32.
Dropout: any of the four types, the mask independent of the type.

Tolerances. A compiled backend computes in float32 (statistics in float32 runs
flushed to double) and rounds each stored 16-bit result once, to nearest even:
``|got - exact| <= u16 * |exact| + FACTOR32 * scale``, with ``u16`` the 16-bit unit
roundoff (2**-8 bfloat16, 2**-11 float16; plus half the smallest float16
subnormal) and the float32 term the one test_batchnorm.py uses for float32
kernels. The float64 reference is run on the same 16-bit values widened to
float64 (exactly), so the only differences are the compiled float32 arithmetic
and the final rounding.
"""
import math

import ml_dtypes
import numpy as np
import pytest

import fastopt
from fastopt.backends.numpy import dropout as ref_dropout
from conftest import COMPILED_BACKENDS, CPU_BACKENDS
from test_batchnorm import (SHAPES, IDS, backward_scales, f64, forward_scales, make,
                            per_channel)

BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
HALF = [F16, BF16]
HALF_IDS = ["f16", "bf16"]
ALL_TYPES = [F16, BF16, np.dtype(np.float32), np.dtype(np.float64)]
ALL_IDS = ["f16", "bf16", "f32", "f64"]
U16 = {F16: 2.0 ** -11, BF16: 2.0 ** -8}
TINY16 = {F16: 2.0 ** -25, BF16: 0.0}   # half the smallest float16 subnormal
FACTOR32 = 1e-5
SIZES = [0, 1, 7, 15, 17, 1023, 4097, 1_000_003]


def bits(a):
    return np.ascontiguousarray(a).view(np.uint16 if a.dtype.itemsize == 2 else
                                        np.uint32 if a.dtype.itemsize == 4 else np.uint64)


def assert_16bit_close(name, got, want, scale, dtype, ulps=1.0):
    """|got - want| <= ulps * u16 * |want| + FACTOR32 * scale (+ float16 subnormal spacing)."""
    got, want = f64(got), f64(want)
    assert got.shape == want.shape, name
    bound = (ulps * U16[dtype] * np.abs(want) + FACTOR32 * (np.asarray(scale) + 1e-30)
             ) * (1 + 2.0 ** -10) + ulps * TINY16[dtype]
    err = np.abs(got - want)
    bad = ~(err <= bound)
    assert not bad.any(), (f"{name}: {bad.sum()} of {bad.size} off; worst err/bound "
                           f"{np.max(err / bound):.3g}")


def assert_scaled32(name, got, want, scale):
    got, want = f64(got), f64(want)
    err = np.abs(got - want)
    bound = FACTOR32 * (np.asarray(scale) + 1e-30)
    assert not (err > bound).any(), f"{name}: worst err/bound {np.max(err / bound):.3g}"


def assert_same_for_thread_counts(run):
    """``run()`` (a tuple of arrays) gives identical arrays with 1, 2, 3 and 5 cpp threads."""
    if "cpp" not in CPU_BACKENDS:
        pytest.skip("C++ extension not built")
    from fastopt import _core
    before = _core.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3, 5):
            _core.set_num_threads(n)
            results.append(run())
    finally:
        _core.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def make16(rng, shape, dtype):
    """make()'s data with x and dy stored in ``dtype``, the rest float32."""
    x, gamma, beta, rm, rv, dy = make(rng, shape, np.float32)
    return x.astype(dtype), gamma, beta, rm, rv, dy.astype(dtype)


# ---------------------------------------------------------------- batch norm
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_batch_norm_16bit_matches_reference(backend, dtype, shape, training, rng):
    x, gamma, beta, rm, rv, dy = make16(rng, shape, dtype)
    rm0, rv0, x0, dy0 = rm.copy(), rv.copy(), x.copy(), dy.copy()
    y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, training=training,
                                           momentum=0.3, backend=backend)
    assert y.dtype == dtype and y.shape == x.shape
    assert sm.dtype == np.float32 and si.dtype == np.float32
    np.testing.assert_array_equal(bits(x), bits(x0))
    rrm, rrv = f64(rm0), f64(rv0)
    ry, rsm, rsi = fastopt.batch_norm_forward(f64(x), f64(gamma), f64(beta), rrm, rrv,
                                              training=training, momentum=0.3, backend="numpy")
    assert_scaled32("save_mean", sm, rsm, np.abs(rsm) + 1.0 / rsi)
    assert_scaled32("save_invstd", si, rsi, rsi)
    assert_16bit_close("y", y, ry, forward_scales(x, gamma, beta, rsm, rsi), dtype)
    if training:
        assert rm.dtype == np.float32
        assert_scaled32("running_mean", rm, rrm, np.abs(f64(rm0)) + np.abs(rsm) + 1.0 / rsi)
        assert_scaled32("running_var", rv, rrv, np.abs(f64(rv0)) + 1.0 / rsi ** 2)
    else:
        np.testing.assert_array_equal(rm, rm0)
        np.testing.assert_array_equal(rv, rv0)

    dx, dg, db = fastopt.batch_norm_backward(dy, x, gamma, sm, si, training=training,
                                             backend=backend)
    assert dx.dtype == dtype and dg.dtype == np.float32 and db.dtype == np.float32
    np.testing.assert_array_equal(bits(dy), bits(dy0))
    rdx, rdg, rdb = fastopt.batch_norm_backward(f64(dy), f64(x), f64(gamma), f64(sm), f64(si),
                                                training=training, backend="numpy")
    count = shape[0] * math.prod(shape[2:])
    dx_scale, dg_scale, db_scale = backward_scales(dy, x, gamma, sm, si, count)
    assert_16bit_close("dx", dx, rdx, dx_scale, dtype)
    assert_scaled32("dgamma", dg, rdg, dg_scale)
    assert_scaled32("dbeta", db, rdb, db_scale)


@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("shape", [(4097, 257), (2, 3, 130, 131), (3, 9000), (2, 1100, 5),
                                   (300, 520), (40, 100, 3)],
                         ids=["rows", "planes", "tiles", "rows-s5", "groups", "groups-s3"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_16bit_cpp_independent_of_thread_count(shape, training, dtype, rng):
    x, gamma, beta, rm, rv, dy = make16(rng, shape, dtype)

    def run():
        r, v_ = rm.copy(), rv.copy()
        y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, r, v_, training=training,
                                               backend="cpp")
        dx, dg, db = fastopt.batch_norm_backward(dy, x, gamma, sm, si, training=training,
                                                 backend="cpp")
        return bits(y), sm, si, r, v_, bits(dx), dg, db

    assert_same_for_thread_counts(run)


@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_batch_norm_16bit_none_affine_and_no_running_stats(backend, dtype, rng):
    """gamma/beta None (affine=False) and untracked statistics with a 16-bit x."""
    x, gamma, beta, rm, rv, dy = make16(rng, (6, 4, 5, 5), dtype)
    y, sm, si = fastopt.batch_norm_forward(x, None, None, None, None, backend=backend)
    y1, sm1, si1 = fastopt.batch_norm_forward(x, np.ones(4, np.float32), np.zeros(4, np.float32),
                                              rm, rv, backend=backend)
    np.testing.assert_array_equal(bits(y), bits(y1))
    np.testing.assert_array_equal(sm, sm1)
    dx, dg, db = fastopt.batch_norm_backward(dy, x, None, sm, si, backend=backend)
    dx1, dg1, db1 = fastopt.batch_norm_backward(dy, x, np.ones(4, np.float32), sm, si,
                                                backend=backend)
    np.testing.assert_array_equal(bits(dx), bits(dx1))
    np.testing.assert_array_equal(dg, dg1)


@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_batch_norm_16bit_nonfinite_and_large_mean(backend, dtype, rng):
    """A NaN in a channel makes it NaN; the others keep their accuracy; a channel of
    mean 1e3 (bfloat16 ulp 4) normalizes to within the 16-bit rounding of y."""
    x, gamma, beta, rm, rv, _ = make16(rng, (64, 3, 9), dtype)
    x[5, 1, 2] = np.nan
    x[:, 2] = (1000.0 + rng.standard_normal((64, 9)) * 30.0).astype(dtype)
    with np.errstate(invalid="ignore"):
        y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, backend=backend)
        ry, rsm, rsi = fastopt.batch_norm_forward(f64(x), f64(gamma), f64(beta), None, None,
                                                  backend="numpy")
    assert np.isnan(f64(y[:, 1])).all() and np.isnan(sm[1]) and np.isnan(rm[1])
    ok = [0, 2]
    assert_16bit_close("y", y[:, ok], ry[:, ok],
                       forward_scales(x, gamma, beta, rsm, rsi)[:, ok], dtype)


def _bn_args(dtype=BF16):
    rng = np.random.default_rng(5)
    x, gamma, beta, rm, rv, dy = make16(rng, (4, 3, 5), dtype)
    return dict(x=x, gamma=gamma, beta=beta, running_mean=rm, running_var=rv)


BN_TYPE_ERRORS = [
    ("float16 gamma with bfloat16 x", dict(gamma=np.float16), "gamma has dtype float16 but must be float32"),
    ("bfloat16 beta", dict(beta=BF16), "beta has dtype bfloat16 but must be float32"),
    ("float64 running stats with bfloat16 x", dict(running_mean=np.float64, running_var=np.float64),
     "running_mean has dtype float64 but must be float32"),
    ("bfloat16 running_var", dict(running_var=BF16), "running_var has dtype bfloat16"),
    ("float16 gamma with float32 x", dict(x=np.float32, gamma=np.float16),
     "gamma has dtype float16 but x has dtype float32"),
    ("float32 running stats with float64 x", dict(x=np.float64), "gamma has dtype float32 but x has"),
    ("int16 x", dict(x=np.int16), "x has dtype int16"),
]


@pytest.mark.parametrize("case", BN_TYPE_ERRORS, ids=[c[0] for c in BN_TYPE_ERRORS])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_batch_norm_bad_type_mix_raises_and_writes_nothing(backend, case):
    _, types, match = case
    d = _bn_args()
    for k, t in types.items():
        d[k] = d[k].astype(t)
    snap = {k: bits(v).copy() if v.dtype.itemsize != 8 else v.copy() for k, v in d.items()}
    with pytest.raises(TypeError, match=match):
        fastopt.batch_norm_forward(d["x"], d["gamma"], d["beta"], d["running_mean"],
                                   d["running_var"], backend=backend)
    for k, v in d.items():
        np.testing.assert_array_equal(bits(v) if v.dtype.itemsize != 8 else v, snap[k], err_msg=k)


BN_BACKWARD_TYPE_ERRORS = [
    ("float32 dy with bfloat16 x", dict(dy=np.float32), "dy has dtype float32 but x has dtype bfloat16"),
    ("float16 dy with bfloat16 x", dict(dy=np.float16), "dy has dtype float16 but x has dtype bfloat16"),
    ("bfloat16 save_mean", dict(save_mean=BF16), "save_mean has dtype bfloat16 but must be float32"),
    ("float64 save_invstd", dict(save_invstd=np.float64), "save_invstd has dtype float64"),
    ("float16 gamma", dict(gamma=np.float16), "gamma has dtype float16 but must be float32"),
]


@pytest.mark.parametrize("case", BN_BACKWARD_TYPE_ERRORS, ids=[c[0] for c in BN_BACKWARD_TYPE_ERRORS])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_batch_norm_backward_bad_type_mix_raises(backend, case):
    _, types, match = case
    d = _bn_args()
    _, sm, si = fastopt.batch_norm_forward(d["x"], d["gamma"], d["beta"], None, None,
                                           backend="numpy")
    args = dict(dy=d["x"].copy(), x=d["x"], gamma=d["gamma"], save_mean=sm, save_invstd=si)
    for k, t in types.items():
        args[k] = args[k].astype(t)
    with pytest.raises(TypeError, match=match):
        fastopt.batch_norm_backward(args["dy"], args["x"], args["gamma"], args["save_mean"],
                                    args["save_invstd"], backend=backend)


# ------------------------------------------------------------------- dropout
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_dropout_mask_does_not_depend_on_the_type(backend, n, rng):
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    x = rng.standard_normal(n)
    want = fastopt.dropout_mask(n, 0.35, seed=seed, backend=backend)
    np.testing.assert_array_equal(want, ref_dropout.mask(n, 0.35, seed))
    for dtype in ALL_TYPES:
        _, m = fastopt.dropout_forward(x.astype(dtype), 0.35, seed=seed, backend=backend)
        np.testing.assert_array_equal(m, want, err_msg=str(dtype))


def _float32_formula(a, keep, p):
    """The compute-type formula: round16(float32(a) * float32(1 / (1 - p))) where kept, +0
    where dropped (ml_dtypes/numpy round float32 to 16 bits to nearest even)."""
    s = np.float32(0.0 if p == 1.0 else 1.0 / (1.0 - p))
    with np.errstate(invalid="ignore", over="ignore"):
        v = (a.astype(np.float32) * s).astype(a.dtype)
    return np.where(keep.reshape(a.shape), v, np.zeros((), a.dtype))


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 17, 127, 129, 1023, 4097, 1_000_003])
@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_dropout_16bit_values(backend, dtype, n, rng):
    """Bit for bit the float32 formula rounded once; within one 16-bit step of the
    float64 reference (which rounds the exact product once)."""
    x = (rng.standard_normal(n) * 3).astype(dtype)
    dy = rng.standard_normal(n).astype(dtype)
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    for p in (0.0, 0.1, 0.25, 0.5, 0.7, 1.0):
        y, m = fastopt.dropout_forward(x, p, seed=seed, backend=backend)
        keep = ref_dropout.keep(n, p, seed)
        assert y.dtype == dtype and y.shape == x.shape
        np.testing.assert_array_equal(m, ref_dropout.mask(n, p, seed))
        np.testing.assert_array_equal(bits(y), bits(_float32_formula(x, keep, p)))
        # the reference rounds the exact product, the kernels the float32 product: where
        # that lands on a 16-bit tie they differ by one 16-bit step (2 unit roundoffs)
        y_ref, _ = ref_dropout.forward(x, p, seed)
        assert_16bit_close("y", y, y_ref, 0.0, dtype, ulps=2)
        dx = fastopt.dropout_backward(dy, m, p, backend=backend)
        assert dx.dtype == dtype
        np.testing.assert_array_equal(bits(dx), bits(_float32_formula(dy, keep, p)))
        assert_16bit_close("dx", dx, ref_dropout.backward(dy, m, p), 0.0, dtype, ulps=2)


@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
def test_dropout_16bit_cpp_equals_numba(dtype, rng):
    if not {"cpp", "numba"} <= set(CPU_BACKENDS):
        pytest.skip("needs both compiled backends")
    x = (rng.standard_normal((1000, 1001)) * 100).astype(dtype)
    for p in (0.1, 1 / 3, 0.9):
        yc, mc = fastopt.dropout_forward(x, p, seed=42, backend="cpp")
        yn, mn = fastopt.dropout_forward(x, p, seed=42, backend="numba")
        np.testing.assert_array_equal(mc, mn)
        np.testing.assert_array_equal(bits(yc), bits(yn))
        np.testing.assert_array_equal(
            bits(fastopt.dropout_backward(x, mc, p, backend="cpp")),
            bits(fastopt.dropout_backward(x, mc, p, backend="numba")))


@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_dropout_16bit_special_values(backend, dtype):
    """Kept NaN stays NaN, kept inf stays inf, overflow of x * scale rounds to inf
    (float16), dropped values are +0; p = 0 returns the values unchanged."""
    big = 60000.0 if dtype == F16 else 3e38
    x = np.array([np.nan, np.inf, -np.inf, big, -big, 1.0, -0.0, 6e-8] * 64).astype(dtype)
    y, m = fastopt.dropout_forward(x, 0.0, seed=3, backend=backend)
    np.testing.assert_array_equal(bits(y), bits(x))
    y, m = fastopt.dropout_forward(x, 0.5, seed=3, backend=backend)
    keep = ref_dropout.keep(x.size, 0.5, 3)
    yf = f64(y)
    assert np.all(yf[~keep] == 0) and not np.any(np.signbit(yf[~keep]))
    xf = f64(x)
    with np.errstate(invalid="ignore", over="ignore"):
        want = xf * 2.0
    np.testing.assert_array_equal(np.isnan(yf[keep]), np.isnan(want[keep]))
    finite = keep & np.isfinite(want)
    with np.errstate(over="ignore"):   # 6e38 rounds to bfloat16 inf, as x * 2 does in float32
        assert np.all(yf[finite] == want[finite].astype(dtype).astype(np.float64))
    assert np.all(np.isinf(yf[keep & np.isinf(want)]))
    y, m = fastopt.dropout_forward(x, 1.0, seed=3, backend=backend)
    assert not np.any(m) and np.all(bits(y) == 0)


@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
def test_dropout_16bit_cpp_independent_of_thread_count(dtype, rng):
    x = rng.standard_normal(300_001).astype(dtype)

    def run():
        y, m = fastopt.dropout_forward(x, 0.4, seed=77, backend="cpp")
        return bits(y), m, bits(fastopt.dropout_backward(x, m, 0.4, backend="cpp"))

    assert_same_for_thread_counts(run)


def test_dropout_backward_mask_from_another_type(rng):
    """A mask drawn for float32 activations drives a bfloat16 backward (same bits)."""
    x = rng.standard_normal(999).astype(np.float32)
    _, m = fastopt.dropout_forward(x, 0.3, seed=9)
    dy = rng.standard_normal(999).astype(BF16)
    dx = fastopt.dropout_backward(dy, m, 0.3)
    keep = ref_dropout.keep(999, 0.3, 9)
    np.testing.assert_array_equal(bits(dx), bits(_float32_formula(dy, keep, 0.3)))


# --------------------------------------------------------------------- torch
TORCH_BN_SHAPES = [(7, 5), (3, 4099), (5, 7, 3, 3), (3, 2, 17, 19), (2, 2, 130, 131), (3, 4, 5, 6, 7)]


def _torch_dtype(torch, dtype):
    return torch.bfloat16 if dtype == BF16 else torch.float16


def _to_torch(torch, a):
    """A torch tensor holding the same values (16-bit arrays through float32: exact)."""
    if a.dtype.itemsize == 2:
        return torch.from_numpy(a.astype(np.float32)).to(_torch_dtype(torch, a.dtype))
    return torch.from_numpy(a.copy())


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", TORCH_BN_SHAPES, ids=["x".join(map(str, s)) for s in TORCH_BN_SHAPES])
@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_batch_norm_16bit_matches_torch(backend, dtype, shape, training, rng):
    """torch.nn.functional.batch_norm on a 16-bit CPU tensor with float32 weight, bias and
    running statistics (torch's mixed-type CPU kernel): y and dx within two 16-bit steps
    (each side rounds once), statistics and dweight/dbias to float32 accuracy."""
    torch = pytest.importorskip("torch")
    x, gamma, beta, rm, rv, dy = make16(rng, shape, dtype)
    xt = _to_torch(torch, x).requires_grad_(True)
    gt = torch.from_numpy(gamma.copy()).requires_grad_(True)
    bt = torch.from_numpy(beta.copy()).requires_grad_(True)
    rmt, rvt = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    yt = torch.nn.functional.batch_norm(xt, rmt, rvt, gt, bt, training=training, momentum=0.2,
                                        eps=1e-4)
    yt.backward(_to_torch(torch, dy))
    assert yt.dtype == _torch_dtype(torch, dtype)
    y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, training=training,
                                           momentum=0.2, eps=1e-4, backend=backend)
    dx, dg, db = fastopt.batch_norm_backward(dy, x, gamma, sm, si, training=training,
                                             backend=backend)
    tf = lambda t: t.detach().float().numpy()  # noqa: E731
    assert_16bit_close("y", y, tf(yt), forward_scales(x, gamma, beta, sm, si) * 10, dtype, ulps=2)
    np.testing.assert_allclose(rm, rmt.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(rv, rvt.numpy(), rtol=1e-4, atol=1e-5)
    count = shape[0] * math.prod(shape[2:])
    dx_scale, dg_scale, db_scale = backward_scales(dy, x, gamma, sm, si, count)
    assert_16bit_close("dx", dx, tf(xt.grad), dx_scale * 10, dtype, ulps=2)
    assert_scaled32("dgamma", dg, tf(gt.grad), dg_scale * 10)
    assert_scaled32("dbeta", db, tf(bt.grad), db_scale * 10)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_dropout_16bit_matches_torch_semantics(backend, dtype, p, rng):
    """torch.nn.functional.dropout on a 16-bit CPU tensor: same keep fraction, kept values
    x / (1 - p). torch multiplies by 1 / (1 - p) rounded to the 16-bit type; fastopt keeps
    the scale in float32 (one rounding per result), so the two agree to 3 16-bit roundings."""
    torch = pytest.importorskip("torch")
    n = 200_000
    x = (rng.standard_normal(n) + 0.1).astype(dtype)
    y, m = fastopt.dropout_forward(x, p, seed=123, backend=backend)
    torch.manual_seed(0)
    yt = torch.nn.functional.dropout(_to_torch(torch, x), p, training=True).float().numpy()
    kt, k = yt != 0, ref_dropout.keep(n, p, 123)
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(kt.mean() - (1 - p)) < 5 * sd and abs(k.mean() - (1 - p)) < 5 * sd
    both = kt & k
    assert_16bit_close("kept values", f64(y)[both], f64(yt)[both], 0.0, dtype, ulps=3)
    exact = f64(x)[k] / (1 - p)
    assert_16bit_close("y = x / (1 - p)", f64(y)[k], exact, np.abs(exact), dtype)


# ------------------------------------------------ CUDA kernels, emulated on the CPU
# csrc/cuda/{dropout,batchnorm}.cu compiled for the host (tests/test_cuda_emulated.py):
# the 16-bit entry points run through fastopt.backends.cuda unchanged, cupy replaced.
@pytest.fixture(scope="module")
def emu_dropout16(tmp_path_factory):
    from test_cuda_emulated import CXX, build_host
    if CXX is None:
        pytest.skip("no C++ compiler to build the host emulation")
    return build_host("dropout", tmp_path_factory.mktemp("cuda_host_dropout16"), "shim_block.h")


@pytest.fixture(scope="module")
def emu_bn16(tmp_path_factory):
    from test_cuda_emulated import CXX, build_host
    if CXX is None:
        pytest.skip("no C++ compiler to build the host emulation")
    return build_host("batchnorm", tmp_path_factory.mktemp("cuda_host_bn16"), "shim_block.h")


@pytest.mark.parametrize("unaligned", [False, True], ids=["aligned", "unaligned"])
@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
@pytest.mark.parametrize("n,p", [(1, 0.5), (7, 0.1), (9, 1.0), (1003, 0.3), (70_001, 1 / 3)])
def test_emulated_cuda_dropout_16bit(n, p, dtype, unaligned, rng, emu_dropout16, monkeypatch):
    """The CUDA 16-bit dropout kernels give the float32 formula bit for bit (so the
    C++ backend's bits), vector (16-byte) and scalar paths alike."""
    from test_cuda_emulated import emulated
    from fastopt.backends.cuda import dropout as cuda_dropout
    seed = 2**63 + 11

    def arr(v):
        a = np.empty(v.size + unaligned, dtype)[unaligned:]
        a[...] = v.astype(dtype)
        return a
    x, dy = arr(rng.standard_normal(n) * 4), arr(rng.standard_normal(n))
    with emulated(monkeypatch, emu_dropout16, grid_cap=5, block=256, two_d=True):
        y, m = cuda_dropout.forward(x, p, seed)
        dx = cuda_dropout.backward(dy, m, p)
    keep = ref_dropout.keep(n, p, seed)
    np.testing.assert_array_equal(m, ref_dropout.mask(n, p, seed))
    assert y.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(bits(y), bits(_float32_formula(x, keep, p)))
    np.testing.assert_array_equal(bits(dx), bits(_float32_formula(dy, keep, p)))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(5, 3), (300, 2), (2, 3, 7, 9), (2, 1, 20_001)], ids=str)
@pytest.mark.parametrize("dtype", HALF, ids=HALF_IDS)
def test_emulated_cuda_batch_norm_16bit(shape, dtype, training, rng, emu_bn16, monkeypatch):
    """The CUDA batch norm kernels on a 16-bit x (float32 statistics) against the float64
    reference, within the 16-bit rounding of y and dx."""
    from test_cuda_emulated import emulated
    from fastopt.backends.cuda import batchnorm as cuda_bn
    monkeypatch.setattr(cuda_bn, "PIECE", 4096)     # several pieces on small data
    x, gamma, beta, rm, rv, dy = make16(rng, shape, dtype)
    C = shape[1]
    rrm, rrv = f64(rm), f64(rv)
    ry, rsm, rsi = fastopt.batch_norm_forward(f64(x), f64(gamma), f64(beta), rrm, rrv,
                                              training=training, backend="numpy")
    y, sm, si = np.empty(shape, dtype), np.empty(C, np.float32), np.empty(C, np.float32)
    with emulated(monkeypatch, emu_bn16, grid_cap=3, two_d=True):
        cuda_bn.batch_norm_forward(x, y, gamma, beta, rm, rv, sm, si, training=training,
                                   momentum=0.1, eps=1e-5)
    assert_scaled32("save_mean", sm, rsm, np.abs(rsm) + 1.0 / rsi)
    assert_scaled32("save_invstd", si, rsi, rsi)
    assert_scaled32("running_var", rv, rrv, np.abs(rrv) + 1.0 / rsi ** 2)
    assert_16bit_close("y", y, ry, forward_scales(x, gamma, beta, rsm, rsi), dtype)
    rdx, rdg, rdb = fastopt.batch_norm_backward(f64(dy), f64(x), f64(gamma), f64(sm), f64(si),
                                                training=training, backend="numpy")
    dx, dg, db = np.empty(shape, dtype), np.empty(C, np.float32), np.empty(C, np.float32)
    with emulated(monkeypatch, emu_bn16, grid_cap=3, two_d=True):
        cuda_bn.batch_norm_backward(dy, x, gamma, sm, si, dx, dg, db, training=training)
    count = shape[0] * math.prod(shape[2:])
    dx_scale, dg_scale, db_scale = backward_scales(dy, x, gamma, sm, si, count)
    assert_16bit_close("dx", dx, rdx, dx_scale, dtype)
    assert_scaled32("dgamma", dg, rdg, dg_scale)
    assert_scaled32("dbeta", db, rdb, db_scale)


# ----------------------------------------------------------- fastopt.torch layers
def _torch_16bit_params():
    torch = pytest.importorskip("torch")
    return torch, [torch.bfloat16, torch.float16]


def _normwise(a, b, dtype_t, ulps, what):
    """max |a - b| <= ulps * u16 * max |b| (torch tensors; u16 of the 16-bit type)."""
    import torch
    u = 2.0 ** -8 if dtype_t == torch.bfloat16 else 2.0 ** -11
    a, b = a.detach().double(), b.detach().double()
    err, scale = (a - b).abs().max().item(), b.abs().max().item()
    assert err <= ulps * u * scale + 1e-30, f"{what}: max err {err:.3g}, bound {ulps * u * scale:.3g}"


BN_MODULES = [("BatchNorm1d", (16, 5)), ("BatchNorm1d", (8, 5, 7)), ("BatchNorm2d", (4, 3, 6, 5)),
              ("BatchNorm3d", (2, 3, 4, 3, 5))]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("params", ["float32", "16bit"])
@pytest.mark.parametrize("half", ["bf16", "f16"])
@pytest.mark.parametrize("name, shape", BN_MODULES, ids=[f"{n}-{len(s)}d" for n, s in BN_MODULES])
def test_torch_batch_norm_modules_16bit(name, shape, half, params, training):
    """fastopt.torch.BatchNormXd on a 16-bit input does what torch.nn.BatchNormXd does:
    a float32 module (autocast keeps BN parameters float32; bf16 activations) and a module
    converted with .to(torch.bfloat16 / float16): y and the gradients in torch's types,
    the running statistics in the buffers' types, the values to 16-bit rounding."""
    torch = pytest.importorskip("torch")
    import fastopt.torch as ft
    dt = torch.bfloat16 if half == "bf16" else torch.float16
    torch.manual_seed(1)
    ref = getattr(torch.nn, name)(shape[1], momentum=0.2)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 2.0)
        ref.bias.normal_()
        ref.running_mean.normal_()
        ref.running_var.uniform_(0.5, 2.0)
    if params == "16bit":
        ref = ref.to(dt)
    mine = ft.convert(copy_module(ref))
    ref.train(training), mine.train(training)
    x = (torch.randn(shape) * 2 + 1).to(dt)
    xr, xm = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, ym = ref(xr), mine(xm)
    assert ym.dtype == yr.dtype == dt
    _normwise(ym, yr, dt, 4, "y")
    for buf in ("running_mean", "running_var"):
        a, b = getattr(mine, buf), getattr(ref, buf)
        assert a.dtype == b.dtype
        _normwise(a, b, dt if params == "16bit" else torch.float32, 2 if params == "16bit" else 1e-3, buf)
    assert int(mine.num_batches_tracked) == int(ref.num_batches_tracked)
    g = torch.randn(shape).to(dt)
    yr.backward(g), ym.backward(g)
    assert xm.grad.dtype == xr.grad.dtype == dt
    _normwise(xm.grad, xr.grad, dt, 8, "dx")
    for p in ("weight", "bias"):
        a, b = getattr(mine, p).grad, getattr(ref, p).grad
        assert a.dtype == b.dtype
        _normwise(a, b, dt if params == "16bit" else torch.float32, 8 if params == "16bit" else 0.05, p)


def copy_module(m):
    import copy
    return copy.deepcopy(m)


@pytest.mark.parametrize("half", ["bf16", "f16"])
def test_torch_dropout_16bit(half):
    """fastopt.torch.Dropout / dropout on a 16-bit tensor: y and the gradient in its type,
    kept values the float32 formula rounded once, the mask the one a float32 tensor gets."""
    torch = pytest.importorskip("torch")
    import fastopt.torch as ft
    dt = torch.bfloat16 if half == "bf16" else torch.float16
    x = torch.randn(4000).to(dt).requires_grad_()
    torch.manual_seed(5)
    y = ft.Dropout(0.3)(x)
    torch.manual_seed(5)
    y32 = ft.dropout(x.detach().float(), 0.3)
    assert y.dtype == dt
    keep = y32 != 0
    assert torch.equal(y != 0, keep)
    want = (x.detach().float() * torch.tensor(1 / 0.7, dtype=torch.float32)).to(dt)
    assert torch.equal(y[keep].view(torch.int16), want[keep].view(torch.int16))
    y.backward(torch.ones_like(y))
    assert x.grad.dtype == dt
    assert torch.equal(x.grad != 0, keep)
    assert torch.equal(x.grad[keep], torch.full_like(x.grad[keep], 1 / 0.7))


def test_torch_opcheck_16bit():
    """torch.library.opcheck on 16-bit inputs: float32 and 16-bit per-channel tensors,
    eval, backward, dropout and its backward."""
    torch = pytest.importorskip("torch")
    import fastopt.torch  # noqa: F401  (registers torch.ops.fastopt)
    FO = torch.ops.fastopt

    def check(op, args):
        result = torch.library.opcheck(op, args)
        assert set(result.values()) == {"SUCCESS"}, result
    torch.manual_seed(2)
    for dt in (torch.bfloat16, torch.float16):
        x = torch.randn(6, 4, 3).to(dt).requires_grad_()
        for pdt in (torch.float32, dt):
            w = (torch.rand(4) + 0.5).to(pdt).requires_grad_()
            b = torch.randn(4).to(pdt).requires_grad_()
            rm, rv = torch.randn(4).to(pdt), (torch.rand(4) + 0.5).to(pdt)
            check(FO.batch_norm_train, (x, w, b, rm, rv, None, 0.1, 1e-5))
            check(FO.batch_norm_train, (x, None, None, None, None, None, 0.1, 1e-5))
            check(FO.batch_norm_eval, (x, w, b, rm, rv, 1e-5))
            y, mean, invstd, new_rm, _ = FO.batch_norm_train(x, w, b, rm, rv, None, 0.1, 1e-5)
            assert y.dtype == dt and mean.dtype == torch.float32 and new_rm.dtype == pdt
            dy = torch.randn(6, 4, 3).to(dt)
            check(FO.batch_norm_backward, (dy, x.detach(), w.detach(), mean, invstd, True))
            check(FO.batch_norm_backward, (dy, x.detach(), None, mean, invstd, False))
        for p in (0.0, 0.3, 1.0):
            check(FO.dropout, (x, p, torch.tensor(123)))
        _, mask, order = FO.dropout(x, 0.3, torch.tensor(123))
        check(FO.dropout_backward, (torch.randn(6, 4, 3).to(dt), mask, 0.3, order))


def test_torch_autocast_bf16_model_matches_torch():
    """A float32 model under torch.autocast("cpu", bfloat16): Linear gives bfloat16
    activations, the float32 BatchNorm1d (kept float32 by autocast) and Dropout take
    them as torch's modules do; outputs, parameter gradients and running statistics
    agree with torch's model to bfloat16 rounding (dropout off: its masks differ)."""
    torch = pytest.importorskip("torch")
    import fastopt.torch as ft
    torch.manual_seed(3)
    ref = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.BatchNorm1d(16),
                              torch.nn.ReLU(), torch.nn.Dropout(0.0), torch.nn.Linear(16, 3))
    mine = ft.convert(copy_module(ref))
    x = torch.randn(32, 10)
    outs = []
    for m in (ref, mine):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x)
        y.float().square().sum().backward()
        outs.append(y)
    assert outs[0].dtype == outs[1].dtype == torch.bfloat16
    _normwise(outs[1], outs[0], torch.bfloat16, 4, "y")
    _normwise(mine[1].running_var, ref[1].running_var, torch.float32, 1e-2, "running_var")
    for (n, a), b in zip(mine.named_parameters(), ref.parameters()):
        assert a.grad.dtype == b.grad.dtype == torch.float32
        _normwise(a.grad, b.grad, torch.bfloat16, 8, n)
