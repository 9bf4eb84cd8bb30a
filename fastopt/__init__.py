"""fastopt: fused, compiled kernels for the inner loop of neural-network training.

Optimizer steps (SGD, Nesterov, RMSProp, Adam, AdamW, AMSGrad, Adagrad), batch
normalization and inverted dropout, each one pass over memory, on four
backends that compute the same function: ``numpy`` (reference), ``numba``,
``cpp`` (C++/SIMD/threads) and ``cuda`` (CuPy RawModule). See DESIGN.md for the
contract and README.md for examples. ``import fastopt`` never imports torch.
"""
from fastopt._backends import available_backends
from fastopt._info import info
from fastopt.dropout import dropout_backward, dropout_forward, dropout_mask
from fastopt.batchnorm import batch_norm_backward, batch_norm_forward
from fastopt.gradcheck import GradcheckResult, gradcheck, numerical_gradient
from fastopt.optim import adagrad_step, adam_step, rmsprop_step, sgd_step
from fastopt.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop, load_state, save_state
from fastopt.utils import EMA, clip_grad_norm, ema_update, grad_norm
from fastopt import schedules

__version__ = "0.1.0"

__all__ = [
    "available_backends", "info", "sgd_step", "rmsprop_step", "adam_step", "adagrad_step",
    "dropout_forward", "dropout_backward", "dropout_mask",
    "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "save_state", "load_state", "schedules",
    "ema_update", "EMA", "clip_grad_norm", "grad_norm",
    "batch_norm_forward", "batch_norm_backward", "gradcheck", "numerical_gradient",
    "GradcheckResult",
]
