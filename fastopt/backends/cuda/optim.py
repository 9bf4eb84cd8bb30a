"""Optimizer steps on the GPU: one launch per call over the whole list of tensors.

Same functions and signatures as ``fastopt/backends/cpp/optim.py``. Scalars come from
``fastopt/_scalars.py`` (double, on the host) and are cast to the arrays'
dtype by ``loader.pack_args``, exactly as the C++ binding casts them, so the
GPU computes the CPU's function. The pointer table is cached by data pointers
(``loader.device_table``): a step with the same arrays as the last is one
kernel launch and no copy.
"""
from __future__ import annotations

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
        first_step):
    s = _scalars.sgd(lr=lr, momentum=momentum, dampening=dampening,
                     weight_decay=weight_decay, maximize=maximize)
    mode = 0 if momentum == 0.0 else (2 if nesterov else 1)
    _launch("sgd", [params, grads, bufs if mode else None, None, None], s,
            (weight_decay != 0.0, mode, first_step))


def rmsprop(params, grads, square_avgs, grad_avgs, bufs, *, lr, alpha, eps, weight_decay,
            momentum, maximize):
    s = _scalars.rmsprop(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, maximize=maximize)
    _launch("rmsprop", [params, grads, square_avgs, grad_avgs, bufs], s,
            (weight_decay != 0.0, grad_avgs is not None, bufs is not None))


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps,
         weight_decay, decoupled, maximize):
    s = _scalars.adam(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                      weight_decay=weight_decay, decoupled=decoupled, maximize=maximize)
    _launch("adam", [params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs], s,
            (_scalars.adam_weight_decay_mode(weight_decay, decoupled),
             max_exp_avg_sqs is not None))


def adagrad(params, grads, state_sums, *, step, lr, lr_decay, eps, weight_decay, maximize):
    s = _scalars.adagrad(step=step, lr=lr, lr_decay=lr_decay, eps=eps,
                         weight_decay=weight_decay, maximize=maximize)
    _launch("adagrad", [params, grads, state_sums, None, None], s, (weight_decay != 0.0,))
