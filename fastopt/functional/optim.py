"""Functional optimizer steps (docs/reference.md s.2): one fused pass over memory per call.

Each ``*_step`` updates its arrays in place. Every array argument may also be a
list of arrays (the multi-tensor form): one call then updates them all in one
native call, threads spread over all their elements. Results do not depend on
the backend's thread count or SIMD width, and the list form equals calling
each member alone, bit for bit.
"""
from __future__ import annotations

from fastopt import backends as _backends, _scalars, _validate as v
from fastopt._entry import entry
from fastopt._specs import KERNELS

try:
    # Native fast path (csrc/validate/fast_path.h): runs plainly valid calls
    # on the cpp backend and returns False for everything else, which then
    # goes through the validated function. ``entry`` puts in front of each
    # function a conservative pre-check generated from fastopt._specs: anything
    # unusual (ints, NaN, inf, numpy scalars, wrong types) takes the validated path.
    from fastopt._core import (adagrad_step_fast as _adagrad_fast, adam_step_fast as _adam_fast,
                               rmsprop_step_fast as _rmsprop_fast, sgd_step_fast as _sgd_fast)
except ImportError:  # pragma: no cover - extension not built
    _sgd_fast = _rmsprop_fast = _adam_fast = _adagrad_fast = None


def _run(family, fn, checked, h, *args, **kwargs):
    found_inf = checked.lists.get("found_inf")
    if found_inf is not None and not checked.on_gpu and found_inf.reshape(-1)[0] != 0:
        return   # torch's fused found_inf: the step writes nothing (read here on the CPU)
    name = _backends.choose(h["backend"], checked.on_gpu)
    family = getattr(checked, "family", family)   # "quantized" for 8-bit state (fastopt.quantized)
    getattr(_backends.module(family, name), fn)(*args, **kwargs, **_mixed(fn, checked, h,
                                                                          found_inf))


def _mixed(fn, c, h, found_inf):
    """The backend's mixed-precision keywords, only those in use (docs/mixed-precision.md)."""
    kw = {}
    masters = c.lists.get("master_param")
    if masters is not None:
        kw["masters"] = masters
    if h.get("grad_scale") is not None:
        kw["grad_scale"] = h["grad_scale"]
    if found_inf is not None and c.on_gpu:   # the kernel reads it: no host synchronization
        kw["found_inf"] = found_inf
    # stochastic rounding applies to a 16-bit param written without a master copy
    if h.get("stochastic_rounding") and masters is None and c.dtype in v.HALF_DTYPES:
        kw.update(stochastic_rounding=True, seed=h["seed"])
        if fn in ("sgd", "rmsprop"):
            kw["step"] = h["step"]
    return kw


_MIXED_DOC = """

    Mixed precision (docs/mixed-precision.md): ``param`` may be float16 or
    ``ml_dtypes.bfloat16`` (computed in float32, each stored result rounded once
    to nearest even), ``grad`` its type or float32, the state arrays all of one
    type, the param's or float32. ``master_param`` (float32, beside a 16-bit
    param) receives the update and ``param`` its rounding, in the same pass.
    ``grad_scale`` divides the gradient in-kernel (``g = grad / grad_scale``);
    ``found_inf`` (1-element float32) nonzero makes the call write nothing.
    ``stochastic_rounding=True`` rounds a 16-bit param without a master
    stochastically, with Philox bits of ``(seed, step, index)``."""


def _with_mixed_doc(fn):
    fn.__doc__ = fn.__doc__.rstrip() + _MIXED_DOC
    return fn


@entry("sgd_step", "_sgd_fast",
       "param, grad, momentum_buffer, lr, momentum, 1.0 - dampening, weight_decay, "
       "-1.0 if maximize else 1.0, nesterov, first_step, backend")
@_with_mixed_doc
def sgd_step(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0,
             weight_decay=0.0, nesterov=False, maximize=False, first_step=False,
             master_param=None, grad_scale=None, found_inf=None, stochastic_rounding=False,
             seed=0, step=None, backend="auto"):
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
    c, h = v.call(KERNELS["sgd_step"], locals())
    _run("optim", "sgd", c, h, c["param"], c["grad"], c["momentum_buffer"], lr=h["lr"],
         momentum=h["momentum"], dampening=h["dampening"], weight_decay=h["weight_decay"],
         nesterov=h["nesterov"], maximize=h["maximize"], first_step=h["first_step"])


@entry("rmsprop_step", "_rmsprop_fast",
       "param, grad, square_avg, grad_avg, momentum_buffer, *_scalars.rmsprop(lr=lr, alpha=alpha, "
       "eps=eps, weight_decay=weight_decay, momentum=momentum, maximize=maximize), centered, "
       "backend")
