"""fastopt.gradcheck on functions with known gradients, and on batch norm's
backward (training and eval) for every CPU backend."""
import numpy as np
import pytest

import fastopt
from conftest import CPU_BACKENDS


def _tanh_sq(x):
    return np.sum(np.tanh(x) ** 2)


def _tanh_sq_grad(x):
    return 2.0 * np.tanh(x) / np.cosh(x) ** 2


def test_correct_gradient_passes(rng):
    x = rng.standard_normal((5, 3))
    r = fastopt.gradcheck(_tanh_sq, [x], [_tanh_sq_grad(x)])
    assert r.passed and bool(r)
    assert r.checked == 15 and r.failed == 0
    assert r.max_rel_error < 1e-7          # the lecture notes' "you should be happy"
    assert r.per_input["input0"]["checked"] == 15
    assert "PASSED" in str(r)
    assert r.assert_passed() is r


def test_wrong_gradient_fails_and_points_at_the_element(rng):
    x = rng.standard_normal((4, 6))
    g = _tanh_sq_grad(x)
    g[2, 5] *= 1.01
    r = fastopt.gradcheck(_tanh_sq, [x], [g], names=["x"])
    assert not r.passed and r.failed == 1
    assert r.worst[0].index == (2, 5) and r.worst[0].name == "x"
    assert 5e-3 < r.worst[0].rel_error < 2e-2
    assert r.max_rel_error == r.worst[0].rel_error
    report = str(r)
    assert "FAILED" in report and "x[2, 5]" in report
    with pytest.raises(AssertionError, match="x\\[2, 5\\]"):
        r.assert_passed()


def test_several_inputs_and_skipped_ones(rng):
    a, b, c = rng.standard_normal(3), rng.standard_normal((2, 3)), rng.standard_normal(2)

    def f(a, b, c):
        return float(np.sum((b @ a) * c) + np.sum(a ** 3))

    ga = b.T @ c + 3 * a ** 2
    gb = np.outer(c, a)
    r = fastopt.gradcheck(f, [a, b, c], [ga, gb, None], names=["a", "b", "c"])
    assert r.passed, str(r)
    assert set(r.per_input) == {"a", "b"} and r.checked == 9


def test_tiny_gradients_pass_on_atol(rng):
    """An element whose true gradient is ~0 has a large relative error from
    rounding alone; atol lets it pass, max_rel_error still reports it."""
    x = rng.standard_normal(4)
    f = lambda x: np.sum(x ** 2) + 1e3   # noqa: E731  (large constant: rounding noise)
    x[0] = 0.0
    g = 2 * x
    g[0] = 1e-9      # the true gradient is 0; an analytic code rounding at 1e-9 is fine
    r = fastopt.gradcheck(f, [x], [g], atol=1e-6)
    assert r.passed, str(r)
    assert r.max_rel_error == pytest.approx(1.0)
    strict = fastopt.gradcheck(f, [x], [g], atol=0.0)
    assert not strict.passed and strict.worst[0].index == (0,)


def test_sampling_and_caller_arrays_untouched(rng):
    x = rng.standard_normal((30, 40))
    x0 = x.copy()
    calls = []

    def f(x):
        calls.append(1)
        return _tanh_sq(x)

    r = fastopt.gradcheck(f, [x], [_tanh_sq_grad(x)], max_checks=25, seed=3)
    assert r.checked == 25 and len(calls) == 50 and r.passed
    np.testing.assert_array_equal(x, x0)

    def sampled(seed):
        res = fastopt.gradcheck(_tanh_sq, [x], [_tanh_sq_grad(x)], max_checks=25, seed=seed,
                                top=25)
        return sorted(e.index for e in res.worst)

    assert sampled(3) == sampled(3)          # the sample is a function of the seed
    assert sampled(3) != sampled(4)
    assert len(set(sampled(3))) == 25        # without repeats


def test_numerical_gradient_of_a_quadratic(rng):
    A = rng.standard_normal((4, 4))
    x = rng.standard_normal(4)
    (g,) = fastopt.numerical_gradient(lambda x: x @ A @ x, [x])
    np.testing.assert_allclose(g, (A + A.T) @ x, rtol=1e-8, atol=1e-10)
    g_a, g_x = fastopt.numerical_gradient(lambda A, x: x @ A @ x, [A, x], wrt=[1])
    assert g_a is None
    np.testing.assert_allclose(g_x, (A + A.T) @ x, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("call, exc, match", [
    (lambda x: fastopt.gradcheck(lambda x: x * 2, [x], [x]), ValueError, "scalar loss"),
    (lambda x: fastopt.gradcheck(_tanh_sq, [x], [x[:2]]), ValueError, "grads\\[0\\] has shape"),
    (lambda x: fastopt.gradcheck(_tanh_sq, [x], []), ValueError, "grads has 0 entries"),
    (lambda x: fastopt.gradcheck(_tanh_sq, x, [x]), TypeError, "list or tuple"),
    (lambda x: fastopt.gradcheck(_tanh_sq, [x], [x], h=0.0), ValueError, "Invalid h"),
    (lambda x: fastopt.gradcheck(_tanh_sq, [x], [x], names=["a", "b"]), ValueError, "names"),
], ids=["non-scalar", "grad-shape", "grad-count", "inputs-array", "h", "names"])
def test_bad_arguments(call, exc, match, rng):
    x = rng.standard_normal(3)
    x0 = x.copy()
    with pytest.raises(exc, match=match):
        call(x)
    np.testing.assert_array_equal(x, x0)


# ------------------------------------------------------------ batch norm
@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 3, 2), (2, 2, 2, 3, 2)], ids=["2d", "4d", "5d"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_batch_norm_backward_is_the_gradient(backend, training, shape, rng):
    """loss = sum(y * w): its gradient w.r.t. (x, gamma, beta) is
    batch_norm_backward(w, ...)."""
    C = shape[1]
    x = rng.standard_normal(shape) * 1.5 + 0.7
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    running_mean, running_var = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
    w = rng.standard_normal(shape)

    def stats():  # eval normalizes with fixed running stats; training tracks none here
        return (running_mean, running_var) if not training else (None, None)

    def loss(x, gamma, beta):
        y, _, _ = fastopt.batch_norm_forward(x, gamma, beta, *stats(), training=training,
                                             backend=backend)
        return np.sum(y * w)

    _, sm, si = fastopt.batch_norm_forward(x, gamma, beta, *stats(), training=training,
                                           backend=backend)
    dx, dgamma, dbeta = fastopt.batch_norm_backward(w, x, gamma, sm, si, training=training,
                                                    backend=backend)
    r = fastopt.gradcheck(loss, [x, gamma, beta], [dx, dgamma, dbeta],
                          names=["x", "gamma", "beta"], rtol=1e-6, atol=1e-8)
    assert r.passed, str(r)
    assert r.checked == x.size + 2 * C


def test_gradcheck_catches_a_wrong_batch_norm_backward(rng):
    """The eval formula used for a training forward is wrong, and gradcheck says so."""
    x = rng.standard_normal((5, 3))
    gamma, beta, w = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal((5, 3))

    def loss(x):
        return np.sum(fastopt.batch_norm_forward(x, gamma, beta, None, None, backend="numpy")[0] * w)

    _, sm, si = fastopt.batch_norm_forward(x, gamma, beta, None, None, backend="numpy")
    dx_wrong, _, _ = fastopt.batch_norm_backward(w, x, gamma, sm, si, training=False,
                                                 backend="numpy")
    r = fastopt.gradcheck(loss, [x], [dx_wrong])
    assert not r.passed and r.max_rel_error > 1e-2
