"""``state_bits=8`` for ``fastopt.torch.Adam / AdamW / SGD / RMSprop`` (docs/quantized-state.md).

A parameter that is a contiguous real float32 CPU tensor of at least 4096
elements gets its state ``<name>`` (``exp_avg``, ``exp_avg_sq``,
``momentum_buffer``, ``square_avg``, ``grad_avg``) as two torch tensors in
``opt.state[p]``: ``<name>.codes`` (uint8, the parameter's shape) and
``<name>.absmax`` (float32, one per block of 256). ``state_dict()`` /
``load_state_dict()`` (torch's own) carry them as they are, so a resumed run
continues bit for bit. Other parameters keep float32 state. Whatever state a
parameter already has decides its format (a float32 checkpoint loaded into an
8-bit optimizer keeps running in float32).
"""
from __future__ import annotations

import numpy as np
import torch

from fastopt.optim._eightbit import SIGNED
from fastopt.quantized import BLOCK, MIN_SIZE, QuantizedState, blocks, zero_code


def quantizes(bits, p) -> bool:
    """A fresh state of ``p`` is 8-bit."""
    return (bits == 8 and p.dtype == torch.float32 and p.device.type == "cpu"
            and p.is_contiguous() and p.numel() >= MIN_SIZE and type(p.data) is torch.Tensor)


def holds(st, name) -> bool:
    return bool(st) and f"{name}.codes" in st


def check(st, name, p, cls):
    """The NumPy views of an 8-bit entry (for the overlap check); raises if malformed."""
    c, a = st[f"{name}.codes"], st.get(f"{name}.absmax")
    if (not isinstance(c, torch.Tensor) or not isinstance(a, torch.Tensor)
            or c.dtype != torch.uint8 or a.dtype != torch.float32 or c.shape != p.shape
            or a.shape != (blocks(p.numel()),) or not c.is_contiguous()
            or not a.is_contiguous() or p.dtype != torch.float32):
        raise ValueError(f"fastopt.torch.{cls}: 8-bit state {name!r} of a parameter of shape "
                         f"{tuple(p.shape)}, {p.dtype} needs {name}.codes (uint8, that shape) "
                         f"and {name}.absmax (float32, one per block of {BLOCK}), contiguous, "
                         f"and a float32 parameter")
    return [c.numpy(), a.numpy()]


def create(st, names, p):
    for n in names:
        st[f"{n}.codes"] = torch.full(p.shape, zero_code(SIGNED[n]), dtype=torch.uint8)
        st[f"{n}.absmax"] = torch.zeros(blocks(p.numel()), dtype=torch.float32)


def state(st, name):
    """The QuantizedState on the entry's tensors (no copy) and the tensors it writes."""
    c, a = st[f"{name}.codes"], st[f"{name}.absmax"]
    return QuantizedState(c.shape, SIGNED[name], codes=c.numpy(), absmax=a.numpy()), [c, a]


def check_incoming(state_dict):
    """ValueError unless every 8-bit entry of a state dict about to be loaded holds codes
    0..255 (any dtype: torch casts them to the parameter's) and an absmax >= 0 or NaN.
    Runs before torch's load_state_dict, so a refused dict changes nothing."""
    for st in state_dict.get("state", {}).values():
        for k, c in st.items():
            if not isinstance(c, (torch.Tensor, np.ndarray)):
                continue
            t = torch.as_tensor(c)
            if k.endswith(".codes") and t.dtype != torch.uint8:
                if not (t.is_floating_point() and bool(((t >= 0) & (t <= 255)
                                                        & (t == t.round())).all())):
                    raise ValueError(f"8-bit state {k!r} holds values that are not codes 0..255")
            if k.endswith(".absmax") and bool((t < 0).any()):
                raise ValueError(f"8-bit state {k!r}: an absmax is a block's largest magnitude "
                                 f"(>= 0, or NaN where the state is NaN), it holds negative values")


def after_load(opt):
    """torch's load_state_dict casts every state tensor to the parameter's dtype: the
    codes come back as float32 holding 0..255 exactly (``check_incoming`` saw to that),
    made uint8 again here."""
    for st in opt.state.values():
        for k, c in list(st.items()):
            if k.endswith(".codes") and isinstance(c, torch.Tensor) and c.dtype != torch.uint8:
                st[k] = c.to(torch.uint8)
