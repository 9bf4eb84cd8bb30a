"""Every optimizer step on every compiled CPU backend against the float64 NumPy reference
(the reference itself is checked against closed forms in test_numpy_reference.py)."""
import numpy as np
import pytest

import fastopt
from conftest import (COMPILED_BACKENDS, CPU_BACKENDS, DTYPES, SIZES,
                      assert_close_to_reference, element_scale, tol)
from optim_cases import CASES, call, case_id, make_arrays


def reference(kernel, opts, arrays):
    """The NumPy reference run in float64 on copies."""
    ref = {k: v.astype(np.float64) for k, v in arrays.items()}
    call(kernel, opts, ref, "numpy")
    return ref


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_float64_reference(case, size, dtype, backend, rng):
    kernel, opts = case
    arrays = make_arrays(kernel, opts, (size,), dtype, rng)
    before = [v.copy() for v in arrays.values()]
    expected = reference(kernel, opts, arrays)
    call(kernel, opts, arrays, backend)
    scale = element_scale(*before, *expected.values())
    for name, value in arrays.items():
        assert value.dtype == dtype
        assert_close_to_reference(value, expected[name], scale, dtype, err_msg=name)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_list_form_equals_members_alone(case, backend, rng):
    """One call over a list gives bit for bit what a call per array gives."""
    kernel, opts = case
    shapes = [(0,), (1,), (17,), (3, 5), (40_000,), (257, 129), (7,)]
    members = [make_arrays(kernel, opts, s, np.float32, rng) for s in shapes]
    alone = [{k: v.copy() for k, v in m.items()} for m in members]
    for m in alone:
        call(kernel, opts, m, backend)
    lists = {k: [m[k] for m in members] for k in members[0]}
    call(kernel, opts, lists, backend)
    for m, a in zip(members, alone):
        for name in m:
            np.testing.assert_array_equal(m[name], a[name], err_msg=name)

    start = [make_arrays(kernel, opts, s, np.float32, np.random.default_rng(i))
             for i, s in enumerate(shapes)]
    lists = {k: [m[k].copy() for m in start] for k in start[0]}
    call(kernel, opts, lists, backend)
    for i, m in enumerate(start):  # and the list form is right, not merely consistent
        r = reference(kernel, opts, m)
        scale = element_scale(*m.values(), *r.values())
        for name in m:
            assert_close_to_reference(lists[name][i], r[name], scale, np.float32, err_msg=name)


@pytest.mark.skipif("cpp" not in CPU_BACKENDS, reason="C++ extension not built")
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_cpp_result_independent_of_threads(case, rng):
    from fastopt import _core
    kernel, opts = case
    arrays = make_arrays(kernel, opts, (1_000_003,), np.float32, rng)
    copies = {k: v.copy() for k, v in arrays.items()}
    before = _core.get_num_threads()
    try:
        _core.set_num_threads(1)
        call(kernel, opts, arrays, "cpp")
        _core.set_num_threads(2)
        call(kernel, opts, copies, "cpp")
    finally:
        _core.set_num_threads(before)
    for name in arrays:
        np.testing.assert_array_equal(arrays[name], copies[name], err_msg=name)


@pytest.mark.skipif(not {"cpp", "numba"} <= set(CPU_BACKENDS), reason="needs cpp and numba")
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_compiled_backends_agree_bitwise(case, rng):
    """cpp and numba do the same operations in the same order: identical bits."""
    kernel, opts = case
    a = make_arrays(kernel, opts, (4097,), np.float32, rng)
    b = {k: v.copy() for k, v in a.items()}
    call(kernel, opts, a, "cpp")
    call(kernel, opts, b, "numba")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_auto_backend_and_env_override(monkeypatch, rng):
    p, g = rng.standard_normal(10), rng.standard_normal(10)
    expected = p - 0.1 * g
    monkeypatch.setenv("FASTOPT_BACKEND", "numpy")
    fastopt.sgd_step(p, g, lr=0.1)
    np.testing.assert_allclose(p, expected, rtol=1e-15)
    monkeypatch.setenv("FASTOPT_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="backend must be one of"):
        fastopt.sgd_step(p, g, lr=0.1)


def test_info_reports_every_backend():
    info = fastopt.info()
    assert set(info["backends"]) == {"numpy", "numba", "cpp", "cuda"}
    assert info["backends"]["numpy"] == "available"
    assert info["default"] in fastopt.available_backends()
    if "cpp" in fastopt.available_backends():
        assert info["cpp"]["isa"] in ("avx512", "avx2", "baseline")
        for loops in info["cpp"]["loops_8bit"].values():
            assert loops["dequantize"] in ("avx512-vbmi", "avx2", "scalar")
            assert loops["code"] in ("avx512-lines", "avx2", "scalar")
    for name, state in info["backends"].items():
        assert state == "available" or len(state) > 5  # a reason, not a blank


def test_torch_tensors_are_updated_in_place():
    torch = pytest.importorskip("torch")
    for backend in CPU_BACKENDS:
        p = torch.randn(1000)
        g = torch.randn(1000)
        m, v = torch.randn(1000), torch.rand(1000) + 0.1
        ptr = p.data_ptr()
        expected = p.clone()
        ref = [x.numpy().astype(np.float64) for x in (expected, g, m.clone(), v.clone())]
        fastopt.adam_step(*ref, step=2, lr=0.01, backend="numpy")
        fastopt.adam_step(p, g, m, v, step=2, lr=0.01, backend=backend)
        assert p.data_ptr() == ptr
        np.testing.assert_allclose(p.numpy(), ref[0], **tol(np.float32))


class DLPackOnly:
    """An object that only speaks DLPack (as a JAX array or another library's would)."""

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_dlpack_objects_are_updated_in_place(backend, rng):
    p = rng.standard_normal(100).astype(np.float32)
    g = rng.standard_normal(100).astype(np.float32)
    buf = rng.standard_normal(100).astype(np.float32)
    expected = [x.astype(np.float64) for x in (p, g, buf)]
    fastopt.sgd_step(*expected, lr=0.1, momentum=0.9, backend="numpy")
    fastopt.sgd_step(DLPackOnly(p), DLPackOnly(g), DLPackOnly(buf), lr=0.1, momentum=0.9,
                     backend=backend)
    np.testing.assert_allclose(p, expected[0], **tol(np.float32))
    np.testing.assert_allclose(buf, expected[2], **tol(np.float32))
