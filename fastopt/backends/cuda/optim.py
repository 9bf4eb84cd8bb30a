"""Optimizer steps on the GPU: one launch per call over the whole list of tensors.

Same functions and signatures as ``fastopt/backends/cpp/optim.py``. Scalars come from
``fastopt/_scalars.py`` (double, on the host) and are cast to the arrays'
dtype by ``loader.pack_args``, exactly as the C++ binding casts them, so the
GPU computes the CPU's function. The pointer table is cached by data pointers
(``loader.device_table``): a step with the same arrays as the last is one
kernel launch and no copy.
"""
from __future__ import annotations

import numpy as np

from fastopt import _scalars
from fastopt.backends.cuda import loader

# Table arguments of every entry point: tensors, chunks, n_chunks, chunk_size.
_TABLE = "ppiq"
# Argument spec per kernel (csrc/cuda/optim.cu, FASTOPT_OPTIM_ENTRY_POINTS).
KERNELS = {
    "sgd": _TABLE + "T" * len(_scalars.SgdScalars._fields) + "iii",
    "rmsprop": _TABLE + "T" * len(_scalars.RmspropScalars._fields) + "iii",
    "adam": _TABLE + "T" * len(_scalars.AdamScalars._fields) + "ii",
    "adagrad": _TABLE + "T" * len(_scalars.AdagradScalars._fields) + "i",
}
# Mixed precision (fastopt_<kernel>_mixed_<combo>, csrc/cuda/optim.cu): after the
# table, the masters' table, grad_scale as a device pointer and as a value,
# found_inf, the parameter mode, seed and step; then the kernel's own arguments.
MIXED = {k: _TABLE + "pppdiQQ" + spec[len(_TABLE):] for k, spec in KERNELS.items()}
# Storage letters of the combos (FASTOPT_MIXED_COMBOS in fastopt/mixed.h). CuPy
# has no bfloat16: a uint16 array is taken as bfloat16 bits.
_LETTER = {np.dtype(np.uint16): "b", np.dtype(np.float16): "h", np.dtype(np.float32): "f",
           np.dtype(np.float64): "d"}
_ROUND_NEAREST, _FROM_MASTER, _STOCHASTIC = 0, 1, 2   # ParamMode in fastopt/mixed.h


def _mixed(masters, grad_scale, found_inf, stochastic_rounding, params):
    return (masters is not None or grad_scale is not None or found_inf is not None
            or stochastic_rounding or params[0].dtype.itemsize == 2)


def _launch_mixed(kernel, roles, masters, scalars, flags, grad_scale, found_inf,
                  stochastic_rounding, seed, step):
    """One launch of ``fastopt_<kernel>_mixed_<combo>``; ``grad_scale`` is None, a
    float or a 1-element float32 device array, ``found_inf`` None or such an
    array (read by the kernel: no host synchronization)."""
    params = roles[0]
    if not params:
        return
    loader.refuse_capture(f"fastopt's {kernel} step")
    p = params[0].dtype
    state = next((r[0].dtype for r in roles[2:] if r), p)
    combo = _LETTER[p] + _LETTER[roles[1][0].dtype] + _LETTER[state]
    half = p.itemsize == 2
    mode = _FROM_MASTER if masters else (_STOCHASTIC if stochastic_rounding and half
                                         else _ROUND_NEAREST)
    on_device = grad_scale is not None and not isinstance(grad_scale, (int, float))
    with loader.device_of(params):
        table = loader.device_table(roles)
        if table.n_chunks == 0:
            return
        mtable = loader.device_table([masters, None, None, None, None]).tensors if masters else None
        values = (table.tensors, table.chunks, table.n_chunks, loader.CHUNK_SIZE, mtable,
                  grad_scale if on_device else None, found_inf,
                  1.0 if grad_scale is None or on_device else float(grad_scale), mode,
                  int(seed), int(step), *scalars, *flags)
        loader.launch("optim", f"fastopt_{kernel}_mixed_{combo}",
                      loader.grid_size(table.n_chunks), loader.BLOCK_THREADS, MIXED[kernel],
                      values, np.float64 if p == np.float64 else np.float32)


