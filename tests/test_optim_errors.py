"""Bad input raises a clear error naming the argument, and changes nothing."""
import numpy as np
import pytest

import fastopt
from conftest import CPU_BACKENDS


def adam_arrays(rng, n=64, dtype=np.float32):
    return [rng.standard_normal(n).astype(dtype) for _ in range(3)] + [
        (np.abs(rng.standard_normal(n)) + 0.1).astype(dtype)]


def snapshot(*arrays):
    return [np.array(a, copy=True) for a in arrays]


def assert_unchanged(arrays, before):
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(np.asarray(a), b)


BAD_ARRAYS = [
    (lambda a: a.__setitem__(1, [0.5] * 64), TypeError, "grad is a list but param is a single array"),
    (lambda a: a.__setitem__(1, memoryview(b"x")), TypeError, "grad must be a numpy.ndarray"),
    (lambda a: a.__setitem__(1, a[1].astype(np.float64)), TypeError, "grad has dtype float64"),
    (lambda a: a.__setitem__(0, a[0].astype(np.int32)), TypeError, "param has dtype int32"),
    (lambda a: [a.__setitem__(i, x.astype(np.int16)) for i, x in enumerate(a)], TypeError,
     "int16"),
    (lambda a: a.__setitem__(2, a[2][:32]), ValueError, r"exp_avg has shape \(32,\)"),
    (lambda a: a.__setitem__(3, np.repeat(a[3], 2)[::2]), ValueError, "exp_avg_sq is not C-contiguous"),
    (lambda a: a[0].setflags(write=False), ValueError, "param is read-only"),
    (lambda a: a.__setitem__(2, a[0]), ValueError, "param and exp_avg overlap"),
    (lambda a: a.__setitem__(1, a[3]), ValueError, "grad and exp_avg_sq overlap"),
    (lambda a: a.__setitem__(0, a[0].astype(">f4")), TypeError, "param has dtype >f4"),
    (lambda a: a.__setitem__(2, a[2].reshape(8, 8)),
     ValueError, r"exp_avg has shape \(8, 8\)"),
]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("mutate, error, match", BAD_ARRAYS)
def test_bad_arrays(mutate, error, match, backend, rng):
    arrays = adam_arrays(rng)
    mutate(arrays)
    before = snapshot(*arrays)
    with pytest.raises(error, match=match):
        fastopt.adam_step(*arrays, step=1, lr=0.1, backend=backend)
    assert_unchanged(arrays, before)


def test_partially_overlapping_views(rng):
    buf = rng.standard_normal(100).astype(np.float32)
    p, m = buf[0:40], buf[30:70]
    g, v = adam_arrays(rng, 40)[:2]
    before = buf.copy()
    with pytest.raises(ValueError, match="overlap"):
        fastopt.adam_step(p, g, m, np.abs(v), step=1, lr=0.1)
    np.testing.assert_array_equal(buf, before)


def test_read_only_grad_is_fine(rng):
    p, g, m, v = adam_arrays(rng)
    g.setflags(write=False)
    fastopt.adam_step(p, g, m, v, step=1, lr=0.1)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(lr=-1.0), ValueError, "Invalid lr value: -1.0"),
    (dict(lr=float("nan")), ValueError, "Invalid lr value: nan"),
    (dict(lr="0.1"), TypeError, "lr must be a real number"),
    (dict(beta1=1.0), ValueError, "Invalid beta1 value: 1.0"),
    (dict(beta2=-0.1), ValueError, "Invalid beta2 value"),
    (dict(eps=-1e-8), ValueError, "Invalid eps value"),
    (dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value"),
    (dict(step=0), ValueError, "Invalid step value: 0"),
    (dict(step=1.5), TypeError, "step must be an int"),
    (dict(step=True), TypeError, "step must be an int"),
    (dict(amsgrad=True), ValueError, "max_exp_avg_sq is required"),
    (dict(amsgrad=1), TypeError, "amsgrad must be a bool"),
    (dict(backend="gpu"), ValueError, "backend must be one of"),
])
def test_bad_hyper_parameters(kwargs, error, match, rng):
    arrays = adam_arrays(rng)
    before = snapshot(*arrays)
    full = dict(step=1, lr=0.1)
    full.update(kwargs)
    with pytest.raises(error, match=match):
        fastopt.adam_step(*arrays, **full)
    assert_unchanged(arrays, before)


def test_option_requirements(rng):
    p, g, buf, sq = adam_arrays(rng)
    before = snapshot(p, g, buf, sq)
    with pytest.raises(ValueError, match="momentum_buffer is required"):
        fastopt.sgd_step(p, g, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        fastopt.sgd_step(p, g, buf, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="grad_avg is required"):
        fastopt.rmsprop_step(p, g, sq, lr=0.1, centered=True)
    with pytest.raises(ValueError, match="momentum_buffer is required"):
        fastopt.rmsprop_step(p, g, sq, lr=0.1, momentum=0.5)
    with pytest.raises(ValueError, match="Invalid lr_decay"):
        fastopt.adagrad_step(p, g, sq, step=1, lr=0.1, lr_decay=-1)
    assert_unchanged([p, g, buf, sq], before)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bad_list_member_changes_no_member(backend, rng):
    params = [rng.standard_normal(n).astype(np.float32) for n in (10, 20, 30)]
    grads = [rng.standard_normal(n).astype(np.float32) for n in (10, 20, 30)]
    bufs = [rng.standard_normal(n).astype(np.float32) for n in (10, 20, 30)]
    bufs[2].setflags(write=False)
    before = snapshot(*params, *bufs)
    with pytest.raises(ValueError, match=r"momentum_buffer\[2\] is read-only"):
        fastopt.sgd_step(params, grads, bufs, lr=0.1, momentum=0.9, backend=backend)
    assert_unchanged(params + bufs, before)
    with pytest.raises(ValueError, match=r"grad has 2 arrays but param has 3"):
        fastopt.sgd_step(params, grads[:2], lr=0.1, backend=backend)
    with pytest.raises(ValueError, match=r"param\[1\] and grad\[1\] overlap"):
        fastopt.sgd_step(params, [grads[0], params[1], grads[2]], lr=0.1, backend=backend)
    with pytest.raises(TypeError, match="list"):
        fastopt.sgd_step(params, grads[0], lr=0.1, backend=backend)
    assert_unchanged(params + bufs, before)


def test_cuda_backend_refuses_cpu_arrays(rng):
    p, g = rng.standard_normal(4), rng.standard_normal(4)
    with pytest.raises((TypeError, RuntimeError), match="cuda"):
        fastopt.sgd_step(p, g, lr=0.1, backend="cuda")


@pytest.mark.skipif("cpp" not in CPU_BACKENDS, reason="C++ extension not built")
def test_native_entry_points_never_copy(rng):
    """The binding itself refuses arrays it would have to convert (noconvert)."""
    from fastopt import _core
    p = rng.standard_normal(20).astype(np.float32)
    g = rng.standard_normal(20).astype(np.float32)
    strided = np.repeat(p, 2)[::2]
    before = strided.copy()
    with pytest.raises(TypeError):
        _core.sgd_step([strided], [g], None, 0.1, 0.0, 1.0, 0.0, 1.0, False, False)
    with pytest.raises(TypeError):
        _core.sgd_step([p.astype(np.float64)], [g], None, 0.1, 0.0, 1.0, 0.0, 1.0, False, False)
    np.testing.assert_array_equal(strided, before)
