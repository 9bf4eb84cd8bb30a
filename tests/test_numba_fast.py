"""The numba backend's fast path (fastopt/backends/numba/_fast.py): a plainly
valid single-array call skips the Python validator and gives the validated
call's bits; anything else takes the validated path and its errors."""
import numpy as np
import pytest

import fastopt
from fastopt import _entry, _validate
from fastopt.backends import unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason("numba") is not None,
                                reason=f"numba: {unavailable_reason('numba')}")

SIZES = [0, 1, 17, 1023]
DTYPES = [np.float32, np.float64]


def _arrays(n, dtype, k, seed=0):
    rng = np.random.default_rng([seed, n, k])
    return [np.abs(rng.standard_normal(n)).astype(dtype) + 0.1 for _ in range(k)]


# (entry point, number of arrays, keyword arguments, array keyword names beyond the positional)
CASES = [
    ("sgd_step", 2, dict(lr=0.1), ()),
    ("sgd_step", 3, dict(lr=0.1, momentum=0.9, first_step=True), ()),
    ("sgd_step", 3, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01,
                         maximize=True), ()),
    ("sgd_step", 3, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01), ()),
    ("rmsprop_step", 3, dict(lr=0.01), ()),
    ("rmsprop_step", 3, dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1),
     ("grad_avg", "momentum_buffer")),
    ("adam_step", 4, dict(step=3, lr=1e-3), ()),
    ("adam_step", 4, dict(step=5, lr=1e-3, amsgrad=True, weight_decay=0.1), ("max_exp_avg_sq",)),
    ("adam_step", 4, dict(step=2, lr=1e-3, weight_decay=0.1, decoupled_weight_decay=True,
                          maximize=True), ()),
    ("adagrad_step", 3, dict(step=4, lr=0.1, lr_decay=0.01, weight_decay=0.1), ()),
    ("ema_update", 2, dict(decay=0.9), ()),
]


def _call(fn, arrays, kw, extra):
    n_pos = len(arrays) - len(extra)
    return fn(*arrays[:n_pos], **kw, **dict(zip(extra, arrays[n_pos:])), backend="numba")


def test_fast_table_matches_entry():
    from fastopt.backends.numba import _fast
    assert set(_fast.FAST) == _entry.NUMBA_FAST


@pytest.fixture
def no_validator(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the validated path ran")
    monkeypatch.setattr(_validate, "call", refuse)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name,k,kw,extra", CASES)
def test_fast_path_gives_the_validated_bits(name, k, kw, extra, n, dtype, monkeypatch):
    fn = getattr(fastopt, name)
    a = _arrays(n, dtype, k + len(extra))
    b = [x.copy() for x in a]
    _call(fn.__wrapped__, b, kw, extra)   # the validated function itself
    with monkeypatch.context() as m:
        m.setattr(_validate, "call", lambda *x, **y: pytest.fail("the validated path ran"))
        _call(fn, a, kw, extra)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()
    if n:
        assert not np.array_equal(a[0], _arrays(n, dtype, k + len(extra))[0])


def test_fast_path_parallel_build_same_bits(no_validator):
    from fastopt.backends.numba._serial import SERIAL_BELOW
    a = _arrays(SERIAL_BELOW, np.float32, 4)
    b = [x.copy() for x in a]
    fastopt.adam_step(*a, step=3, lr=1e-3, backend="numba")
    fastopt.backends.numba.optim.adam([b[0]], [b[1]], [b[2]], [b[3]], None, step=3, lr=1e-3,
                                      beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                      decoupled=False, maximize=False)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 17, 1023])
