"""Validation of optimizer calls whose state is 8-bit (fastopt.quantized.QuantizedState).

``fastopt._validate.call`` hands a call here when any state role the table marks
quantizable (``Role.signed``) holds a QuantizedState. Same rules as the float
path (every check before anything is written), plus: float32, bfloat16 or
float16 parameters on the CPU (grads of their type or float32), every used state
role quantized with its role's map, codes of the parameter's shape, one absmax
per block, no shared or overlapping memory.
"""
from __future__ import annotations

from fastopt import _validate as v
from fastopt.quantized import PARAM_DTYPES, QuantizedState, check


class QuantizedChecked(v.Checked):
    """Checked arrays of an 8-bit call; ``family`` routes it to backends/*/quantized.py."""
    __slots__ = ()
    family = "quantized"


def _members(name, value, is_list, count):
    if is_list:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list like param, got {type(value).__name__}")
        if len(value) != count:
            raise ValueError(f"{name} has {len(value)} states but param has {count}")
        return list(value), [f"{name}[{i}]" for i in range(count)]
    if isinstance(value, (list, tuple)):
        raise TypeError(f"{name} is a list but param is a single array")
    return [value], [name]


def _unused(spec, values):
    """The quantizable roles whose option is off in this call (momentum == 0, ...)."""
    h = v.hypers(spec, values)
    scope = dict(values, **h)
    return [r.name for r in spec.arrays
            if r.signed is not None and r.when is not None and not v._holds(r.when.expr, scope)]


_MIXED = ("master_param", "grad_scale", "found_inf")


def call(spec, values):
    unused = _unused(spec, values)
    if not any(v._is_quantized(values[r.name]) for r in spec.arrays
               if r.signed is not None and r.name not in unused):
        # Only unused roles hold 8-bit state (SGD without momentum): the float step,
        # exactly as when no state is passed.
        return v.call(spec, dict(values, **{name: None for name in unused}))
    used = [n for n in _MIXED if values.get(n) is not None] + (
        ["stochastic_rounding"] if values.get("stochastic_rounding") else [])
    if used:
        raise ValueError(f"{', '.join(used)}: mixed precision is not supported with 8-bit state "
                         f"(QuantizedState) in this version")
    quantizable = [r for r in spec.arrays if r.signed is not None]
    plain = [r for r in spec.arrays if r.signed is None and r.dtype == "float"
             and r.precision != "master"]
    # param float32, bfloat16 or float16; grad the param's type or float32 (the
    # type rules of fastopt._precision); the codes hold float32 values either way
    c = v.arrays(*[(r.name, values[r.name], r.written is True, r.precision) for r in plain],
                 dtypes=PARAM_DTYPES)
    if c.on_gpu:
        raise TypeError("8-bit state (QuantizedState) runs on the CPU only in this version")
    h = v.hypers(spec, values)
    v.rules(spec, h, values)
    if h.get("amsgrad"):
        raise ValueError("amsgrad is not supported with 8-bit state (QuantizedState): "
                         "use float32 exp_avg / exp_avg_sq / max_exp_avg_sq")
    scope = dict(values, **h)
    params = c["param"]
    flat, labels = list(params), [f"param[{i}]" if c.is_list else "param" for i in range(len(params))]
    for role in quantizable:
        value = values[role.name]
        if value is None or (role.when is not None and not v._holds(role.when.expr, scope)):
            c.lists[role.name] = None
            continue
        states, names = _members(role.name, value, c.is_list, len(params))
        kind = "a signed" if role.signed else "an unsigned"
        for q, label, p in zip(states, names, params):
            if not isinstance(q, QuantizedState):
                raise TypeError(f"{label} is a {type(q).__name__} but other state of this call is "
                                f"8-bit: pass QuantizedState for every state array, or none")
            check(q, label, p.shape)
            if q.signed != role.signed:
                raise ValueError(f"{label} must be {kind} QuantizedState (signed={role.signed}): "
                                 f"{role.name} uses the {'signed' if role.signed else 'unsigned'} map")
            flat += [q.codes, q.absmax]
            labels += [f"{label}.codes", f"{label}.absmax"]
        c.lists[role.name] = states
    v._refuse_overlap(flat, labels)
    return QuantizedChecked(c.lists, c.is_list, False, c.dtype), h
