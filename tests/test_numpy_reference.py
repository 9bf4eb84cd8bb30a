"""The NumPy reference (``backend="numpy"``) against closed forms, without torch.

Every compiled backend is tested against the reference; this file tests the reference
itself against independent statements of the maths: hand-computed steps, trajectories with
a closed form (constant gradients, quadratics solved by matrix powers), fixed points and
the equivalences that define each option. With torch installed the optimizers are also
checked against torch.optim (test_optim_torch.py); these tests need nothing but NumPy.
"""
import math

import numpy as np
import pytest

import fastopt

REF = dict(backend="numpy")
RTOL = 1e-12   # float64 arithmetic over at most a few hundred operations


def vec(*values):
    return np.array(values, dtype=np.float64)


# ---------------------------------------------------------------------------- SGD
def test_sgd_plain_step_by_hand():
    p, g = vec(1.0, -2.0, 0.5), vec(0.5, 0.25, -4.0)
    fastopt.sgd_step(p, g, lr=0.1, **REF)
    np.testing.assert_allclose(p, [0.95, -2.025, 0.9], rtol=RTOL)


@pytest.mark.parametrize("wd, maximize", [(0.0, False), (0.3, False), (0.0, True), (0.2, True)])
def test_sgd_on_a_quadratic_is_geometric(wd, maximize):
    """f = a x^2 / 2 (grad a x): x_T = (1 - lr (s a + wd))^T x_0 with s = -1 when maximizing."""
    a, x0, lr, steps = vec(0.5, 1.0, 3.0), vec(1.0, -2.0, 0.7), 0.1, 25
    x = x0.copy()
    for _ in range(steps):
        fastopt.sgd_step(x, a * x, lr=lr, weight_decay=wd, maximize=maximize, **REF)
    s = -1.0 if maximize else 1.0
    np.testing.assert_allclose(x, (1 - lr * (s * a + wd)) ** steps * x0, rtol=1e-11)


@pytest.mark.parametrize("momentum, dampening, nesterov",
                         [(0.9, 0.0, False), (0.5, 0.3, False), (0.9, 0.0, True), (0.7, 0.0, True)])
def test_sgd_momentum_on_a_quadratic_is_a_matrix_power(momentum, dampening, nesterov):
    """With g = c x the step is linear in (x, buf): after the first step (buf = g) every step
    multiplies (x, buf) by one 2x2 matrix, so x_T comes from a matrix power."""
    c, x0, lr, steps = 2.0, 1.5, 0.05, 40
    x, buf = vec(x0), np.zeros(1)
    fastopt.sgd_step(x, c * x, buf, lr=lr, momentum=momentum, dampening=dampening,
                     nesterov=nesterov, first_step=True, **REF)
    for _ in range(steps - 1):
        fastopt.sgd_step(x, c * x, buf, lr=lr, momentum=momentum, dampening=dampening,
                         nesterov=nesterov, **REF)
    mu, k = momentum, 1.0 - dampening
    if nesterov:   # buf' = mu buf + c x;  x' = x - lr (c x + mu buf')
        first = np.array([[1 - lr * c * (1 + mu)], [c]]) * x0
        step = np.array([[1 - lr * c * (1 + mu), -lr * mu * mu], [c, mu]])
    else:          # buf' = mu buf + k c x;  x' = x - lr buf'
        first = np.array([[1 - lr * c], [c]]) * x0
        step = np.array([[1 - lr * k * c, -lr * mu], [k * c, mu]])
    want = np.linalg.matrix_power(step, steps - 1) @ first
    np.testing.assert_allclose([x[0], buf[0]], want[:, 0], rtol=1e-10)


def test_sgd_first_momentum_step_copies_the_gradient():
    p, g, buf = vec(1.0, 2.0), vec(0.5, -1.0), vec(123.0, -7.0)   # buf's old values are ignored
    fastopt.sgd_step(p, g, buf, lr=0.1, momentum=0.9, dampening=0.5, first_step=True, **REF)
    np.testing.assert_array_equal(buf, g)
    np.testing.assert_allclose(p, [0.95, 2.1], rtol=RTOL)