def _launch(kernel, roles, scalars, flags):
    """One launch of ``fastopt_<kernel>_<dtype>`` over the tensors of ``roles``
    (param, grad, state..., ``None`` for unused roles)."""
    params = roles[0]
    if not params:
        return
    loader.refuse_capture(f"fastopt's {kernel} step")
    dtype = params[0].dtype
    with loader.device_of(params):
        table = loader.device_table(roles)
        if table.n_chunks == 0:
            return
        values = (table.tensors, table.chunks, table.n_chunks, loader.CHUNK_SIZE,
                  *scalars, *flags)
        name = f"fastopt_{kernel}_{loader.suffix(dtype)}"
        loader.launch("optim", name, loader.multi_tensor_grid("optim", name, table.n_chunks),
                      loader.BLOCK_THREADS, KERNELS[kernel], values, dtype)


def sgd(params, grads, bufs, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
        first_step, masters=None, grad_scale=None, found_inf=None, stochastic_rounding=False,
        seed=0, step=1):
    s = _scalars.sgd(lr=lr, momentum=momentum, dampening=dampening,
                     weight_decay=weight_decay, maximize=maximize)
    mode = 0 if momentum == 0.0 else (2 if nesterov else 1)
    roles = [params, grads, bufs if mode else None, None, None]
    flags = (weight_decay != 0.0, mode, first_step)
    if params and _mixed(masters, grad_scale, found_inf, stochastic_rounding, params):
        _launch_mixed("sgd", roles, masters, s, flags, grad_scale, found_inf,
                      stochastic_rounding, seed, step)
        return
    _launch("sgd", roles, s, flags)


def rmsprop(params, grads, square_avgs, grad_avgs, bufs, *, lr, alpha, eps, weight_decay,
            momentum, maximize, masters=None, grad_scale=None, found_inf=None,
            stochastic_rounding=False, seed=0, step=1):
    s = _scalars.rmsprop(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, maximize=maximize)
    roles = [params, grads, square_avgs, grad_avgs, bufs]
    flags = (weight_decay != 0.0, grad_avgs is not None, bufs is not None)
    if params and _mixed(masters, grad_scale, found_inf, stochastic_rounding, params):
        _launch_mixed("rmsprop", roles, masters, s, flags, grad_scale, found_inf,
                      stochastic_rounding, seed, step)
        return
    _launch("rmsprop", roles, s, flags)


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps,
         weight_decay, decoupled, maximize, masters=None, grad_scale=None, found_inf=None,
         stochastic_rounding=False, seed=0):
    s = _scalars.adam(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                      weight_decay=weight_decay, decoupled=decoupled, maximize=maximize)
    roles = [params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs]
    flags = (_scalars.adam_weight_decay_mode(weight_decay, decoupled), max_exp_avg_sqs is not None)
    if params and _mixed(masters, grad_scale, found_inf, stochastic_rounding, params):
        _launch_mixed("adam", roles, masters, s, flags, grad_scale, found_inf,
                      stochastic_rounding, seed, step)
        return
    _launch("adam", roles, s, flags)


def adagrad(params, grads, state_sums, *, step, lr, lr_decay, eps, weight_decay, maximize,
            masters=None, grad_scale=None, found_inf=None, stochastic_rounding=False, seed=0):
    s = _scalars.adagrad(step=step, lr=lr, lr_decay=lr_decay, eps=eps,
                         weight_decay=weight_decay, maximize=maximize)
    roles = [params, grads, state_sums, None, None]
    flags = (weight_decay != 0.0,)
    if params and _mixed(masters, grad_scale, found_inf, stochastic_rounding, params):
        _launch_mixed("adagrad", roles, masters, s, flags, grad_scale, found_inf,
                      stochastic_rounding, seed, step)
        return
    _launch("adagrad", roles, s, flags)
