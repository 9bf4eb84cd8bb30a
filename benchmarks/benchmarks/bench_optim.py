"""Optimizer steps (docs/reference.md s.2), EMA and gradient clipping."""
from .common import DTYPES, RUNNERS, SIZES, _FamilyBenchmark, kernel_names


class Optimizers(_FamilyBenchmark):
    """sgd, sgd-momentum, nesterov, rmsprop, adam, adamw, amsgrad, adagrad."""
    params = [kernel_names("optim", {"sgd", "adam"}), RUNNERS, SIZES, DTYPES]


class EmaClip(_FamilyBenchmark):
    """ema_update and clip_grad_norm (skipped until the utils family is built)."""
    params = [kernel_names("utils", {"ema"}), RUNNERS, SIZES, DTYPES]
