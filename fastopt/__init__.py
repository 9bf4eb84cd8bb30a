"""fastopt: fused, compiled kernels for the inner loop of neural-network training.

Optimizer steps (SGD, Nesterov, RMSProp, Adam, AdamW, AMSGrad, Adagrad), batch
normalization and inverted dropout, on four backends that compute the same
function: ``numpy`` (reference), ``numba``, ``cpp`` (C++/SIMD/threads) and
``cuda`` (CuPy RawModule). ``docs/ARCHITECTURE.md`` maps every public name to
the file that implements it; ``docs/reference.md`` is the contract.
``import fastopt`` never imports torch.
"""
import sys as _sys

from fastopt.backends import available_backends
from fastopt._info import info
from fastopt.functional.optim import adagrad_step, adam_step, rmsprop_step, sgd_step
from fastopt.functional.batchnorm import batch_norm_backward, batch_norm_forward
from fastopt.functional.dropout import dropout_backward, dropout_forward, dropout_mask
from fastopt.functional.averaging import ema_update
from fastopt.functional.clipping import clip_grad_norm, grad_norm
from fastopt.quantized import QuantizedState, quantize
from fastopt.gradcheck import GradcheckResult, gradcheck, numerical_gradient
from fastopt.optim import (EMA, SGD, Adagrad, Adam, AdamW, RMSprop, load_state, save_state,
                           schedules)

# `fastopt.schedules` is public (``import fastopt.schedules`` keeps working).
_sys.modules[__name__ + ".schedules"] = schedules

__version__ = "0.1.0"

__all__ = [
    "available_backends", "info", "sgd_step", "rmsprop_step", "adam_step", "adagrad_step",
    "dropout_forward", "dropout_backward", "dropout_mask",
    "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "save_state", "load_state", "schedules",
    "ema_update", "EMA", "clip_grad_norm", "grad_norm",
    "batch_norm_forward", "batch_norm_backward", "gradcheck", "numerical_gradient",
    "GradcheckResult", "QuantizedState", "quantize",
]
