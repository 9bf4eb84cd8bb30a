"""16-bit arrays on the C++ backend: the bindings of float16/bfloat16 kernels take
uint16 views (pybind11 knows no 16-bit float dtype; zero-copy) and are named
``<kernel>_f16`` / ``<kernel>_bf16``."""
import ml_dtypes
import numpy as np

from fastopt import _core

_HALF = {np.dtype(np.float16): "f16", np.dtype(ml_dtypes.bfloat16): "bf16"}


def _same(a):
    return a


def _bits(a):
    return None if a is None else a.view(np.uint16)


def entry(name, dtype):
    """``(binding, view)``: ``_core.<name>`` for float32/float64 arrays (view: the
    array itself), ``_core.<name>_<f16|bf16>`` and a uint16 view for 16-bit ones."""
    kind = _HALF.get(np.dtype(dtype))
    if kind is None:
        return getattr(_core, name), _same
    return getattr(_core, f"{name}_{kind}"), _bits
