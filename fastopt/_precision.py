"""The type rules of mixed precision (docs/mixed-precision.md), part of the one
validation every backend shares (``fastopt._validate``).

An optimizer step's param has a storage type P (float16, bfloat16, float32,
float64); its grad is P, or float32 when P is 16-bit; its state arrays are all
of one type S, P or float32 (float32 only beside a 16-bit P: never narrower than
the param); a master copy is float32 beside a 16-bit P. ``grad_scale`` and
``found_inf`` live on the arrays' device.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from fastopt import _specs
from fastopt._arrays import as_array, is_cupy

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
HALF_DTYPES = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))   # computed in float32
STORAGE_DTYPES = HALF_DTYPES + FLOAT_DTYPES
_F32 = np.dtype(np.float32)


def check_dtype(state, a, label, precision):
    """The type rules of an optimizer step's roles (fastopt._specs.Role.precision)."""
    p, t, first = state.dtype, a.dtype, state.first
    half = p in HALF_DTYPES
    if precision == "grad" and not (t == p or (half and t == _F32)):
        raise TypeError(f"{label} has dtype {t} but {first} has dtype {p}: a gradient has "
                        f"its parameter's type" + (" or float32" if half else "")
                        + ("" if half or t not in HALF_DTYPES else
                           " (a 16-bit gradient needs a 16-bit param; a float32 param with "
                           "16-bit training keeps its 16-bit copy elsewhere)"))
    if precision == "state":
        if state.state is None:
            if not (t == p or (half and t == _F32)):
                raise TypeError(f"{label} has dtype {t} but {first} has dtype {p}: state "
                                f"arrays have the parameter's type"
                                + (" or float32" if half else "")
                                + (" (never narrower than the parameter)"
                                   if t.itemsize < p.itemsize else ""))
            state.state, state.state_label = t, label
        elif t != state.state:
            raise TypeError(f"{label} has dtype {t} but {state.state_label} has dtype "
                            f"{state.state}: all state arrays of a call share one type")
    if precision == "master":
        if not half:
            raise TypeError(f"{label} is given but {first} has dtype {p}: a float32 master "
                            f"copy goes with a 16-bit param (float16 or bfloat16)")
        if t != _F32:
            raise TypeError(f"{label} has dtype {t}; a master copy is float32")


def _device_scalar(c, name, a):
    if is_cupy(a) != c.on_gpu:
        raise TypeError(f"{name} is a {'GPU' if is_cupy(a) else 'CPU'} array but the arrays of the "
                        f"call are not: it lives on their device")
    if c.on_gpu and a.device.id != c["param"][0].device.id:
        raise ValueError(f"{name} is on GPU {a.device.id} but param is on GPU "
                         f"{c['param'][0].device.id}")


def amp(c, h, values):
    """grad_scale and found_inf of an optimizer step: on their arrays' device; a CPU
    grad_scale array is read here (``h["grad_scale"]`` becomes a float) and
    ``c.lists["found_inf"]`` holds the found_inf array (or None)."""
    from fastopt import _validate
    gs = h["grad_scale"]
    if gs is not None and not isinstance(gs, float):
        _device_scalar(c, "grad_scale", gs)
        if not c.on_gpu:
            h["grad_scale"] = _validate.check(_specs.GRAD_SCALE, "grad_scale", float(gs.reshape(-1)[0]))
    fi = values["found_inf"]
    if fi is not None:
        fi = as_array(fi, "found_inf")
        if fi.dtype != _F32 or fi.size != 1:
            raise TypeError(f"found_inf must be a 1-element float32 array, got an array of dtype "
                            f"{fi.dtype} and {fi.size} elements")
        _device_scalar(c, "found_inf", fi)
    c.lists["found_inf"] = fi
