"""Functional optimizer steps (DESIGN.md s.2): one fused pass over memory per call.

Each ``*_step`` updates its arrays in place. Every array argument may also be a
list of arrays (the multi-tensor form): one call then updates them all in one
native call, threads spread over all their elements. Results do not depend on
the backend's thread count or SIMD width, and the list form equals calling
each member alone, bit for bit.
"""
from __future__ import annotations

from fastopt import backends as _backends, _scalars, _validate as v

try:
    # Native fast path (csrc/validate/fast_path.h): runs plainly valid calls
    # on the cpp backend and returns False for everything else, which then
    # goes through the Python validator below. The hyper-parameter pre-checks
    # before each fast call are conservative: anything unusual (ints, NaN, inf,
    # numpy scalars, wrong types) takes the validated path.
    from fastopt._core import (adagrad_step_fast as _adagrad_fast, adam_step_fast as _adam_fast,
                               rmsprop_step_fast as _rmsprop_fast, sgd_step_fast as _sgd_fast)
except ImportError:  # pragma: no cover - extension not built
    _sgd_fast = _rmsprop_fast = _adam_fast = _adagrad_fast = None

_INF = float("inf")


def _run(family, fn, checked, backend, *args, **kwargs):
    name = _backends.choose(backend, checked.on_gpu)
    getattr(_backends.module(family, name), fn)(*args, **kwargs)


