"""Host-side scalars of the optimizer steps, computed once per call in double.

The compiled backends (cpp, numba, cuda) receive these in the field order of
the structs in ``csrc/include/fastopt/optim.h``; the NumPy reference does its
own arithmetic and does not use them.
"""
from __future__ import annotations

import math
from typing import NamedTuple

NO_DECAY, L2, DECOUPLED = 0, 1, 2   # WeightDecayMode in optim.h


class SgdScalars(NamedTuple):
    lr: float
    momentum: float
    one_minus_dampening: float
    weight_decay: float
    grad_sign: float


class RmspropScalars(NamedTuple):
    lr: float
    alpha: float
    one_minus_alpha: float
    eps: float
    weight_decay: float
    momentum: float
    grad_sign: float


class AdamScalars(NamedTuple):
    beta1: float
    one_minus_beta1: float
    beta2: float
    one_minus_beta2: float
    eps: float
    weight_decay: float
    grad_sign: float
    step_size: float
    bc2_sqrt: float
    decay_factor: float


class AdagradScalars(NamedTuple):
    clr: float
    eps: float
    weight_decay: float
    grad_sign: float


def sign(maximize: bool) -> float:
    return -1.0 if maximize else 1.0


def sgd(*, lr, momentum, dampening, weight_decay, maximize) -> SgdScalars:
    return SgdScalars(lr, momentum, 1.0 - dampening, weight_decay, sign(maximize))


def rmsprop(*, lr, alpha, eps, weight_decay, momentum, maximize) -> RmspropScalars:
    return RmspropScalars(lr, alpha, 1.0 - alpha, eps, weight_decay, momentum, sign(maximize))


def adam(*, step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize) -> AdamScalars:
    # A plain tuple in AdamScalars' field order: this runs on every small call.
    return (beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps, 0.0 if decoupled else weight_decay,
            -1.0 if maximize else 1.0, lr / (1.0 - beta1 ** step),
            math.sqrt(1.0 - beta2 ** step), 1.0 - lr * weight_decay if decoupled else 1.0)


def adam_weight_decay_mode(weight_decay, decoupled) -> int:
    if weight_decay == 0.0:
        return NO_DECAY
    return DECOUPLED if decoupled else L2


def adagrad(*, step, lr, lr_decay, eps, weight_decay, maximize) -> AdagradScalars:
    return AdagradScalars(lr / (1.0 + (step - 1) * lr_decay), eps, weight_decay, sign(maximize))


class DropoutScalars(NamedTuple):
    threshold: int   # round(p * 2**32), ties to even: kept iff word >= threshold
    scale: float     # 1 / (1 - p) in double (0 when p == 1); cast to the dtype by the caller


def dropout(p) -> DropoutScalars:
    """Threshold and scale of inverted dropout with drop probability p in [0, 1]."""
    return DropoutScalars(round(p * 2.0 ** 32), dropout_scale(p))


def dropout_scale(p) -> float:
    """The scale of inverted dropout's kept elements, ``1 / (1 - p)`` (0 when p = 1)."""
    return 0.0 if p == 1.0 else 1.0 / (1.0 - p)