@_with_mixed_doc
def rmsprop_step(param, grad, square_avg, *, lr, alpha=0.99, eps=1e-8, weight_decay=0.0,
                 momentum=0.0, momentum_buffer=None, centered=False, grad_avg=None,
                 maximize=False, master_param=None, grad_scale=None, found_inf=None,
                 stochastic_rounding=False, seed=0, step=None, backend="auto"):
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
    c, h = v.call(KERNELS["rmsprop_step"], locals())
    _run("optim", "rmsprop", c, h, c["param"], c["grad"], c["square_avg"],
         c["grad_avg"], c["momentum_buffer"], lr=h["lr"], alpha=h["alpha"], eps=h["eps"],
         weight_decay=h["weight_decay"], momentum=h["momentum"], maximize=h["maximize"])


@entry("adam_step", "_adam_fast",
       "param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *_scalars.adam(step=step, lr=lr, "
       "beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, "
       "decoupled=decoupled_weight_decay, maximize=maximize), "
       "_scalars.adam_weight_decay_mode(weight_decay, decoupled_weight_decay), amsgrad, backend")
@_with_mixed_doc
def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False,
              max_exp_avg_sq=None, maximize=False, master_param=None, grad_scale=None,
              found_inf=None, stochastic_rounding=False, seed=0, backend="auto"):
    """Bias-corrected Adam (AdamW with ``decoupled_weight_decay``, AMSGrad), in place.

    ``step`` is the 1-based count of this update. With ``g`` as in
    :func:`sgd_step` (AdamW instead does ``param *= 1 - lr * weight_decay`` first)::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        vhat = max(max_exp_avg_sq, v)  (stored back) if amsgrad else v
        param -= (lr / (1 - beta1**step)) * m / (sqrt(vhat) / sqrt(1 - beta2**step) + eps)

    The compiled backends round ``m`` as torch's ``exp_avg.lerp_(g, 1 - beta1)``: one
    fused multiply-add, ``m + w * (g - m)`` with ``w = 1 - beta1`` (``g - (1 - w) * (g - m)``
    when ``w >= 0.5``). Equals ``torch.optim.Adam`` / ``AdamW`` (``fused=True`` included). The
    lecture notes' ``mt = m / (1 - beta1**t); vt = v / (1 - beta2**t);
    x += -lr * mt / (sqrt(vt) + eps)`` is the same update up to where ``eps``
    enters (torch's form, used here, scales ``eps`` by ``sqrt(1 - beta2**t)``).

    >>> p = np.random.randn(1000).astype(np.float32); g = np.random.randn(1000).astype(np.float32)
    >>> m, v = np.zeros_like(p), np.zeros_like(p)
    >>> fastopt.adam_step(p, g, m, v, step=1, lr=1e-3)
    """
    c, h = v.call(KERNELS["adam_step"], locals())
    _run("optim", "adam", c, h, c["param"], c["grad"], c["exp_avg"], c["exp_avg_sq"],
         c["max_exp_avg_sq"], step=h["step"], lr=h["lr"], beta1=h["beta1"], beta2=h["beta2"],
         eps=h["eps"], weight_decay=h["weight_decay"], decoupled=h["decoupled_weight_decay"],
         maximize=h["maximize"])


@entry("adagrad_step", "_adagrad_fast",
       "param, grad, state_sum, *_scalars.adagrad(step=step, lr=lr, lr_decay=lr_decay, eps=eps, "
       "weight_decay=weight_decay, maximize=maximize), backend")
@_with_mixed_doc
def adagrad_step(param, grad, state_sum, *, step, lr, lr_decay=0.0, eps=1e-10,
                 weight_decay=0.0, maximize=False, master_param=None, grad_scale=None,
                 found_inf=None, stochastic_rounding=False, seed=0, backend="auto"):
    """Adagrad, in place (``torch.optim.Adagrad``'s update)::

        state_sum += g * g
        param -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(state_sum) + eps)

    The lecture notes' ``cache += dx**2; x += -lr * dx / (sqrt(cache) + eps)``
    is the case ``lr_decay = 0``. torch starts ``state_sum`` at
    ``initial_accumulator_value`` (0 by default).
    """
    c, h = v.call(KERNELS["adagrad_step"], locals())
    _run("optim", "adagrad", c, h, c["param"], c["grad"], c["state_sum"], step=h["step"],
         lr=h["lr"], lr_decay=h["lr_decay"], eps=h["eps"], weight_decay=h["weight_decay"],
         maximize=h["maximize"])
