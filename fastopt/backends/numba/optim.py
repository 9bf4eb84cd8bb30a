"""Optimizer steps in Numba, mirroring fastopt/backends/numpy/optim.py.

Each kernel walks fixed chunks of the concatenated elements of all tensors
(``prange`` over chunks), so the list form is one call and threads spread over
every element. The chunk walk is written out in each kernel on purpose: passing
the element loop to one shared walker as a first-class function compiled to a
call numba does not inline, and Adam at 10^7 ran 6x slower (29 ms vs 5.4 ms). Scalars come from fastopt/_scalars.py, cast to the arrays' dtype.
"""
import math

import ml_dtypes
import numpy as np
from numba import carray, njit, prange

from fastopt import _scalars
from fastopt.backends.numba._lists import CHUNK, pointer_like, table
from fastopt.backends.numba._fma import adam_first_moment
from fastopt.backends.numba._serial import SERIAL_BELOW, compile_pair


@njit(inline="always")
def _view(addresses, role, t, offset, n, witness):
    return carray(pointer_like(addresses[role, t] + offset * witness.itemsize, witness), n)


def _sgd_body(addresses, starts, witness, lr, momentum, omd, wd, sign, mode, first):
    total = starts[-1]
    nchunks = (total + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        b = c * CHUNK
        e = min(b + CHUNK, total)
        t = np.searchsorted(starts, b, side="right") - 1
        while b < e:
            n = min(e, starts[t + 1]) - b
            o = b - starts[t]
            if n > 0:
                p = _view(addresses, 0, t, o, n, witness)
                g = _view(addresses, 1, t, o, n, witness)
                buf = _view(addresses, 2, t, o, n if mode != 0 else 0, witness)
                for i in range(n):
                    gi = sign * g[i]
                    if wd != 0:
                        gi = gi + wd * p[i]
                    if mode == 0:
                        p[i] = p[i] - lr * gi
                    else:
                        bi = gi if first else momentum * buf[i] + omd * gi
                        buf[i] = bi
                        d = gi + momentum * bi if mode == 2 else bi
                        p[i] = p[i] - lr * d
            b += n
            t += 1


def _rmsprop_body(addresses, starts, witness, lr, alpha, oma, eps, wd, momentum, sign, centered,
             use_momentum):
    total = starts[-1]
    nchunks = (total + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        b = c * CHUNK
        e = min(b + CHUNK, total)
        t = np.searchsorted(starts, b, side="right") - 1
        while b < e:
            n = min(e, starts[t + 1]) - b
            o = b - starts[t]
            if n > 0:
                p = _view(addresses, 0, t, o, n, witness)
                g = _view(addresses, 1, t, o, n, witness)
                sq = _view(addresses, 2, t, o, n, witness)
                ga = _view(addresses, 3, t, o, n if centered else 0, witness)
                buf = _view(addresses, 4, t, o, n if use_momentum else 0, witness)
                for i in range(n):
                    gi = sign * g[i]
                    if wd != 0:
                        gi = gi + wd * p[i]
                    s = alpha * sq[i] + oma * gi * gi
                    sq[i] = s
                    if centered:
                        a = alpha * ga[i] + oma * gi
                        ga[i] = a
                        avg = math.sqrt(s - a * a) + eps
                    else:
                        avg = math.sqrt(s) + eps
                    if use_momentum:
                        bi = momentum * buf[i] + gi / avg
                        buf[i] = bi
                        p[i] = p[i] - lr * bi
                    else:
                        p[i] = p[i] - lr * (gi / avg)
            b += n
            t += 1


def _adam_body(addresses, starts, witness, beta1, omb1, beta2, omb2, eps, wd, sign, step_size,
          bc2_sqrt, decay_factor, wd_mode, amsgrad):
    total = starts[-1]
    nchunks = (total + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        b = c * CHUNK
        e = min(b + CHUNK, total)
        t = np.searchsorted(starts, b, side="right") - 1
        while b < e:
            n = min(e, starts[t + 1]) - b
            o = b - starts[t]
            if n > 0:
                p = _view(addresses, 0, t, o, n, witness)
                g = _view(addresses, 1, t, o, n, witness)
                m = _view(addresses, 2, t, o, n, witness)
                v = _view(addresses, 3, t, o, n, witness)
                vmax = _view(addresses, 4, t, o, n if amsgrad else 0, witness)
                for i in range(n):
                    pi = p[i]
                    if wd_mode == 2:
                        pi = pi * decay_factor
                    gi = sign * g[i]
                    if wd_mode == 1:
                        gi = gi + wd * pi
                    mi = adam_first_moment(m[i], gi, omb1)
                    vi = beta2 * v[i] + omb2 * gi * gi
                    m[i] = mi
                    v[i] = vi
                    if amsgrad:
                        if vmax[i] > vi:
                            vi = vmax[i]
                        vmax[i] = vi
                    p[i] = pi - step_size * mi / (math.sqrt(vi) / bc2_sqrt + eps)
            b += n
            t += 1


def _adagrad_body(addresses, starts, witness, clr, eps, wd, sign):
    total = starts[-1]
    nchunks = (total + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        b = c * CHUNK
        e = min(b + CHUNK, total)
        t = np.searchsorted(starts, b, side="right") - 1
        while b < e:
            n = min(e, starts[t + 1]) - b
            o = b - starts[t]
            if n > 0:
                p = _view(addresses, 0, t, o, n, witness)
                g = _view(addresses, 1, t, o, n, witness)
                s = _view(addresses, 2, t, o, n, witness)
                for i in range(n):
                    gi = sign * g[i]
                    if wd != 0:
                        gi = gi + wd * p[i]
                    si = s[i] + gi * gi
                    s[i] = si
                    p[i] = p[i] - clr * gi / (math.sqrt(si) + eps)
            b += n
            t += 1


# error_model="numpy": x/0 gives inf/nan as in C++, never raises
_sgd = compile_pair(_sgd_body, error_model="numpy")
_rmsprop = compile_pair(_rmsprop_body, error_model="numpy")
_adam = compile_pair(_adam_body, error_model="numpy")
_adagrad = compile_pair(_adagrad_body, error_model="numpy")


def _pick(kernel, starts):
    return kernel[1] if starts[-1] < SERIAL_BELOW else kernel[0]


def _typed(dtype, scalars):
    return [dtype.type(x) for x in scalars]


# ---- mixed precision (fastopt/backends/numba/_optim_mixed.py): 16-bit
# arrays as integer views, bfloat16 as uint16 and float16 as int16, so that
# numba compiles each storage type's conversion.
_INT_VIEW = {np.dtype(ml_dtypes.bfloat16): np.uint16, np.dtype(np.float16): np.int16}
_NO_MASTER = np.empty(0, dtype=np.float32)
_U32 = 0xFFFFFFFF


def _m():
    from fastopt.backends.numba import _optim_mixed  # imports this module's _view
    return _optim_mixed


def _plain(params, masters, grad_scale, stochastic_rounding):
    return (masters is None and grad_scale is None and not stochastic_rounding
            and params[0].dtype.itemsize >= 4)


def _witness(a):
    return a[:0].view(_INT_VIEW.get(a.dtype, a.dtype))


def _mixed(kernel, params, grads, states, masters, scalars, grad_scale, stochastic_rounding,
           seed, step, *options):
    """Runs a mixed kernel: the roles' address table (param, grad, three states,
    master), an empty witness per storage type, the scalars in the compute
    type, the options, then grad_scale, master / stochastic flags (True or
    None, so numba compiles the unused path away) and the Philox key/counter."""
    addresses, _, starts = table(params, grads, *states, masters)
    state = next((x for x in states if x), params)
    compute = np.dtype(np.float64 if params[0].dtype == np.float64 else np.float32)
    scale = compute.type(1.0 if grad_scale is None else grad_scale)
    sr = bool(stochastic_rounding) and masters is None and params[0].dtype.itemsize == 2
    seed, step = int(seed), int(step)
    key = [np.uint64(x) for x in (seed & _U32, seed >> 32 & _U32, step & _U32,
                                   0x53520000 | (step >> 32 & 0xFFFF))]
    _pick(kernel, starts)(addresses, starts, _witness(params[0]), _witness(grads[0]),
                          _witness(state[0]), _NO_MASTER, *_typed(compute, scalars), *options,
                          scale, masters is not None or None, sr or None, *key)


def sgd(params, grads, bufs, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
        first_step, masters=None, grad_scale=None, stochastic_rounding=False, seed=0, step=1):
    if not params:
        return
    if not _plain(params, masters, grad_scale, stochastic_rounding):
        s = _scalars.sgd(lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, maximize=maximize)
        mode = 0 if momentum == 0.0 else (2 if nesterov else 1)
        _mixed(_m().sgd, params, grads, [bufs, None, None], masters, s, grad_scale,
               stochastic_rounding, seed, step, mode, first_step)
        return
    addresses, _, starts = table(params, grads, bufs)
    s = _scalars.sgd(lr=lr, momentum=momentum, dampening=dampening,
                     weight_decay=weight_decay, maximize=maximize)
    mode = 0 if momentum == 0.0 else (2 if nesterov else 1)
    _pick(_sgd, starts)(addresses, starts, params[0], *_typed(params[0].dtype, s), mode, first_step)


def rmsprop(params, grads, square_avgs, grad_avgs, bufs, *, lr, alpha, eps, weight_decay,
            momentum, maximize, masters=None, grad_scale=None, stochastic_rounding=False, seed=0,
            step=1):
    if not params:
        return
    if not _plain(params, masters, grad_scale, stochastic_rounding):
        s = _scalars.rmsprop(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                             momentum=momentum, maximize=maximize)
        _mixed(_m().rmsprop, params, grads, [square_avgs, grad_avgs, bufs], masters, s,
               grad_scale, stochastic_rounding, seed, step,
               grad_avgs is not None or None, bufs is not None or None)
        return
    addresses, _, starts = table(params, grads, square_avgs, grad_avgs, bufs)
    s = _scalars.rmsprop(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, maximize=maximize)
    # An unused state goes in as None, not False: numba then compiles its code
    # away. As a runtime False, LLVM made its accesses masked vector loads and
    # stores, each faulting (and suppressed by a microcode assist) at the
    # unused state's address 0: 13x slower than the cpp backend at 10^7.
    _pick(_rmsprop, starts)(addresses, starts, params[0], *_typed(params[0].dtype, s),
                            grad_avgs is not None or None, bufs is not None or None)


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps,
         weight_decay, decoupled, maximize, masters=None, grad_scale=None,
         stochastic_rounding=False, seed=0):
    if not params:
        return
    if not _plain(params, masters, grad_scale, stochastic_rounding):
        s = _scalars.adam(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                          weight_decay=weight_decay, decoupled=decoupled, maximize=maximize)
        _mixed(_m().adam, params, grads, [exp_avgs, exp_avg_sqs, max_exp_avg_sqs], masters, s,
               grad_scale, stochastic_rounding, seed, step,
               _scalars.adam_weight_decay_mode(weight_decay, decoupled),
               max_exp_avg_sqs is not None or None)
        return
    addresses, _, starts = table(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs)
    s = _scalars.adam(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                      weight_decay=weight_decay, decoupled=decoupled, maximize=maximize)
    _pick(_adam, starts)(addresses, starts, params[0], *_typed(params[0].dtype, s),
          _scalars.adam_weight_decay_mode(weight_decay, decoupled),
          max_exp_avg_sqs is not None or None)  # None, not False: see rmsprop


def adagrad(params, grads, state_sums, *, step, lr, lr_decay, eps, weight_decay, maximize,
            masters=None, grad_scale=None, stochastic_rounding=False, seed=0):
    if not params:
        return
    if not _plain(params, masters, grad_scale, stochastic_rounding):
        s = _scalars.adagrad(step=step, lr=lr, lr_decay=lr_decay, eps=eps,
                             weight_decay=weight_decay, maximize=maximize)
        _mixed(_m().adagrad, params, grads, [state_sums, None, None], masters, s, grad_scale,
               stochastic_rounding, seed, step)
        return
    addresses, _, starts = table(params, grads, state_sums)
    s = _scalars.adagrad(step=step, lr=lr, lr_decay=lr_decay, eps=eps,
                         weight_decay=weight_decay, maximize=maximize)
    _pick(_adagrad, starts)(addresses, starts, params[0], *_typed(params[0].dtype, s))
