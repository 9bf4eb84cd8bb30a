"""Mixed precision and ``torch.amp.GradScaler`` in the ``fastopt.torch`` optimizers.

16-bit parameters (``torch.float16`` / ``torch.bfloat16``) are stepped in place
(bfloat16 through an int16 view, ``fastopt._arrays.torch_numpy``). State is of the
parameter's type, as torch's (``state_dtype=torch.float32`` keeps float32 state for
16-bit parameters); ``master_weights=True`` keeps a float32 ``master_param`` per
16-bit parameter in ``opt.state[p]``; ``stochastic_rounding=True, seed=`` as in
``fastopt.optim._mixed`` (parameter ``k`` in parameter order gets its own seed).

GradScaler: the classes set ``_step_supports_amp_scaling = True``, so
``scaler.step(opt)`` does not unscale ``.grad`` itself: it sets ``opt.grad_scale``
(None after an explicit ``scaler.unscale_(opt)``) and ``opt.found_inf`` and calls
``step()``, which divides the gradients inside the kernels and writes nothing when
``found_inf`` is nonzero (step counts unchanged), as torch's fused optimizers do.
Unlike torch's fused kernels, the unscaled gradient is not written back into
``.grad`` (docs/mixed-precision.md says why).
"""
from __future__ import annotations

import contextlib
from typing import NamedTuple, Optional

import torch

from fastopt import _validate as v
from fastopt.optim import _mixed

MASTER = _mixed.MASTER
HALF = (torch.float16, torch.bfloat16)


class Settings(NamedTuple):
    master_weights: bool = False
    state_dtype: Optional[torch.dtype] = None
    stochastic_rounding: bool = False
    seed: int = 0


DEFAULT = Settings()


def settings(opt, master_weights, state_dtype, stochastic_rounding, seed):
    if state_dtype not in (None, torch.float32) + HALF:
        raise TypeError(f"state_dtype must be None (the parameter's type, as torch), "
                        f"torch.float32, torch.float16 or torch.bfloat16, got {state_dtype!r}")
    s = Settings(v.flag("master_weights", master_weights), state_dtype,
                 v.flag("stochastic_rounding", stochastic_rounding), v.seed(seed))
    if s.stochastic_rounding and not opt._has_step:
        raise ValueError(f"stochastic_rounding=True needs a step count per parameter, which "
                         f"torch.optim.{type(opt).__name__} does not keep: use "
                         f"fastopt.{type(opt).__name__}")
    return s


def _of(opt):
    return getattr(opt, "_fo_mp", DEFAULT)


def has_master(opt, p):
    return _of(opt).master_weights and p.dtype in HALF


def fastopt_only(opt, p):
    """What of ``p``'s step only fastopt does (torch's implementation, which takes the
    parameters fastopt sets aside, would ignore or trip over it), or None."""
    s = _of(opt)
    if p.dtype not in HALF:
        return None
    if s.master_weights:
        return "master_weights=True"
    if s.state_dtype is not None and s.state_dtype != p.dtype:
        return f"state_dtype={s.state_dtype}"
    if s.stochastic_rounding:
        return "stochastic_rounding=True"
    return None


def state_dtype(opt, p, name):
    """The dtype of state entry ``name`` of ``p``: float32 for the master; for a 16-bit
    ``p`` ``state_dtype`` when given; else ``p``'s own type (torch's)."""
    if name == MASTER:
        return torch.float32
    s = _of(opt).state_dtype
    return s if s is not None and p.dtype in HALF else p.dtype


def is_mixed(opt, p):
    return p.dtype in HALF


def unplanned(opt, entries):
    """True when the group's next step must not reuse a plan: stochastically rounded
    parameters (one call each, with its own seed) take the validated functional step
    every time. 16-bit parameters otherwise plan as float32 ones do, their master
    copies in the plan (:func:`plan_extra`)."""
    return any(_rounds_stochastically(opt, e.p) for e in entries)


def plan_extra(rows):
    """The mixed-precision keywords a plan passes on every step (the masters; a
    GradScaler's scale is added per step, ``_run_plan``)."""
    return {"masters": [r[2][MASTER] for r in rows]} if MASTER in rows[0][2] else {}


