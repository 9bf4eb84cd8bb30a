"""Every CPU backend meets the same odd input the same way: the same error, or results
that agree. A differential table (session 16) found np.matrix corrupting numba's heap, a
2-D dropout mask crashing numba's typing and the reference's dropout raising IndexError;
this keeps the table."""
import numpy as np
import pytest

import fastopt
from conftest import CPU_BACKENDS

ml_dtypes = pytest.importorskip("ml_dtypes")


class _Tagged(np.ndarray):
    pass


def _data(shape, seed, dtype=np.float32, positive=False):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return (np.abs(a) + 0.1 if positive else a).astype(dtype)


# name -> builder(seed, positive) of one input array: the odd kinds of array a user can pass
ARRAYS = {
    "0-d": lambda s, pos: _data((), s, positive=pos),
    "empty 2-D": lambda s, pos: _data((0, 4), s, positive=pos),
    "Fortran": lambda s, pos: np.asfortranarray(_data((4, 5), s, positive=pos)),
    "reversed": lambda s, pos: _data(20, s, positive=pos)[::-1],
    "big-endian": lambda s, pos: _data(15, s, positive=pos).astype(">f4"),
    "float16": lambda s, pos: _data(15, s, np.float16, pos),
    "bfloat16": lambda s, pos: _data(15, s, ml_dtypes.bfloat16, pos),
    "int32": lambda s, pos: np.random.default_rng(s).integers(1, 5, 15).astype(np.int32),
    "matrix": lambda s, pos: np.matrix(_data((3, 5), s, positive=pos)),
    "subclass": lambda s, pos: _data(15, s, positive=pos).view(_Tagged),
    "read-only": lambda s, pos: _readonly(_data(15, s, positive=pos)),
}


def _readonly(a):
    a.flags.writeable = False
    return a


def _written(*arrays):
    return [np.array(a, dtype=np.float64) for a in arrays]


# name -> call on fresh arrays made by `make(seed, positive)`: returns what to compare
CALLS = {
    "sgd": lambda mk, b: (lambda p, g, m: (fastopt.sgd_step(p, g, m, lr=0.1, momentum=0.9,
                                                            backend=b), _written(p, m)))(
        mk(1, False), mk(2, False), mk(3, False)),
    "adam": lambda mk, b: (lambda p, g, m, v: (fastopt.adam_step(p, g, m, v, step=2, lr=0.1,
                                                                 backend=b), _written(p, m, v)))(
        mk(1, False), mk(2, False), mk(3, False), mk(4, True)),
    "rmsprop": lambda mk, b: (lambda p, g, s: (fastopt.rmsprop_step(p, g, s, lr=0.1, backend=b),
                                               _written(p, s)))(mk(1, False), mk(2, False),
                                                                mk(4, True)),
    "adagrad": lambda mk, b: (lambda p, g, s: (fastopt.adagrad_step(p, g, s, step=2, lr=0.1,
                                                                    backend=b), _written(p, s)))(
        mk(1, False), mk(2, False), mk(4, True)),
    "ema": lambda mk, b: (lambda a, p: (fastopt.ema_update(a, p, 0.9, backend=b),
                                        _written(a)))(mk(1, False), mk(2, False)),
    "clip": lambda mk, b: (lambda g: (fastopt.clip_grad_norm([g], 0.5, backend=b),
                                      _written(g)))(mk(1, False)),
    "grad_norm": lambda mk, b: fastopt.grad_norm(mk(1, False), backend=b),
    "dropout": lambda mk, b: _written(*fastopt.dropout_forward(mk(1, False), 0.3, seed=4,
                                                               backend=b)),
    "dropout backward": lambda mk, b: (lambda dy: _written(fastopt.dropout_backward(
        dy, fastopt.dropout_mask(np.shape(dy), 0.3, seed=4), 0.3, backend=b)))(mk(1, False)),
}


def _outcome(call, make, backend):
    try:
        return "ok", call(make, backend)
    except (TypeError, ValueError) as e:
        return type(e).__name__, None


def _close(a, b, rtol):
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_close(x, y, rtol) for x, y in zip(a, b))
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=rtol, equal_nan=True)


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("kind", sorted(ARRAYS))
def test_every_backend_meets_an_odd_array_alike(kind, call):
    """The same error class on every backend, or results within 16-bit rounding of the
    reference (the float32 bits are checked elsewhere; here the question is agreement)."""
    results = {b: _outcome(CALLS[call], ARRAYS[kind], b) for b in CPU_BACKENDS}
    kinds = {b: r[0] for b, r in results.items()}
    assert len(set(kinds.values())) == 1, kinds
    if kinds["numpy"] == "ok":
        for b in CPU_BACKENDS:
            assert _close(results["numpy"][1], results[b][1], 2e-2), (kind, call, b)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_non_native_byte_order_is_named(backend):
    """Before: "has dtype >f4; fastopt takes float16 or bfloat16 or float32 or float64",
    which reads as if float32 were refused."""
    p, g = _data(15, 1).astype(">f4"), _data(15, 2).astype(">f4")
    with pytest.raises(TypeError, match="float32 in non-native byte order"):
        fastopt.sgd_step(p, g, lr=0.1, backend=backend)
    with pytest.raises(TypeError, match="float64 in non-native byte order"):
        fastopt.dropout_forward(_data(15, 1, np.float64).astype(">f8"), 0.5, seed=1,
                                backend=backend)
