"""The native fast path accepts only plainly valid calls; everything the Python
validator rejects must be refused by it first (returning False, touching nothing)."""
import numpy as np
import pytest

from conftest import CPU_BACKENDS
from test_optim_errors import BAD_ARRAYS, adam_arrays, assert_unchanged, snapshot

pytestmark = pytest.mark.skipif("cpp" not in CPU_BACKENDS, reason="C++ extension not built")

SCALARS = (0.9, 0.1, 0.999, 0.001, 1e-8, 0.0, 1.0, 0.1, 0.5, 1.0)  # AdamScalars order


def fast_adam(arrays, vmax=None, amsgrad=False, backend="auto"):
    from fastopt import _core
    return _core.adam_step_fast(*arrays, vmax, *SCALARS, 0, amsgrad, backend)


@pytest.mark.parametrize("mutate, error, match", BAD_ARRAYS)
def test_fast_path_refuses_every_bad_call(mutate, error, match, rng):
    arrays = adam_arrays(rng)
    mutate(arrays)
    before = snapshot(*arrays)
    assert fast_adam(arrays) is False
    assert_unchanged(arrays, before)


def test_fast_path_runs_plain_calls_and_lists(rng):
    arrays = adam_arrays(rng)
    before = snapshot(*arrays)
    assert fast_adam(arrays) is True
    assert not np.array_equal(arrays[0], before[0])
    lists = [[adam_arrays(rng, n)[k] for n in (3, 5)] for k in range(4)]
    assert fast_adam(lists) is True


def test_fast_path_leaves_other_backends_and_missing_state_to_python(rng, monkeypatch):
    arrays = adam_arrays(rng)
    before = snapshot(*arrays)
    assert fast_adam(arrays, backend="numpy") is False
    assert fast_adam(arrays, amsgrad=True) is False          # max_exp_avg_sq missing
    monkeypatch.setenv("FASTOPT_BACKEND", "numba")
    assert fast_adam(arrays) is False
    assert_unchanged(arrays, before)


def test_fast_path_refuses_bad_lists(rng):
    lists = [[adam_arrays(rng, n)[k] for n in (3, 5)] for k in range(4)]
    mismatched = [lists[0], lists[1][:1], lists[2], lists[3]]
    assert fast_adam(mismatched) is False
    overlapping = [lists[0], [lists[1][0], lists[0][1]], lists[2], lists[3]]
    assert fast_adam(overlapping) is False
    mixed = [lists[0], lists[1][0], lists[2], lists[3]]
    assert fast_adam(mixed) is False
    tuples = [tuple(x) for x in lists]   # the Python path takes tuples; the fast path declines
    assert fast_adam(tuples) is False


# ------------------------------------------------------------- batch norm
from test_batchnorm import (BACKWARD_ERRORS, FORWARD_ERRORS, _arrays,  # noqa: E402
                            _bwd_arrays, make)


def _fast_forward(d, training=True, momentum=0.1, eps=1e-5, backend="auto"):
    from fastopt import _core
    return _core.batch_norm_forward_fast(d["x"], d["gamma"], d["beta"], d["running_mean"],
                                         d["running_var"], training, momentum, eps, backend)


@pytest.mark.parametrize("case", [c for c in FORWARD_ERRORS if c[1] is not None],
                         ids=[c[0] for c in FORWARD_ERRORS if c[1] is not None])
def test_batch_norm_forward_fast_path_refuses_every_bad_call(case):
    _, mutate, kwargs, _, _ = case
    d = _arrays()
    mutate(d)
    before = {k: None if v is None else np.array(v, copy=True) for k, v in d.items()}
    assert _fast_forward(d, training=kwargs.get("training", True)) is None
    for k, v in d.items():
        if v is not None:
            np.testing.assert_array_equal(np.asarray(v), before[k])


@pytest.mark.parametrize("case", BACKWARD_ERRORS, ids=[c[0] for c in BACKWARD_ERRORS])
def test_batch_norm_backward_fast_path_refuses_every_bad_call(case):
    from fastopt import _core
    _, mutate, _, _ = case
    d = _bwd_arrays()
    mutate(d)
    assert _core.batch_norm_backward_fast(d["dy"], d["x"], d["gamma"], d["save_mean"],
                                          d["save_invstd"], True, "auto") is None


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(64, 300), (3, 40, 16, 16), (5, 7, 3, 3)],
                         ids=["rows", "planes", "small"])
def test_batch_norm_fast_path_equals_validated_path(shape, training, rng):
    """Plain calls run natively; the same call through the Python validator (a
    numpy-scalar momentum declines the fast path) gives identical bits."""
    import fastopt
    x, gamma, beta, rm, rv, dy = make(rng, shape, np.float32)
    d = dict(x=x, gamma=gamma, beta=beta, running_mean=rm.copy(), running_var=rv.copy())
    fast = _fast_forward(d, training=training)
    assert fast is not None
    rm2, rv2 = rm.copy(), rv.copy()
    slow = fastopt.batch_norm_forward(x, gamma, beta, rm2, rv2, training=training,
                                      momentum=np.float64(0.1), backend="cpp")
    for a, b in zip(fast + (d["running_mean"], d["running_var"]), slow + (rm2, rv2)):
        np.testing.assert_array_equal(a, b)
    from fastopt import _core
    fast_b = _core.batch_norm_backward_fast(dy, x, gamma, fast[1], fast[2], training, "cpp")
    slow_b = fastopt.batch_norm_backward(dy, x, gamma, slow[1], slow[2], training=np.bool_(training),
                                         backend="cpp")
    for a, b in zip(fast_b, slow_b):
        np.testing.assert_array_equal(a, b)


def test_batch_norm_fast_path_leaves_other_backends_to_python(rng, monkeypatch):
    d = _arrays()
    assert _fast_forward(d, backend="numpy") is None
    monkeypatch.setenv("FASTOPT_BACKEND", "numba")
    assert _fast_forward(d) is None
