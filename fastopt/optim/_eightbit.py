"""``state_bits=8`` for the optimizer classes (docs/quantized-state.md).

Parameters with at least ``MIN_SIZE`` (4096) elements on the CPU, float32,
bfloat16 or float16 (``PARAM_DTYPES``), get their state as :class:`fastopt.QuantizedState` (exp_avg, momentum_buffer,
grad_avg signed; exp_avg_sq, square_avg unsigned, from the kernels' tables);
smaller ones keep float32 state. State dicts hold ``<name>.codes`` and
``<name>.absmax`` for a quantized entry (plain arrays, so ``.npz`` files work
unchanged); loading converts between 8-bit and float32 state as needed.
"""
from __future__ import annotations

import numpy as np

from fastopt._specs import KERNELS
from fastopt.backends.numpy.quantized import quantize_into
from fastopt.quantized import MIN_SIZE, PARAM_DTYPES, QuantizedState, check, check_absmax

SIGNED = {r.name: r.signed for k in KERNELS.values() for r in k.arrays if r.signed is not None}


def bits(value, amsgrad=False):
    if isinstance(value, bool) or value not in (8, 32):
        raise ValueError(f"Invalid state_bits value: {value!r} (must be 8 or 32)")
    if value == 8 and amsgrad:
        raise ValueError("state_bits=8 does not support amsgrad (its running maximum needs "
                         "float32 state)")
    return int(value)


def quantizes(opt, p) -> bool:
    return (getattr(opt, "state_bits", 32) == 8 and isinstance(p, np.ndarray)
            and p.dtype in PARAM_DTYPES and p.size >= MIN_SIZE)


def big(opt, ps):
    return [j for j, p in enumerate(ps) if quantizes(opt, p)]


def init_states(opt, g, ps, big_idx, init_float):
    """Fresh state: QuantizedState for ``ps[big_idx]``, ``init_float`` for the rest."""
    names = opt._state_names(g)
    small = [j for j in range(len(ps)) if j not in set(big_idx)]
    out = [None] * len(ps)
    for j, st in zip(small, init_float(g, [ps[j] for j in small])):
        out[j] = st
    for j in big_idx:
        out[j] = {n: QuantizedState(ps[j].shape, SIGNED[n]) for n in names}
    return out


def is_quantized(x) -> bool:
    return isinstance(x, QuantizedState)


def any_quantized(states) -> bool:
    return any(isinstance(x, QuantizedState) for lst in states.values() for x in lst)


def arrays_of(values):
    """The arrays behind state values (a QuantizedState's codes and absmax)."""
    for x in values:
        if isinstance(x, QuantizedState):
            yield x.codes
            yield x.absmax
        else:
            yield x


def export(name, value, to_numpy):
    if isinstance(value, QuantizedState):
        return {f"{name}.codes": value.codes.copy(), f"{name}.absmax": value.absmax.copy()}
    return {name: to_numpy(value)}


def gather(entry, names):
    """``<name>.codes`` / ``<name>.absmax`` pairs of a loaded entry as QuantizedState."""
    out = dict(entry)
    for n in names:
        c, a = out.pop(f"{n}.codes", None), out.pop(f"{n}.absmax", None)
        if c is None and a is None:
            continue
        if c is None or a is None or n in out:
            raise ValueError(f"state entry {n!r}: an 8-bit state needs both {n}.codes and "
                             f"{n}.absmax (and no float {n})")
        c, a = np.asarray(c), np.asarray(a)
        if c.dtype != np.uint8 or a.dtype != np.float32:
            raise TypeError(f"state entry {n!r}: codes must be uint8 and absmax float32")
        out[n] = QuantizedState(c.shape, SIGNED[n], codes=np.array(c), absmax=np.array(a))
    return out


def check_loaded(q, p, label):
    check(q, label, p.shape)
    check_absmax(q, label)
    if p.dtype not in PARAM_DTYPES:
        raise TypeError(f"{label} is 8-bit state but the parameter is {p.dtype} (float32, "
                        f"bfloat16 or float16 only)")
    return q


def assign(st, name, value):
    """Copies a loaded value into fresh state ``st[name]`` (either may be 8-bit)."""
    dst = st[name]
    if isinstance(dst, QuantizedState):
        if isinstance(value, QuantizedState):
            dst.codes[...] = value.codes
            dst.absmax[...] = value.absmax
        else:
            quantize_into(np.ascontiguousarray(value, np.float32).reshape(-1), dst)
    else:
        dst[...] = value.dequantize() if isinstance(value, QuantizedState) else value
