"""Mixed precision of the optimizer classes (docs/mixed-precision.md).

``master_weights=True``: each 16-bit parameter gets a float32 master copy, kept in
its state as ``master_param`` (saved beside the other state); the step updates the
master and writes the parameter as its rounding, in the same pass.
``state_dtype``: the type of new state arrays, ``None`` = float32 for 16-bit params
(the parameter's own type otherwise). ``stochastic_rounding=True, seed=``: 16-bit
parameters without a master are rounded stochastically; parameter ``k`` (in
parameter order, groups concatenated) uses the seed
``(seed + 0x9E3779B97F4A7C15 * (k + 1)) % 2**64``, so each parameter has its own
random stream and the result does not depend on how parameters are grouped.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from fastopt import _validate as v

MASTER = "master_param"
_F32 = np.dtype(np.float32)
_GOLDEN = 0x9E3779B97F4A7C15


class Settings(NamedTuple):
    master_weights: bool = False
    state_dtype: Optional[np.dtype] = None
    stochastic_rounding: bool = False
    seed: int = 0


def dtype_of(value, name="state_dtype"):
    """A storage dtype from a NumPy type or dtype, a name, or a torch dtype (None stays None)."""
    if value is None:
        return None
    text = str(value)
    text = text[len("torch."):] if text.startswith("torch.") else text
    try:
        dt = np.dtype(v.HALF_DTYPES[1] if text == "bfloat16" else
                      text if str(value).startswith("torch.") else value)
    except TypeError:
        raise TypeError(f"{name} must be a floating dtype, got {value!r}") from None
    if dt not in v.STORAGE_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {dt}")
    return dt


def settings(master_weights=False, state_dtype=None, stochastic_rounding=False, seed=0):
    return Settings(v.flag("master_weights", master_weights), dtype_of(state_dtype),
                    v.flag("stochastic_rounding", stochastic_rounding), v.seed(seed))


def of(opt) -> Settings:
    return getattr(opt, "_mp", None) or Settings()


def state_dtype(opt, p):
    """The type of ``p``'s new state arrays (``state_dtype`` applies to 16-bit params)."""
    s = of(opt).state_dtype
    if p.dtype not in v.HALF_DTYPES:
        return p.dtype
    return _F32 if s is None else s


def has_master(opt, p) -> bool:
    return of(opt).master_weights and p.dtype in v.HALF_DTYPES


def is_mixed(opt, p) -> bool:
    """True when ``p``'s updates go through the validated functional step (16-bit, or
    state of another type): the fused path of the classes takes one dtype only."""
    return p.dtype in v.HALF_DTYPES or state_dtype(opt, p) != p.dtype


def rounds_stochastically(opt, p) -> bool:
    return of(opt).stochastic_rounding and p.dtype in v.HALF_DTYPES and not has_master(opt, p)


def param_seed(seed, k):
    """The seed of the ``k``-th parameter (0-based, parameter order)."""
    return (seed + _GOLDEN * (k + 1)) % 2 ** 64


def init_master(opt, p, st):
    if has_master(opt, p):
        st[MASTER] = p.astype(np.float32)   # a copy on p's device


def bucket(opt, i, p):
    """What must be equal for parameters to share one list call (beyond step and dtype):
    a stochastically rounded parameter has its own seed, so it goes alone."""
    return (i if rounds_stochastically(opt, p) else -1, state_dtype(opt, p), has_master(opt, p))


def extra(opt, idx, params, states, steps):
    """The functional step's mixed-precision keywords for the parameters ``idx``."""
    kw = {}
    if MASTER in states[idx[0]]:
        kw[MASTER] = [states[i][MASTER] for i in idx]
    if rounds_stochastically(opt, params[idx[0]]):   # a bucket of one (see bucket())
        kw.update(stochastic_rounding=True, seed=param_seed(of(opt).seed, idx[0]))
        if getattr(opt, "_sr_step", False):   # SGD, RMSprop: adam/adagrad have their step
            kw["step"] = steps[idx[0]] + 1
    return kw


def expected_dtype(opt, name, p):
    """The dtype a loaded state entry must have."""
    return _F32 if name == MASTER else state_dtype(opt, p)


def describe(opt):
    """The settings as they go into a state dict (plain values)."""
    s = of(opt)
    return {"master_weights": s.master_weights,
            "state_dtype": None if s.state_dtype is None else str(s.state_dtype),
            "stochastic_rounding": s.stochastic_rounding, "seed": s.seed}
