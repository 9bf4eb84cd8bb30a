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
