"""Optimizer steps on the C++ CPU loops. float32/float64 calls without the
mixed-precision options go to the plain loops (``_core.<opt>_step``); 16-bit
params, master weights, stochastic rounding and ``grad_scale`` go to the mixed
loops (``_core.<opt>_step_mixed``, csrc/cpu/optim_mixed.h), which widen every
16-bit value to float32, run the same per-element maths and round each stored
result once (docs/rounding.md)."""
import ml_dtypes
import numpy as np

from fastopt import _core, _scalars

# Storage type codes of csrc/cpu/optim_mixed.h
_CODES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1,
          np.dtype(ml_dtypes.bfloat16): 2, np.dtype(np.float16): 3}


# Plain float32/float64 lists go through the native fast path's collection first: it
# takes a list of 200 arrays per role in about a fifth of the time pybind11's
# array_t list casts of _core.<opt>_step take (about 100 ns an array). Anything it
# declines (tuples, unaligned arrays) takes the array_t binding.
def _plain(params, masters, grad_scale, stochastic_rounding):
    return (masters is None and grad_scale is None and not stochastic_rounding
            and params[0].dtype.itemsize >= 4)


def _types(params, grads, states):
    p = _CODES[params[0].dtype]
    s = next((_CODES[x[0].dtype] for x in states if x), p)
    return _core.MixedTypes(p, _CODES[grads[0].dtype], s)


def _run(grad_scale, stochastic_rounding, seed, step):
    return (1.0 if grad_scale is None else float(grad_scale), bool(stochastic_rounding),
            int(seed), int(step))


def sgd(params, grads, bufs, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
        first_step, masters=None, grad_scale=None, stochastic_rounding=False, seed=0, step=1):
    s = _scalars.sgd(lr=lr, momentum=momentum, dampening=dampening,
                     weight_decay=weight_decay, maximize=maximize)
    if not params:
        return
    if _plain(params, masters, grad_scale, stochastic_rounding):
        if not (type(params) is list
                and _core.sgd_step_fast(params, grads, bufs, *s, nesterov, first_step, "cpp")):
            _core.sgd_step(params, grads, bufs, *s, nesterov, first_step)
        return
    _core.sgd_step_mixed(params, grads, bufs, masters, _types(params, grads, [bufs]), *s,
                         nesterov, first_step, *_run(grad_scale, stochastic_rounding, seed, step))


def rmsprop(params, grads, square_avgs, grad_avgs, bufs, *, lr, alpha, eps, weight_decay,
            momentum, maximize, masters=None, grad_scale=None, stochastic_rounding=False, seed=0,
            step=1):
    s = _scalars.rmsprop(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, maximize=maximize)
    if not params:
        return
    if _plain(params, masters, grad_scale, stochastic_rounding):
        # (the native fast path takes the buffers exactly when momentum > 0)
        if not (type(params) is list and (bufs is not None) == (momentum > 0)
                and _core.rmsprop_step_fast(params, grads, square_avgs, grad_avgs, bufs, *s,
                                            grad_avgs is not None, "cpp")):
            _core.rmsprop_step(params, grads, square_avgs, grad_avgs, bufs, *s)
        return
    _core.rmsprop_step_mixed(params, grads, square_avgs, grad_avgs, bufs, masters,
                             _types(params, grads, [square_avgs, grad_avgs, bufs]), *s,
                             *_run(grad_scale, stochastic_rounding, seed, step))


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps,
         weight_decay, decoupled, maximize, masters=None, grad_scale=None,
         stochastic_rounding=False, seed=0):
    s = _scalars.adam(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                      weight_decay=weight_decay, decoupled=decoupled, maximize=maximize)
    mode = _scalars.adam_weight_decay_mode(weight_decay, decoupled)
    if not params:
        return
    if _plain(params, masters, grad_scale, stochastic_rounding):
        if not (type(params) is list
                and _core.adam_step_fast(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs,
                                         *s, mode, max_exp_avg_sqs is not None, "cpp")):
            _core.adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *s, mode)
        return
    _core.adam_step_mixed(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, masters,
                          _types(params, grads, [exp_avgs]), *s, mode,
                          *_run(grad_scale, stochastic_rounding, seed, step))


def adagrad(params, grads, state_sums, *, step, lr, lr_decay, eps, weight_decay, maximize,
            masters=None, grad_scale=None, stochastic_rounding=False, seed=0):
    s = _scalars.adagrad(step=step, lr=lr, lr_decay=lr_decay, eps=eps,
                         weight_decay=weight_decay, maximize=maximize)
    if not params:
        return
    if _plain(params, masters, grad_scale, stochastic_rounding):
        if not (type(params) is list
                and _core.adagrad_step_fast(params, grads, state_sums, *s, "cpp")):
            _core.adagrad_step(params, grads, state_sums, *s)
        return
    _core.adagrad_step_mixed(params, grads, state_sums, masters,
                             _types(params, grads, [state_sums]), *s,
                             *_run(grad_scale, stochastic_rounding, seed, step))