def sgd_step(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0,
             weight_decay=0.0, nesterov=False, maximize=False, first_step=False,
             backend="auto"):
    """Stochastic gradient descent with optional (Nesterov) momentum, in place.

    With ``g = -grad if maximize else grad`` plus ``weight_decay * param``::

        momentum == 0:  param -= lr * g
        otherwise:      buf = g                                  (first_step)
                        buf = momentum * buf + (1 - dampening) * g  (later steps)
                        d = g + momentum * buf if nesterov else buf
                        param -= lr * d

    Equals one ``torch.optim.SGD(..., momentum, dampening, weight_decay,
    nesterov, maximize).step()``; pass ``first_step=True`` on the first step
    (torch copies ``g`` into a fresh buffer). The lecture-note form
    ``v = mu * v - lr * dx; x += v`` is the same update with ``v = -lr * buf``
    at constant ``lr``; Nesterov's look-ahead form equals the ``g + mu * buf`` step.

    >>> p, g, buf = np.ones(4, np.float32), np.full(4, 0.5, np.float32), np.zeros(4, np.float32)
    >>> fastopt.sgd_step(p, g, buf, lr=0.1, momentum=0.9, first_step=True)
    """
    if (_sgd_fast is not None and type(lr) is float and 0.0 <= lr < _INF
            and type(momentum) is float and 0.0 <= momentum < _INF
            and type(dampening) is float and -_INF < dampening < _INF
            and type(weight_decay) is float and 0.0 <= weight_decay < _INF
            and type(nesterov) is bool and type(maximize) is bool and type(first_step) is bool
            and (not nesterov or (momentum > 0.0 and dampening == 0.0))
            and (momentum == 0.0 or momentum_buffer is not None) and type(backend) is str
            and _sgd_fast(param, grad, momentum_buffer, lr, momentum, 1.0 - dampening,
                          weight_decay, -1.0 if maximize else 1.0, nesterov, first_step, backend)):
        return
    c = v.arrays(("param", param, True), ("grad", grad, False),
                 ("momentum_buffer", momentum_buffer, True))
    lr = v.at_least("lr", lr)
    momentum = v.at_least("momentum", momentum)
    dampening = v.finite("dampening", dampening)
    weight_decay = v.at_least("weight_decay", weight_decay)
    nesterov, maximize = v.flag("nesterov", nesterov), v.flag("maximize", maximize)
    first_step = v.flag("first_step", first_step)
    if nesterov and (momentum <= 0.0 or dampening != 0.0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    if momentum != 0.0 and momentum_buffer is None:
        raise ValueError("momentum_buffer is required when momentum != 0")
    _run("optim", "sgd", c, v.backend(backend), c["param"], c["grad"],
         c["momentum_buffer"] if momentum != 0.0 else None, lr=lr, momentum=momentum,
         dampening=dampening, weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
         first_step=first_step)


def rmsprop_step(param, grad, square_avg, *, lr, alpha=0.99, eps=1e-8, weight_decay=0.0,
                 momentum=0.0, momentum_buffer=None, centered=False, grad_avg=None,
                 maximize=False, backend="auto"):
    """RMSProp, in place (``torch.optim.RMSprop``'s update).

    ::

        square_avg = alpha * square_avg + (1 - alpha) * g * g
        centered:  grad_avg = alpha * grad_avg + (1 - alpha) * g
                   avg = sqrt(square_avg - grad_avg**2) + eps
        else:      avg = sqrt(square_avg) + eps
        momentum > 0:  buf = momentum * buf + g / avg ;  param -= lr * buf
        else:          param -= lr * g / avg

    The lecture notes' ``cache = decay * cache + (1 - decay) * dx**2;
    x += -lr * dx / (sqrt(cache) + eps)`` is the plain case with ``alpha = decay``.
    State starts at zeros, as in torch.
    """
    if (_rmsprop_fast is not None and type(lr) is float and 0.0 <= lr < _INF
            and type(alpha) is float and 0.0 <= alpha < _INF
            and type(eps) is float and 0.0 <= eps < _INF
            and type(weight_decay) is float and 0.0 <= weight_decay < _INF
            and type(momentum) is float and 0.0 <= momentum < _INF
            and type(centered) is bool and type(maximize) is bool and type(backend) is str
            and (momentum == 0.0 or momentum_buffer is not None)
            and (not centered or grad_avg is not None)
            and _rmsprop_fast(param, grad, square_avg, grad_avg, momentum_buffer,
                              *_scalars.rmsprop(lr=lr, alpha=alpha, eps=eps,
                                                weight_decay=weight_decay, momentum=momentum,
                                                maximize=maximize), centered, backend)):
        return
    c = v.arrays(("param", param, True), ("grad", grad, False), ("square_avg", square_avg, True),
                 ("momentum_buffer", momentum_buffer, True), ("grad_avg", grad_avg, True))
    lr = v.at_least("lr", lr)
    alpha = v.at_least("alpha", alpha)
    eps = v.at_least("eps", eps)
    weight_decay = v.at_least("weight_decay", weight_decay)
    momentum = v.at_least("momentum", momentum)
    centered, maximize = v.flag("centered", centered), v.flag("maximize", maximize)
    if momentum > 0.0 and momentum_buffer is None:
        raise ValueError("momentum_buffer is required when momentum > 0")
    if centered and grad_avg is None:
        raise ValueError("grad_avg is required when centered=True")
    _run("optim", "rmsprop", c, v.backend(backend), c["param"], c["grad"], c["square_avg"],
         c["grad_avg"] if centered else None, c["momentum_buffer"] if momentum > 0.0 else None,
         lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
         maximize=maximize)


def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False,
              max_exp_avg_sq=None, maximize=False, backend="auto"):
    """Bias-corrected Adam (AdamW with ``decoupled_weight_decay``, AMSGrad), in place.

    ``step`` is the 1-based count of this update. With ``g`` as in
    :func:`sgd_step` (AdamW instead does ``param *= 1 - lr * weight_decay`` first)::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        vhat = max(max_exp_avg_sq, v)  (stored back) if amsgrad else v
        param -= (lr / (1 - beta1**step)) * m / (sqrt(vhat) / sqrt(1 - beta2**step) + eps)

    Equals ``torch.optim.Adam`` / ``AdamW`` (``fused=True`` included). The
    lecture notes' ``mt = m / (1 - beta1**t); vt = v / (1 - beta2**t);
    x += -lr * mt / (sqrt(vt) + eps)`` is the same update up to where ``eps``
    enters (torch's form, used here, scales ``eps`` by ``sqrt(1 - beta2**t)``).

    >>> p = np.random.randn(1000).astype(np.float32); g = np.random.randn(1000).astype(np.float32)
    >>> m, v = np.zeros_like(p), np.zeros_like(p)
    >>> fastopt.adam_step(p, g, m, v, step=1, lr=1e-3)
    """
    if (_adam_fast is not None and type(step) is int and step >= 1
            and type(lr) is float and 0.0 <= lr < _INF
            and type(beta1) is float and 0.0 <= beta1 < 1.0
            and type(beta2) is float and 0.0 <= beta2 < 1.0
            and type(eps) is float and 0.0 <= eps < _INF
            and type(weight_decay) is float and 0.0 <= weight_decay < _INF
            and type(decoupled_weight_decay) is bool and type(amsgrad) is bool
            and type(maximize) is bool and type(backend) is str
            and (not amsgrad or max_exp_avg_sq is not None)
            and _adam_fast(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
                           *_scalars.adam(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                                          weight_decay=weight_decay,
                                          decoupled=decoupled_weight_decay, maximize=maximize),
                           _scalars.adam_weight_decay_mode(weight_decay, decoupled_weight_decay),
                           amsgrad, backend)):
        return
    c = v.arrays(("param", param, True), ("grad", grad, False), ("exp_avg", exp_avg, True),
                 ("exp_avg_sq", exp_avg_sq, True), ("max_exp_avg_sq", max_exp_avg_sq, True))
    step = v.step(step)
    lr = v.at_least("lr", lr)
    beta1 = v.unit_interval("beta1", beta1)
    beta2 = v.unit_interval("beta2", beta2)
    eps = v.at_least("eps", eps)
    weight_decay = v.at_least("weight_decay", weight_decay)
    decoupled = v.flag("decoupled_weight_decay", decoupled_weight_decay)
    amsgrad, maximize = v.flag("amsgrad", amsgrad), v.flag("maximize", maximize)
    if amsgrad and max_exp_avg_sq is None:
        raise ValueError("max_exp_avg_sq is required when amsgrad=True")
    _run("optim", "adam", c, v.backend(backend), c["param"], c["grad"], c["exp_avg"],
         c["exp_avg_sq"], c["max_exp_avg_sq"] if amsgrad else None, step=step, lr=lr,
         beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, decoupled=decoupled,
         maximize=maximize)