def test_fast_dropout(n, dtype, monkeypatch):
    x = _arrays(n, dtype, 1)[0]
    y0, m0 = fastopt.dropout_forward.__wrapped__(x, 0.3, seed=7, backend="numba")
    dx0 = fastopt.dropout_backward.__wrapped__(y0, m0, 0.3, backend="numba")
    monkeypatch.setattr(_validate, "call", lambda *a, **k: pytest.fail("the validated path ran"))
    y, m = fastopt.dropout_forward(x, 0.3, seed=7, backend="numba")
    assert y.tobytes() == y0.tobytes() and m.tobytes() == m0.tobytes()
    assert fastopt.dropout_backward(y, m, 0.3, backend="numba").tobytes() == dx0.tobytes()
    xe, none = fastopt.dropout_forward(x, 0.3, seed=7, training=False, backend="numba")
    assert xe is x and none is None


def _bad_cases(dtype):
    """(name, arrays, kw): calls the validator refuses."""
    p, g, m, v = _arrays(64, dtype, 4)
    buf = np.zeros(130, dtype)
    ro = p.copy()
    ro.flags.writeable = False
    other = np.float64 if dtype == np.float32 else np.float32
    bits = np.random.default_rng(1).integers(0, 256, 16, dtype=np.uint8)
    return [
        ("overlap", "adam_step", [p, g, buf[:64], buf[32:96]], dict(step=1, lr=0.1)),
        ("same array", "sgd_step", [p, p], dict(lr=0.1)),
        ("read-only", "adagrad_step", [ro, g, m], dict(step=1, lr=0.1)),
        ("strided", "ema_update", [buf[::2][:64], g], dict(decay=0.5)),
        ("dtype", "adam_step", [p, g.astype(other), m, v], dict(step=1, lr=0.1)),
        ("shape", "rmsprop_step", [p, g, m[:63]], dict(lr=0.1)),
        ("list", "sgd_step", [[p], g], dict(lr=0.1)),
        ("missing buffer", "sgd_step", [p, g], dict(lr=0.1, momentum=0.9)),
        ("ema overlap", "ema_update", [buf[:64], buf[10:74]], dict(decay=0.5)),
        # SGD checks its arrays inline (_fast.sgd), not through _plain: each check
        ("sgd shape", "sgd_step", [p, g[:63]], dict(lr=0.1)),
        ("sgd 2-D shape", "sgd_step", [p.reshape(8, 8), g.reshape(4, 16)], dict(lr=0.1)),
        ("sgd ndim", "sgd_step", [p, g.reshape(8, 8)], dict(lr=0.1)),
        ("sgd dtype", "sgd_step", [p, g.astype(other)], dict(lr=0.1)),
        ("sgd read-only", "sgd_step", [ro, g], dict(lr=0.1)),
        ("sgd strided grad", "sgd_step", [p, buf[::2][:64]], dict(lr=0.1)),
        ("sgd list grad", "sgd_step", [p, [g]], dict(lr=0.1)),
        ("sgd buffer shape", "sgd_step", [p, g, m[:63]], dict(lr=0.1, momentum=0.9)),
        ("sgd buffer 2-D shape", "sgd_step", [p.reshape(8, 8), g.reshape(8, 8), m.reshape(4, 16)],
         dict(lr=0.1, momentum=0.9)),
        ("sgd buffer dtype", "sgd_step", [p, g, m.astype(other)], dict(lr=0.1, momentum=0.9)),
        ("sgd strided buffer", "sgd_step", [p, g, buf[::2][:64]], dict(lr=0.1, momentum=0.9)),
        ("sgd read-only buffer", "sgd_step", [p, g, ro], dict(lr=0.1, momentum=0.9)),
        ("sgd buffer overlap", "sgd_step", [buf[:64], g, buf[32:96]], dict(lr=0.1, momentum=0.9)),
        # and so does dropout's backward (_fast.dropout_backward)
        ("mask size", "dropout_backward", [p, bits[:7]], dict(p=0.5)),
        ("mask dtype", "dropout_backward", [p, bits[:8].view(np.int8)], dict(p=0.5)),
        ("mask 2-D", "dropout_backward", [p, bits[:8].reshape(2, 4)], dict(p=0.5)),
        ("strided mask", "dropout_backward", [p, bits[::2]], dict(p=0.5)),
        ("strided dy", "dropout_backward", [buf[::2][:64], bits[:8]], dict(p=0.5)),
        ("dy dtype", "dropout_backward", [p.astype(np.int32), bits[:8]], dict(p=0.5)),
        ("list dy", "dropout_backward", [[p], bits[:8]], dict(p=0.5)),
        ("list mask", "dropout_backward", [p, [bits[:8]]], dict(p=0.5)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_refused_calls_raise_the_validators_error(dtype):
    for what, name, arrays, kw in _bad_cases(dtype):
        fn = getattr(fastopt, name)
        before = [np.array(a, copy=True) for a in arrays]
        with pytest.raises((TypeError, ValueError)) as expected:
            fn.__wrapped__(*arrays, **kw, backend="numba")
        with pytest.raises(expected.type) as got:
            fn(*arrays, **kw, backend="numba")
        assert str(got.value) == str(expected.value), what
        for a, b in zip(arrays, before):
            assert np.array_equal(np.asarray(a), b), what


def test_unused_array_goes_to_the_validator(monkeypatch):
    """An array its option leaves unused is still validated: that call is declined."""
    p, g, m, v, vmax = _arrays(32, np.float32, 5)
    seen = []
    real = _validate.call
    monkeypatch.setattr(_validate, "call", lambda *a, **k: seen.append(1) or real(*a, **k))
    fastopt.adam_step(p, g, m, v, step=1, lr=0.1, max_exp_avg_sq=vmax, backend="numba")
    fastopt.sgd_step(p, g, m, lr=0.1, backend="numba")
    assert seen == [1, 1]


def test_dropout_bad_mask_goes_to_the_validator():
    dy = _arrays(20, np.float32, 1)[0]
    with pytest.raises(ValueError, match="bytes"):
        fastopt.dropout_backward(dy, np.zeros(2, np.uint8), 0.5, backend="numba")
    with pytest.raises(TypeError, match="uint8"):
        fastopt.dropout_backward(dy, np.zeros(3, np.int8), 0.5, backend="numba")


def test_other_backends_do_not_take_it(monkeypatch):
    """backend="numpy" calls never take numba's fast path: they are validated."""
    p, g = _arrays(8, np.float64, 2)
    seen = []
    real = _validate.call
    monkeypatch.setattr(_validate, "call", lambda *a, **k: seen.append(1) or real(*a, **k))
    fastopt.sgd_step(p, g, lr=0.1, backend="numpy")
    fastopt.ema_update(p, g, 0.5, backend="numpy")
    fastopt.dropout_forward(p, 0.5, seed=1, backend="numpy")
    assert seen == [1, 1, 1]


def _refuse(monkeypatch):
    for name in ("call", "shaped_arrays"):
        monkeypatch.setattr(_validate, name, lambda *a, **k: pytest.fail("the validated path ran"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3), (17, 5), (4, 3, 7), (3, 2, 4, 5)])
@pytest.mark.parametrize("training", [True, False])
def test_fast_batch_norm(shape, training, dtype, monkeypatch):
    rng = np.random.default_rng(list(shape))
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    C = shape[1]
    g, b = rng.random(C).astype(dtype), rng.random(C).astype(dtype)
    stats = [rng.random(C).astype(dtype), rng.random(C).astype(dtype) + 0.5]
    ref_stats = [s.copy() for s in stats]
    kw = dict(training=training, backend="numba")
    ref = fastopt.batch_norm_forward.__wrapped__(x, g, b, *ref_stats, **kw)
    ref_b = fastopt.batch_norm_backward.__wrapped__(dy, x, g, ref[1], ref[2], **kw)
    ref_n = fastopt.batch_norm_backward.__wrapped__(dy, x, None, ref[1], ref[2], **kw)
    _refuse(monkeypatch)
    out = fastopt.batch_norm_forward(x, g, b, *stats, **kw)
    outs = [out, fastopt.batch_norm_backward(dy, x, g, out[1], out[2], **kw),
            fastopt.batch_norm_backward(dy, x, None, out[1], out[2], **kw)]
    for got, want in zip(outs, [ref, ref_b, ref_n]):
        for a, e in zip(got, want):
            assert a.tobytes() == e.tobytes()
    for a, e in zip(stats, ref_stats):
        assert a.tobytes() == e.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [[0], [1], [17], [1023, 5, 0]])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_fast_clip(sizes, max_norm, dtype, monkeypatch):
    gs = [_arrays(n, dtype, 1, seed=i)[0] for i, n in enumerate(sizes)]
    ref = [g.copy() for g in gs]
    want = fastopt.clip_grad_norm.__wrapped__(ref, max_norm, backend="numba")
    want_norm = fastopt.grad_norm.__wrapped__(ref, backend="numba")
    _refuse(monkeypatch)
    grads = gs if len(gs) > 1 else gs[0]
    assert fastopt.clip_grad_norm(grads, max_norm, backend="numba") == want
    for a, e in zip(gs, ref):
        assert a.tobytes() == e.tobytes()
    assert fastopt.grad_norm(grads, backend="numba") == want_norm