# ------------------------------------------------------------------------ RMSprop
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.8])
@pytest.mark.parametrize("eps", [1e-8, 0.1])
def test_rmsprop_constant_gradient_closed_form(centered, momentum, eps):
    """A constant g from zero state: square_avg_t = (1 - alpha^t) g^2, grad_avg_t =
    (1 - alpha^t) g, so avg_t = |g| sqrt(b_t - b_t^2 [centered]) + eps with b_t = 1 - alpha^t."""
    g, x0, lr, alpha, steps = vec(0.3, -2.0, 5.0), vec(1.0, 0.0, -1.0), 0.01, 0.9, 30
    x, sq, ga, buf = x0.copy(), np.zeros(3), np.zeros(3), np.zeros(3)
    for _ in range(steps):
        fastopt.rmsprop_step(x, g, sq, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                             momentum_buffer=buf if momentum else None, centered=centered,
                             grad_avg=ga if centered else None, **REF)
    want, b_mom = x0.copy(), np.zeros(3)
    for t in range(1, steps + 1):
        b = 1 - alpha ** t
        avg = np.abs(g) * math.sqrt(b - b * b if centered else b) + eps
        b_mom = momentum * b_mom + g / avg
        want -= lr * (b_mom if momentum else g / avg)
    np.testing.assert_allclose(x, want, rtol=1e-11)
    np.testing.assert_allclose(sq, (1 - alpha ** steps) * g * g, rtol=1e-12)
    if centered:
        np.testing.assert_allclose(ga, (1 - alpha ** steps) * g, rtol=1e-12)


# --------------------------------------------------------------------------- Adam
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("eps", [1e-8, 0.5])
def test_adam_constant_gradient_moves_lr_per_step(amsgrad, eps):
    """From zero state with a constant g the bias-corrected moments are exactly g and g^2,
    so every step moves lr * g / (|g| + eps): x_T = x_0 - T lr g / (|g| + eps)."""
    g, x0, lr, steps = vec(0.2, -3.0, 1e-3), vec(1.0, -1.0, 0.0), 0.01, 50
    x, m, v = x0.copy(), np.zeros(3), np.zeros(3)
    vmax = np.zeros(3) if amsgrad else None
    for t in range(1, steps + 1):
        fastopt.adam_step(x, g, m, v, step=t, lr=lr, eps=eps, amsgrad=amsgrad,
                          max_exp_avg_sq=vmax, **REF)
    np.testing.assert_allclose(x, x0 - steps * lr * g / (np.abs(g) + eps), rtol=1e-10)
    np.testing.assert_allclose(m, (1 - 0.9 ** steps) * g, rtol=1e-12)
    np.testing.assert_allclose(v, (1 - 0.999 ** steps) * g * g, rtol=1e-12)


def test_adam_decoupled_weight_decay_is_an_affine_recurrence():
    """AdamW with a constant g: x' = r x - lr s with r = 1 - lr wd, s = g / (|g| + eps), so
    x_T = r^T x_0 - lr s (1 - r^T) / (1 - r)."""
    g, x0, lr, wd, eps, steps = vec(0.4, -1.0), vec(2.0, 3.0), 0.05, 0.1, 1e-8, 30
    x, m, v = x0.copy(), np.zeros(2), np.zeros(2)
    for t in range(1, steps + 1):
        fastopt.adam_step(x, g, m, v, step=t, lr=lr, weight_decay=wd,
                          decoupled_weight_decay=True, **REF)
    r, s = 1 - lr * wd, g / (np.abs(g) + eps)
    np.testing.assert_allclose(x, r ** steps * x0 - lr * s * (1 - r ** steps) / (1 - r), rtol=1e-10)


def test_adam_two_steps_by_hand_with_amsgrad():
    """Step 1 with g = 2, step 2 with g = 0: v shrinks, max_exp_avg_sq keeps step 1's v."""
    b1, b2, lr, eps = 0.9, 0.999, 0.1, 1e-8
    x, m, v, vmax = vec(1.0), vec(0.0), vec(0.0), vec(0.0)
    fastopt.adam_step(x, vec(2.0), m, v, step=1, lr=lr, amsgrad=True, max_exp_avg_sq=vmax, **REF)
    x1 = 1.0 - lr * 2.0 / (2.0 + eps)
    np.testing.assert_allclose(x, [x1], rtol=RTOL)
    fastopt.adam_step(x, vec(0.0), m, v, step=2, lr=lr, amsgrad=True, max_exp_avg_sq=vmax, **REF)
    m2, v1 = b1 * (1 - b1) * 2.0, (1 - b2) * 4.0
    x2 = x1 - lr / (1 - b1 ** 2) * m2 / (math.sqrt(v1) / math.sqrt(1 - b2 ** 2) + eps)
    np.testing.assert_allclose([x[0], m[0], v[0], vmax[0]], [x2, m2, b2 * v1, v1], rtol=RTOL)