def grad_fits(p, grad):
    return grad.dtype == p.dtype or (p.dtype in HALF and grad.dtype == torch.float32)


def master_name(opt, p, st):
    """``[MASTER]`` when ``p`` has a master copy (made from ``p`` if it has none yet:
    fresh state, or state loaded from torch), else ``[]``."""
    if not has_master(opt, p):
        return []
    if not isinstance(st.get(MASTER), torch.Tensor):
        st[MASTER] = p.detach().to(torch.float32, memory_format=torch.preserve_format, copy=True)
    return [MASTER]


def _rounds_stochastically(opt, p):
    return _of(opt).stochastic_rounding and p.dtype in HALF and not has_master(opt, p)


def _index(opt, p):
    for k, q in enumerate(q for g in opt.param_groups for q in g["params"]):
        if q is p:
            return k
    raise KeyError("parameter not in the optimizer")


def bucket(opt, p):
    """Stochastically rounded parameters go alone (each has its own seed)."""
    return (id(p) if _rounds_stochastically(opt, p) else 0, has_master(opt, p),
            state_dtype(opt, p, ""))


def plan_seeds(opt, entries, buckets):
    """Each parameter's stochastic-rounding seed when every parameter of the step rounds
    stochastically and their buckets differ only by that (one planned call each), else None."""
    if not all(_rounds_stochastically(opt, e.p) for e in entries):
        return None
    if len({(k[:3], k[3][1:], k[4:]) for k in buckets}) != 1:
        return None
    return [_mixed.param_seed(_of(opt).seed, _index(opt, e.p)) for e in entries]


def extra(opt, key, rows):
    """The functional step's mixed-precision keywords for one bucket."""
    kw = {}
    scale = getattr(opt, "_fo_scale", None)
    if scale is not None:
        kw["grad_scale"] = scale
    if MASTER in rows[0][2]:
        kw[MASTER] = [r[2][MASTER] for r in rows]
    p = rows[0][0].p
    if _rounds_stochastically(opt, p):
        kw.update(stochastic_rounding=True, seed=_mixed.param_seed(_of(opt).seed, _index(opt, p)))
        if getattr(opt._checker, "_sr_step", False):
            kw["step"] = key + 1
    return kw


def from_scaler(opt):
    """``(grad_scale as a float or None, skip)`` from what GradScaler set on ``opt``."""
    found_inf = getattr(opt, "found_inf", None)
    if found_inf is not None and float(found_inf) != 0.0:
        return None, True
    scale = getattr(opt, "grad_scale", None)
    return (None if scale is None else float(scale)), False


@contextlib.contextmanager
def unscaled_for_torch(opt, groups, scale):
    """torch's own step (the parameters fastopt sets aside) on unscaled gradients and
    without the scaler's attributes (torch's non-fused code refuses them)."""
    saved = {k: opt.__dict__.pop(k) for k in ("grad_scale", "found_inf") if k in opt.__dict__}
    if scale is not None:
        for g in groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.grad.div_(scale)
    try:
        yield
    finally:
        opt.__dict__.update(saved)


def recast_state(opt):
    """State torch made at construction (Adagrad's ``sum``) in the ``state_dtype``."""
    for p, st in opt.state.items():
        for n, t in list(st.items()):
            if n != "step" and isinstance(t, torch.Tensor) and t.dtype != state_dtype(opt, p, n):
                st[n] = t.to(state_dtype(opt, p, n))


def keep_float32_state(opt, state_dict, load):
    """``load(state_dict)`` (torch's load_state_dict, which casts every floating state
    tensor to its parameter's type), then float32 state and masters of 16-bit
    parameters put back as float32, value for value."""
    keep = {(pid, n): t for pid, st in state_dict["state"].items() for n, t in st.items()
            if n != "step" and isinstance(t, torch.Tensor) and t.dtype == torch.float32}
    load(state_dict)
    ids = [i for g in state_dict["param_groups"] for i in g["params"]]
    params = [p for g in opt.param_groups for p in g["params"]]
    for (pid, n), t in keep.items():
        p = params[ids.index(pid)]
        if p.dtype in HALF and n in opt.state[p]:
            opt.state[p][n] = t.to(device=p.device, copy=True)