def test_fast_clip_refusals():
    g = _arrays(10, np.float32, 1)[0]
    buf = np.zeros(20, np.float32)
    with pytest.raises(ValueError, match="overlap"):
        fastopt.clip_grad_norm([buf[:10], buf[5:15]], 1.0, backend="numba")
    with pytest.raises(TypeError, match="dtype"):
        fastopt.clip_grad_norm([g, g.astype(np.float64)], 1.0, backend="numba")
    ro = g.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastopt.clip_grad_norm(ro, 1.0, backend="numba")
    g[3] = np.inf
    before = g.copy()
    with pytest.raises(RuntimeError, match="non-finite"):
        fastopt.clip_grad_norm(g, 1.0, error_if_nonfinite=True, backend="numba")
    assert np.array_equal(g, before)


def test_fast_batch_norm_refusals():
    x = np.ones((4, 3), np.float32)
    g = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="shape"):
        fastopt.batch_norm_forward(x, np.ones(2, np.float32), g, None, None, backend="numba")
    with pytest.raises(ValueError, match="more than 1 value"):
        fastopt.batch_norm_forward(np.ones((1, 3), np.float32), g, g.copy(), None, None,
                                   backend="numba")
    with pytest.raises(ValueError, match="overlap"):
        fastopt.batch_norm_forward(x, g, g, None, None, backend="numba")
    with pytest.raises(TypeError, match="dtype"):
        fastopt.batch_norm_backward(x, x.astype(np.float64), g, g.copy(), g.copy(),
                                    backend="numba")


@pytest.mark.parametrize("n", [31, 32, 33, 95, 4097])
def test_dropout_backward_words_match_the_reference(n):
    """The 32-element word loop (and its tail), serial and parallel builds, against the
    reference's bits: kept dy * scale, dropped +0 (a dropped inf or NaN gives 0)."""
    from fastopt.backends.numba import dropout as nd
    from fastopt.backends.numpy import dropout as ref
    rng = np.random.default_rng(n)
    for dtype in DTYPES:
        dy = rng.standard_normal(n).astype(dtype)
        dy[:4] = [np.inf, np.nan, -0.0, -np.inf]
        mask = rng.integers(0, 256, (n + 7) // 8, dtype=np.uint8)
        mask[-1] &= (1 << (n % 8 or 8)) - 1   # unused bits of the last byte are 0
        want = ref.backward(dy, mask, 0.3)
        for build in (nd._backward_ser, nd._backward_par.parallel):
            dx = np.empty_like(dy)
            build(dy, mask, dx, dtype(1.0 / 0.7))
            assert dx.view(np.uint8).tobytes() == want.view(np.uint8).tobytes()