# ------------------------------------------------------------------------ Adagrad
@pytest.mark.parametrize("lr_decay", [0.0, 0.05])
@pytest.mark.parametrize("eps", [1e-10, 0.3])
def test_adagrad_constant_gradient_closed_form(lr_decay, eps):
    """state_sum_t = s_0 + t g^2 and step t uses lr / (1 + (t - 1) lr_decay)."""
    g, x0, s0, lr, steps = vec(0.5, -2.0), vec(1.0, 1.0), vec(0.1, 0.0), 0.1, 20
    x, s = x0.copy(), s0.copy()
    for t in range(1, steps + 1):
        fastopt.adagrad_step(x, g, s, step=t, lr=lr, lr_decay=lr_decay, eps=eps, **REF)
    want = x0.copy()
    for t in range(1, steps + 1):
        want -= lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s0 + t * g * g) + eps)
    np.testing.assert_allclose(x, want, rtol=1e-11)
    np.testing.assert_allclose(s, s0 + steps * g * g, rtol=1e-12)


# ------------------------------------------- options every optimizer shares
def _step(kernel, x, g, state, **options):
    if kernel == "sgd":
        fastopt.sgd_step(x, g, state[0], lr=0.1, momentum=0.9, **options, **REF)
    elif kernel == "rmsprop":
        fastopt.rmsprop_step(x, g, state[0], lr=0.01, **options, **REF)
    elif kernel == "adam":
        fastopt.adam_step(x, g, state[0], state[1], step=3, lr=0.01, **options, **REF)
    else:
        fastopt.adagrad_step(x, g, state[0], step=3, lr=0.1, **options, **REF)


@pytest.mark.parametrize("kernel", ["sgd", "rmsprop", "adam", "adagrad"])
def test_weight_decay_is_the_gradient_of_an_l2_term_and_maximize_negates(kernel):
    rng = np.random.default_rng(7)
    x, g = rng.standard_normal(9), rng.standard_normal(9)
    state = [np.abs(rng.standard_normal(9)) + 0.1, np.abs(rng.standard_normal(9)) + 0.1]
    a = [x.copy(), [s.copy() for s in state]]
    b = [x.copy(), [s.copy() for s in state]]
    _step(kernel, a[0], g, a[1], weight_decay=0.3)
    _step(kernel, b[0], g + 0.3 * x, b[1])
    for u, w in zip([a[0]] + a[1], [b[0]] + b[1]):
        np.testing.assert_allclose(u, w, rtol=1e-14)
    c = [x.copy(), [s.copy() for s in state]]
    d = [x.copy(), [s.copy() for s in state]]
    _step(kernel, c[0], g, c[1], maximize=True)
    _step(kernel, d[0], -g, d[1])
    for u, w in zip([c[0]] + c[1], [d[0]] + d[1]):
        np.testing.assert_array_equal(u, w)


@pytest.mark.parametrize("kernel", ["sgd", "rmsprop", "adam", "adagrad"])
def test_zero_gradient_from_zero_state_is_a_fixed_point(kernel):
    x = vec(1.0, -2.0, 3.0)
    state = [np.zeros(3), np.zeros(3)]
    if kernel == "adagrad":
        state = [vec(0.5, 0.5, 0.5)]
    _step(kernel, x, np.zeros(3), state)
    np.testing.assert_array_equal(x, [1.0, -2.0, 3.0])


# -------------------------------------------------------------- batch norm
def test_batch_norm_two_values_per_channel_by_hand():
    """N = 2: mean (a+b)/2, biased var ((a-b)/2)^2, unbiased var 2x that, xhat = +-d/sqrt(d^2+eps)."""
    x = vec(1.0, 10.0, 3.0, -2.0).reshape(2, 2)          # channel 0: (1, 3), channel 1: (10, -2)
    gamma, beta, eps = vec(2.0, 0.5), vec(0.1, -1.0), 1e-5
    rm, rv = vec(0.0, 1.0), vec(1.0, 2.0)
    y, sm, si = fastopt.batch_norm_forward(x, gamma, beta, rm, rv, momentum=0.25, eps=eps, **REF)
    half = vec(1.0, 6.0)                                  # |a - b| / 2
    np.testing.assert_allclose(sm, [2.0, 4.0], rtol=RTOL)
    np.testing.assert_allclose(si, 1 / np.sqrt(half ** 2 + eps), rtol=RTOL)
    xhat = half / np.sqrt(half ** 2 + eps)
    np.testing.assert_allclose(y, [[0.1 - 2 * xhat[0], -1.0 + 0.5 * xhat[1]],
                                   [0.1 + 2 * xhat[0], -1.0 - 0.5 * xhat[1]]], rtol=RTOL)
    np.testing.assert_allclose(rm, 0.75 * vec(0.0, 1.0) + 0.25 * vec(2.0, 4.0), rtol=RTOL)
    np.testing.assert_allclose(rv, 0.75 * vec(1.0, 2.0) + 0.25 * 2 * half ** 2, rtol=RTOL)


