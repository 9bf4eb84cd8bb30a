"""8-bit optimizer steps on the C++ backend (csrc/bindings/quantized.cpp).
Params float32, bfloat16 or float16 (grads of their type or float32), passed
with their storage type codes (csrc/include/fastopt/mixed.h)."""
from fastopt import _core, _scalars
from fastopt.backends.cpp.optim import _CODES
from fastopt.quantized import SIGNED_MAP, UNSIGNED_MAP, code_table

SIGNED = (SIGNED_MAP, code_table(SIGNED_MAP, True))
UNSIGNED = (UNSIGNED_MAP, code_table(UNSIGNED_MAP, False))


def _types(params, grads):
    return (_CODES[params[0].dtype], _CODES[grads[0].dtype]) if params else (0, 0)


def _parts(states):
    return [q.codes for q in states], [q.absmax for q in states]


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps,
         weight_decay, decoupled, maximize):
    s = _scalars.adam(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                      weight_decay=weight_decay, decoupled=decoupled, maximize=maximize)
    _core.adam_step_8bit(params, grads, *_types(params, grads), *_parts(exp_avgs), *_parts(exp_avg_sqs), *SIGNED,
                         *UNSIGNED, *s, _scalars.adam_weight_decay_mode(weight_decay, decoupled))


def sgd(params, grads, bufs, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
        first_step):
    s = _scalars.sgd(lr=lr, momentum=momentum, dampening=dampening,
                     weight_decay=weight_decay, maximize=maximize)
    _core.sgd_step_8bit(params, grads, *_types(params, grads), *_parts(bufs), *SIGNED, *s, nesterov, first_step)


def rmsprop(params, grads, square_avgs, grad_avgs, bufs, *, lr, alpha, eps, weight_decay,
            momentum, maximize):
    s = _scalars.rmsprop(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, maximize=maximize)
    ga = _parts(grad_avgs) if grad_avgs is not None else (None, None)
    bf = _parts(bufs) if bufs is not None else (None, None)
    _core.rmsprop_step_8bit(params, grads, *_types(params, grads), *_parts(square_avgs), *ga, *bf, *SIGNED,
                            *UNSIGNED, *s)
