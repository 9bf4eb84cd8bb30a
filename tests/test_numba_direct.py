"""The numba fast path's direct calls (fastopt/backends/numba/_direct.py): below
SERIAL_BELOW elements one njit call entered through the overload the dispatcher
compiled for the call's key. That path must be taken, give the dispatcher's (and
the validated call's) bits, convert Python floats as ``dtype.type`` does, and send
anything its key does not describe elsewhere."""
import numpy as np
import pytest

pytest.importorskip("numba")

import fastopt  # noqa: E402
from fastopt import _validate  # noqa: E402
from fastopt.backends.numba import _direct, averaging, clipping, dropout, optim  # noqa: E402
from fastopt.backends.numba._serial import SERIAL_BELOW  # noqa: E402

from conftest import DTYPES  # noqa: E402
from test_numba_threshold import Spy  # noqa: E402  (records which build of a pair ran)

DIRECTS = ("SGD", "SGD_PLAIN", "RMSPROP", "ADAM", "ADAGRAD", "EMA", "DROP_FORWARD", "DROP_BACKWARD",
           "CLIP_L2")


def _arrays(n, dtype, k, seed=0, shape=None):
    rng = np.random.default_rng([seed, n, k])
    return [(np.abs(rng.standard_normal(n)) + 0.1).astype(dtype).reshape(shape or n)
            for _ in range(k)]


# every public kernel with a direct call, as (name, callable on fresh arrays)
def _calls(n, dtype, shape=None):
    a = _arrays(n, dtype, 5, shape=shape)
    mask = np.random.default_rng(n).integers(0, 256, (n + 7) // 8, dtype=np.uint8)
    return a, mask, [
        ("sgd", lambda f, a: f.sgd_step(a[0], a[1], lr=0.03, backend="numba")),
        ("momentum", lambda f, a: f.sgd_step(a[0], a[1], a[2], lr=0.03, momentum=0.9,
                                             weight_decay=0.1, backend="numba")),
        ("rmsprop", lambda f, a: f.rmsprop_step(a[0], a[1], a[2], grad_avg=a[3],
                                                momentum_buffer=a[4], lr=0.01, centered=True,
                                                momentum=0.5, backend="numba")),
        ("adam", lambda f, a: f.adam_step(a[0], a[1], a[2], a[3], step=3, lr=1e-3,
                                          backend="numba")),
        ("amsgrad", lambda f, a: f.adam_step(a[0], a[1], a[2], a[3], step=3, lr=1e-3,
                                             amsgrad=True, max_exp_avg_sq=a[4],
                                             backend="numba")),
        ("adagrad", lambda f, a: f.adagrad_step(a[0], a[1], a[2], step=4, lr=0.1,
                                                backend="numba")),
        ("ema", lambda f, a: f.ema_update(a[0], a[1], 0.9, backend="numba")),
        ("drop-forward", lambda f, a: f.dropout_forward(a[0], 0.3, seed=5, backend="numba")),
        ("drop-backward", lambda f, a: f.dropout_backward(a[0], mask, 0.3, backend="numba")),
        ("clip", lambda f, a: f.clip_grad_norm(a[0], 0.5, backend="numba")),
        ("clip-list", lambda f, a: f.clip_grad_norm([a[0]], 0.5, backend="numba")),
    ]


class _Validated:
    """The public module with each entry point replaced by its validated function."""

    def __getattr__(self, name):
        return getattr(fastopt, name).__wrapped__


def _bits(result, arrays):
    out = [x for x in (result if isinstance(result, tuple) else (result,))]
    return [np.asarray(x).tobytes() for x in out + list(arrays)]


class _Log:
    """A Direct that records its calls (its empty ``entries`` send each call to it)."""

    def __init__(self, real, log):
        self.real, self.log, self.entries = real, log, {}

    def __call__(self, key, *args):
        self.log.append("direct")
        return self.real(key, *args)


@pytest.mark.parametrize("n, expected", [(SERIAL_BELOW - 1, "direct"),
                                         (SERIAL_BELOW, "parallel")])
def test_threshold_takes_the_direct_call_below_and_the_parallel_build_from_it(
        monkeypatch, n, expected):
    log = []
    for name in DIRECTS:
        monkeypatch.setattr(_direct, name, _Log(getattr(_direct, name), log))
    for mod, name in ((optim, "_sgd"), (optim, "_rmsprop"), (optim, "_adam"),
                      (optim, "_adagrad"), (averaging, "_ema"), (clipping, "_block_partials"),
                      (clipping, "_scale")):
        monkeypatch.setattr(mod, name, Spy(getattr(mod, name), log))
    for name, build in (("_forward_par", 0), ("_forward_ser", 1), ("_backward_par", 0),
                        ("_backward_ser", 1)):
        monkeypatch.setattr(dropout, name, Spy((getattr(dropout, name),) * 2, log)[build])
    monkeypatch.setattr(_validate, "call", lambda *a, **k: pytest.fail("validated path ran"))
    a, mask, calls = _calls(n, np.float32)
    for what, call in calls:
        del log[:]
        call(fastopt, [x.copy() for x in a])
        assert log and set(log) == {expected}, what


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 17, 1023, 4097])
def test_cached_entry_gives_the_dispatchers_and_the_validated_bits(monkeypatch, n, dtype):
    """First call: the dispatcher (and the entry recorded); second: the entry itself."""
    fresh = {name: _direct.Direct(getattr(_direct, name).dispatcher) for name in DIRECTS}
    for name, d in fresh.items():
        monkeypatch.setattr(_direct, name, d)
    entered = []
    a, mask, calls = _calls(n, dtype)
    for what, call in calls:
        want_in = [x.copy() for x in a]
        want = _bits(call(_Validated(), want_in), want_in)
        first_in = [x.copy() for x in a]
        first = _bits(call(fastopt, first_in), first_in)
        for d in fresh.values():   # wrap every recorded entry point: the second call uses it
            for key, entry in d.entries.items():
                if not hasattr(entry, "seen"):
                    def counted(*args, _e=entry):
                        entered.append(what)
                        return _e(*args)
                    counted.seen = True
                    d.entries[key] = counted
        del entered[:]
        second_in = [x.copy() for x in a]
        second = _bits(call(fastopt, second_in), second_in)
        assert entered, what
        assert first == want and second == want, what


