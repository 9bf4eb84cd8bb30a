"""Turning what users pass (NumPy, CuPy, anything with ``__dlpack__``) into
arrays the backends take, without ever copying."""
from __future__ import annotations

import ml_dtypes
import numpy as np

_BF16 = np.dtype(ml_dtypes.bfloat16)


def is_cupy(x) -> bool:
    return type(x).__module__.startswith("cupy")


def torch_numpy(t):
    """A CPU torch tensor (detached) as a NumPy array sharing its memory. NumPy's DLPack
    has no bfloat16: a bfloat16 tensor is viewed as int16 in torch, then as
    ``ml_dtypes.bfloat16`` in NumPy (both views zero-copy, :func:`bfloat16_numpy`)."""
    if str(t.dtype) == "torch.bfloat16":
        return bfloat16_numpy(t)
    return t.numpy()


_TORCH_INT16 = None   # torch.int16, looked up once (fastopt never imports torch itself)


def bfloat16_numpy(t):
    """A CPU bfloat16 torch tensor as an ``ml_dtypes.bfloat16`` NumPy view of its memory
    (per gradient on the drop-in's planned steps, so no imports per call)."""
    global _TORCH_INT16
    if _TORCH_INT16 is None:
        import torch   # already imported: t is a torch tensor
        _TORCH_INT16 = torch.int16
    return t.view(_TORCH_INT16).numpy().view(_BF16)


def _from_dlpack(x, name: str):
    """A zero-copy view of a DLPack object (a torch tensor, a JAX array)."""
    device = x.__dlpack_device__()[0] if hasattr(x, "__dlpack_device__") else 1
    if device == 1:  # kDLCPU
        # torch tensors: .numpy() is a writeable zero-copy view (DLPack views
        # of older producers come back read-only).
        if type(x).__module__ == "torch" and hasattr(x, "detach"):
            return torch_numpy(x.detach())
        return np.from_dlpack(x)
    if device == 2:  # kDLCUDA
        try:
            import cupy
        except ImportError as exc:
            raise TypeError(f"{name} is a CUDA array but cupy is not installed "
                            f"(pip install fastopt[cuda]): {exc}") from None
        if type(x).__module__ == "torch" and hasattr(x, "detach"):
            x = x.detach()  # torch refuses to export a tensor that requires grad
        return cupy.from_dlpack(x)
    raise TypeError(f"{name} lives on DLPack device type {device}; fastopt takes CPU and CUDA arrays")


def as_array(x, name: str):
    """``x`` as an ndarray sharing its memory, or TypeError naming ``name``."""
    if type(x) is np.ndarray:
        return x
    if isinstance(x, np.ma.MaskedArray):
        # the kernels would read the masked-out values as data
        raise TypeError(f"{name} is a numpy.ma.MaskedArray; fastopt does not honour masks: "
                        f"pass x.data (or x.filled(...)) explicitly")
    if is_cupy(x):   # first: the tests' emulated CuPy arrays are ndarray subclasses
        return x
    if isinstance(x, np.ndarray):
        # a subclass's own methods differ (np.matrix's reshape(-1) stays 2-D, and numba
        # wrote past it): every backend gets the plain array on the same memory
        return x.view(np.ndarray)
    if hasattr(x, "__dlpack__"):
        return _from_dlpack(x, name)
    raise TypeError(f"{name} must be a numpy.ndarray, cupy.ndarray or an object with "
                    f"__dlpack__, got {type(x).__name__}")
