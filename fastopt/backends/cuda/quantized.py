"""8-bit optimizer steps on the GPU (csrc/cuda/quantized.cu): one launch per
tensor, one CUDA block of 256 threads per quantization block.

Same functions and signatures as ``fastopt/backends/cpp/quantized.py``: params
float32, bfloat16 (as cupy uint16 bits) or float16, grads of their type or
float32; each state has ``codes`` (uint8) and ``absmax`` (float32) device
arrays and ``signed``, the fields of :class:`fastopt.QuantizedState`. The maps
and code tables are the cpp backend's, copied to each device once. In this
version ``QuantizedState`` lives on the CPU and validation sends no GPU call
here (fastopt/_quantized_validate.py); tests/test_cuda_quantized.py runs these
kernels on a GPU, tests/test_cuda_quantized_emulated.py runs the kernels'
source on the CPU.
"""
from __future__ import annotations

import numpy as np

from fastopt import _scalars
from fastopt.backends.cuda import loader
from fastopt.quantized import SIGNED_MAP, UNSIGNED_MAP, blocks, code_table

_HEAD = "ppq"   # param, grad, n
KERNELS = {     # argument specs of fastopt_<kernel>_8bit_<P><G> (float scalars as "T")
    "adam": _HEAD + "pp" * 2 + "pppp" + "T" * len(_scalars.AdamScalars._fields) + "i",
    "sgd": _HEAD + "pp" + "pp" + "T" * len(_scalars.SgdScalars._fields) + "iii",
    "rmsprop": _HEAD + "pp" * 3 + "pppp" + "T" * len(_scalars.RmspropScalars._fields) + "iii",
}
_LETTER = {np.dtype(np.float32): "f", np.dtype(np.uint16): "b", np.dtype(np.float16): "h"}
_TABLES = {}   # device id -> (signed map, signed lut, unsigned map, unsigned lut) on it


def _tables():
    import cupy
    dev = cupy.cuda.Device().id
    if dev not in _TABLES:
        _TABLES[dev] = tuple(cupy.asarray(a) for a in (
            SIGNED_MAP, code_table(SIGNED_MAP, True), UNSIGNED_MAP, code_table(UNSIGNED_MAP, False)))
    return _TABLES[dev]


def _state(q):
    return (None, None) if q is None else (q.codes, q.absmax)


def _launch(kernel, params, grads, per_tensor, scalars, flags):
    """One launch per tensor t: ``per_tensor(t)`` gives its state and table arguments."""
    loader.refuse_capture(f"fastopt's 8-bit {kernel} step")
    for t, (p, g) in enumerate(zip(params, grads)):
        if p.size == 0:
            continue
        name = f"fastopt_{kernel}_8bit_{_LETTER[p.dtype]}{_LETTER[g.dtype]}"
        with loader.device_of([p]):
            loader.launch("quantized", name, blocks(p.size), 256, KERNELS[kernel],
                          (p, g, p.size, *per_tensor(t), *scalars, *flags), np.float32)


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps,
         weight_decay, decoupled, maximize):
    s = _scalars.adam(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                      weight_decay=weight_decay, decoupled=decoupled, maximize=maximize)
    _launch("adam", params, grads,
            lambda t: (*_state(exp_avgs[t]), *_state(exp_avg_sqs[t]), *_tables()), s,
            (_scalars.adam_weight_decay_mode(weight_decay, decoupled),))


def sgd(params, grads, bufs, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
        first_step):
    s = _scalars.sgd(lr=lr, momentum=momentum, dampening=dampening,
                     weight_decay=weight_decay, maximize=maximize)
    _launch("sgd", params, grads, lambda t: (*_state(bufs[t]), *_tables()[:2]), s,
            (int(weight_decay != 0.0), int(nesterov), int(first_step)))


def rmsprop(params, grads, square_avgs, grad_avgs, bufs, *, lr, alpha, eps, weight_decay,
            momentum, maximize):
    s = _scalars.rmsprop(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, maximize=maximize)
    _launch("rmsprop", params, grads, lambda t: (
        *_state(square_avgs[t]), *_state(grad_avgs[t] if grad_avgs else None),
        *_state(bufs[t] if bufs else None), *_tables()), s,
        (int(weight_decay != 0.0), int(grad_avgs is not None), int(bufs is not None)))