@pytest.mark.parametrize("dtype", DTYPES)
def test_entry_converts_python_floats_as_the_dtype_does(dtype):
    """p = 0, g = 1: one SGD step leaves -dtype(lr) exactly, lr any double (ties,
    subnormal-range and large values included)."""
    rng = np.random.default_rng(3)
    lrs = list(rng.random(300) * 10.0 ** rng.integers(-44, 30, 300))
    lrs += [1.0 + 2.0 ** -24, 1.0 + 3 * 2.0 ** -24, 2.0 ** -149 * 1.5, 3.4028235e38]
    p, g = np.zeros(1, dtype), np.ones(1, dtype)
    fastopt.sgd_step(p, g, lr=0.5, backend="numba")   # records the entry
    assert _direct.SGD_PLAIN.entries   # SGD without momentum: the five-argument function
    q, h = _arrays(64, dtype, 2)
    for lr in lrs:
        p[0] = 0
        fastopt.sgd_step(p, g, lr=float(lr), backend="numba")
        assert p.tobytes() == (-dtype(lr)).tobytes() if dtype(lr) != 0 else p[0] == 0, lr
        want = q.copy()   # and on random values, the validated call's bits
        fastopt.sgd_step.__wrapped__(want, h, lr=float(lr) % 1.0, backend="numba")
        fastopt.sgd_step(q, h, lr=float(lr) % 1.0, backend="numba")
        assert q.tobytes() == want.tobytes(), lr


def _validated_count(monkeypatch):
    seen = []
    real = _validate.call
    monkeypatch.setattr(_validate, "call", lambda *a, **k: seen.append(1) or real(*a, **k))
    return seen


@pytest.mark.parametrize("dtype", DTYPES)
def test_arrays_the_key_does_not_describe_get_their_own_entry_or_the_validator(
        monkeypatch, dtype):
    """After a 1-D writeable call has recorded its entry: 2-D and 3-D arrays, a
    read-only grad and a read-only mask run with their own key and the right bits;
    unaligned arrays go to the validator; bad calls raise and write nothing."""
    a, mask, calls = _calls(24, dtype)
    for what, call in calls:
        call(fastopt, [x.copy() for x in a])   # the 1-D entries
    for shape in ((4, 6), (2, 3, 4)):
        b, _, calls2 = _calls(24, dtype, shape)
        for what, call in calls2:
            want_in, got_in = [x.copy() for x in b], [x.copy() for x in b]
            assert (_bits(call(fastopt, got_in), got_in)
                    == _bits(call(_Validated(), want_in), want_in)), (what, shape)
    p, g, m, v = (x.copy() for x in a[:4])
    g.flags.writeable = False
    want = [x.copy() for x in (p, m, v)]
    fastopt.adam_step.__wrapped__(*want[:1], g, *want[1:], step=2, lr=0.1, backend="numba")
    fastopt.adam_step(p, g, m, v, step=2, lr=0.1, backend="numba")
    assert [x.tobytes() for x in (p, m, v)] == [x.tobytes() for x in want]
    ro_mask = mask.copy()
    ro_mask.flags.writeable = False
    assert (fastopt.dropout_backward(a[0], ro_mask, 0.3, backend="numba").tobytes()
            == fastopt.dropout_backward.__wrapped__(a[0], mask, 0.3, backend="numba").tobytes())
    seen = _validated_count(monkeypatch)
    raw = np.zeros(24 * a[0].itemsize + 1, np.uint8)
    unaligned = raw[1:].view(dtype)
    assert not unaligned.flags.aligned
    unaligned[...] = a[0]
    fastopt.sgd_step(unaligned, a[1].copy(), lr=0.1, backend="numba")
    fastopt.ema_update(unaligned, a[1], 0.5, backend="numba")
    fastopt.dropout_backward(unaligned, mask, 0.3, backend="numba")
    assert len(seen) == 3
    buf = np.zeros(40, dtype)
    before = buf.copy()
    with pytest.raises(ValueError, match="overlap"):
        fastopt.sgd_step(buf[:24], buf[12:36], lr=0.1, backend="numba")
    with pytest.raises(ValueError, match="overlap"):
        fastopt.ema_update(buf[:24], buf[8:32], 0.5, backend="numba")
    assert buf.tobytes() == before.tobytes()