def test_batch_norm_backward_is_the_derivative_of_the_forward():
    """Central differences of the forward's loss sum(w * y) (in float64) equal the backward."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((6, 3, 2)), rng.standard_normal((6, 3, 2))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    _, sm, si = fastopt.batch_norm_forward(x, gamma, beta, None, None, **REF)
    dx, dg, db = fastopt.batch_norm_backward(w, x, gamma, sm, si, **REF)

    def loss(x_, g_, b_):
        return float(np.sum(w * fastopt.batch_norm_forward(x_, g_, b_, None, None, **REF)[0]))
    h = 1e-6
    for arr, grad in ((x, dx), (gamma, dg), (beta, db)):
        for i in range(arr.size):
            old = arr.flat[i]
            arr.flat[i] = old + h
            up = loss(x, gamma, beta)
            arr.flat[i] = old - h
            down = loss(x, gamma, beta)
            arr.flat[i] = old
            assert grad.flat[i] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-8)


def test_batch_norm_eval_uses_running_statistics():
    x = vec(1.0, 2.0, 3.0, 4.0).reshape(2, 2)
    rm, rv, eps = vec(1.0, -1.0), vec(4.0, 0.25), 1e-5
    y, sm, si = fastopt.batch_norm_forward(x, vec(1.0, 1.0), vec(0.0, 0.0), rm, rv,
                                           training=False, eps=eps, **REF)
    s = 1 / np.sqrt(vec(4.0, 0.25) + eps)
    np.testing.assert_allclose(y, [[0.0, 3.0 * s[1]], [2.0 * s[0], 5.0 * s[1]]], rtol=RTOL)
    np.testing.assert_allclose(si, s, rtol=RTOL)
    np.testing.assert_array_equal(rm, [1.0, -1.0])   # eval updates nothing


# --------------------------------------------------------- dropout, EMA, norms
def test_dropout_reference_scales_kept_values_and_zeroes_the_rest():
    x = np.arange(1.0, 2001.0)
    y, mask = fastopt.dropout_forward(x, 0.25, seed=5, **REF)
    keep = np.unpackbits(mask, count=x.size, bitorder="little").astype(bool)
    np.testing.assert_array_equal(y[keep], x[keep] * (1 / 0.75))   # the scale, rounded once
    assert np.all(y[~keep] == 0.0)
    assert abs(keep.mean() - 0.75) < 4 * math.sqrt(0.25 * 0.75 / x.size)
    np.testing.assert_array_equal(fastopt.dropout_backward(x, mask, 0.25, **REF), y)


def test_ema_of_a_constant_parameter_is_geometric():
    avg, p, d = vec(0.0, 10.0), vec(1.0, -1.0), 0.9
    for _ in range(30):
        fastopt.ema_update(avg, p, d, **REF)
    np.testing.assert_allclose(avg, d ** 30 * vec(0.0, 10.0) + (1 - d ** 30) * p, rtol=1e-12)


@pytest.mark.parametrize("norm_type, expected", [(2.0, 5.0), (1.0, 7.0), (math.inf, 4.0),
                                                 (3.0, 91.0 ** (1 / 3))])
def test_grad_norm_and_clipping_by_hand(norm_type, expected):
    grads = [vec(3.0), vec(-4.0), np.zeros(0)]
    assert fastopt.grad_norm(grads, norm_type, **REF) == pytest.approx(expected, rel=1e-15)
    total = fastopt.clip_grad_norm(grads, 1.0, norm_type, **REF)
    assert total == pytest.approx(expected, rel=1e-15)
    coef = 1.0 / (expected + 1e-6)
    np.testing.assert_allclose(np.concatenate(grads), [3.0 * coef, -4.0 * coef], rtol=1e-15)