def adagrad_step(param, grad, state_sum, *, step, lr, lr_decay=0.0, eps=1e-10,
                 weight_decay=0.0, maximize=False, backend="auto"):
    """Adagrad, in place (``torch.optim.Adagrad``'s update)::

        state_sum += g * g
        param -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(state_sum) + eps)

    The lecture notes' ``cache += dx**2; x += -lr * dx / (sqrt(cache) + eps)``
    is the case ``lr_decay = 0``. torch starts ``state_sum`` at
    ``initial_accumulator_value`` (0 by default).
    """
    if (_adagrad_fast is not None and type(step) is int and step >= 1
            and type(lr) is float and 0.0 <= lr < _INF
            and type(lr_decay) is float and 0.0 <= lr_decay < _INF
            and type(eps) is float and 0.0 <= eps < _INF
            and type(weight_decay) is float and 0.0 <= weight_decay < _INF
            and type(maximize) is bool and type(backend) is str
            and _adagrad_fast(param, grad, state_sum,
                              *_scalars.adagrad(step=step, lr=lr, lr_decay=lr_decay, eps=eps,
                                                weight_decay=weight_decay, maximize=maximize),
                              backend)):
        return
    c = v.arrays(("param", param, True), ("grad", grad, False), ("state_sum", state_sum, True))
    step = v.step(step)
    lr = v.at_least("lr", lr)
    lr_decay = v.at_least("lr_decay", lr_decay)
    eps = v.at_least("eps", eps)
    weight_decay = v.at_least("weight_decay", weight_decay)
    maximize = v.flag("maximize", maximize)
    _run("optim", "adagrad", c, v.backend(backend), c["param"], c["grad"], c["state_sum"],
         step=step, lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
         maximize=maximize)
