"""The torch-named argument checks of fastopt's custom ops (:mod:`fastopt.torch.ops`),
shared by their real and fake kernels."""
from __future__ import annotations

import torch

_HALF = (torch.float16, torch.bfloat16)
_DTYPES = (torch.float32, torch.float64) + _HALF


def stat_dtype(x):
    """The dtype of the kernels' per-channel arrays for input ``x``: float32 for a
    16-bit ``x`` (its compute type), else ``x``'s."""
    return torch.float32 if x.dtype in _HALF else x.dtype


def check(op, x, **others):
    """torch-named checks shared by the real and the fake kernels. A 16-bit input takes
    per-channel tensors in float32 or in its own type (a module converted with
    ``.to(torch.bfloat16)``), as torch's batch norm does; they are widened to float32."""
    if x.dtype not in _DTYPES:
        raise TypeError(f"fastopt.{op}: input has dtype {x.dtype}; fastopt's torch layers take "
                        f"torch.float16, torch.bfloat16, torch.float32 or torch.float64")
    for name, t in others.items():
        if t is None:
            continue
        if t.dtype != x.dtype and t.dtype != stat_dtype(x):
            raise TypeError(f"fastopt.{op}: {name} has dtype {t.dtype} but input has dtype "
                            f"{x.dtype}")
        if t.device != x.device:
            raise TypeError(f"fastopt.{op}: {name} is on {t.device} but input is on {x.device}")


def check_channels(op, x, **vectors):
    if x.dim() < 2:
        raise ValueError(f"fastopt.{op}: input must have at least 2 dimensions (N, C, *spatial), "
                         f"got shape {tuple(x.shape)}")
    c = x.shape[1]
    for name, t in vectors.items():
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"fastopt.{op}: {name} has shape {tuple(t.shape)} but input has "
                             f"{c} channels")


def check_order(order):
    """dropout_backward's ``order``: the 1-D int64 permutation the forward returned."""
    if order.dtype != torch.int64 or order.dim() != 1:
        raise TypeError(f"fastopt.dropout_backward: order must be the 1-D int64 tensor the "
                        f"forward returned, got {order.dtype} of shape {tuple(order.shape)}")
