"""A drop-in for ``torch.optim``: ``fastopt.torch.SGD / RMSprop / Adam / AdamW / Adagrad``.

Each class derives from its ``torch.optim`` class (``isinstance(opt,
torch.optim.Adam)`` holds) and takes exactly its arguments, positional order
included, plus a keyword-only ``backend``. Construction, validation and its
error messages, parameter groups, hooks, ``zero_grad``, ``state_dict`` /
``load_state_dict`` (old checkpoints included) and ``add_param_group`` are
torch's own; ``step()`` (:mod:`fastopt.torch._base`) runs fastopt's fused
kernels on the tensors' own memory (CPU tensors on the C++ backend, CUDA
tensors on the cuda backend, on torch's current stream) and falls back to
torch's implementation, with a one-time warning, where fastopt does not run
(sparse gradients, devices other than CPU and CUDA, CUDA without cupy,
``differentiable=True``, ``capturable=True``). ``foreach``
and ``fused`` are accepted and change nothing: fastopt always runs one fused
multi-tensor call per group and step count. See docs/torch.md.

This module imports torch; ``import fastopt`` does not import it.

>>> model = torch.nn.Linear(10, 1)
>>> opt = fastopt.torch.Adam(model.parameters(), lr=1e-3)
>>> loss.backward(); opt.step(); opt.zero_grad()
"""
from __future__ import annotations

import torch

from fastopt import optim as _np_opt
from fastopt.torch import _amp, _cuda
from fastopt.torch import _eightbit as q8
from fastopt.torch._base import DropinOptimizer, _warn_once

__all__ = ["SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "clip_grad_norm_"]


def _view(t):
    """The array the functional API receives: a NumPy view for CPU tensors, else the tensor."""
    t = t.detach()
    if t.device.type == "cpu":
        return t.numpy()
    return t


class SGD(DropinOptimizer, torch.optim.SGD):
    """``torch.optim.SGD`` on :func:`fastopt.sgd_step` (state ``momentum_buffer``, created
    on the first momentum step; none at all when ``momentum == 0``, as in torch)."""

    _torch_cls = torch.optim.SGD
    _checker = _np_opt.SGD
    _has_step = False
    _sparse_ok = True

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False, foreach=None, differentiable=False, fused=None,
                 backend="auto", master_weights=False, state_dtype=None,
                 stochastic_rounding=False, seed=0, state_bits=32):
        torch.optim.SGD.__init__(self, params, lr, momentum, dampening, weight_decay, nesterov,
                                 maximize=maximize, foreach=foreach,
                                 differentiable=differentiable, fused=fused)
        self._fo_setup(backend, master_weights, state_dtype, stochastic_rounding, seed,
                       state_bits)

    def _fresh(self, st, hp):
        # torch: a missing (or None) buffer means the first momentum step copies g
        return hp["momentum"] != 0 and (not st or (st.get("momentum_buffer") is None
                                                   and not q8.holds(st, "momentum_buffer")))

    def _key(self, st):
        return 1   # not the first momentum step


class RMSprop(DropinOptimizer, torch.optim.RMSprop):
    """``torch.optim.RMSprop`` on :func:`fastopt.rmsprop_step` (state ``step``,
    ``square_avg``, ``momentum_buffer``, ``grad_avg`` as torch's)."""

    _torch_cls = torch.optim.RMSprop
    _checker = _np_opt.RMSprop

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False, *, backend="auto", master_weights=False,
                 state_dtype=None, stochastic_rounding=False, seed=0, state_bits=32):
        torch.optim.RMSprop.__init__(self, params, lr, alpha, eps, weight_decay, momentum,
                                     centered, capturable, foreach, maximize, differentiable)
        self._fo_setup(backend, master_weights, state_dtype, stochastic_rounding, seed,
                       state_bits)


class Adam(DropinOptimizer, torch.optim.Adam):
    """``torch.optim.Adam`` on :func:`fastopt.adam_step` (state ``step``, ``exp_avg``,
    ``exp_avg_sq``, ``max_exp_avg_sq`` as torch's; ``decoupled_weight_decay=True`` is AdamW)."""

    _torch_cls = torch.optim.Adam
    _checker = _np_opt.Adam

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False,
                 backend="auto", master_weights=False, state_dtype=None,
                 stochastic_rounding=False, seed=0, state_bits=32):
        torch.optim.Adam.__init__(self, params, lr, betas, eps, weight_decay, amsgrad,
                                  foreach=foreach, maximize=maximize, capturable=capturable,
                                  differentiable=differentiable, fused=fused,
                                  decoupled_weight_decay=decoupled_weight_decay)
        self._fo_setup(backend, master_weights, state_dtype, stochastic_rounding, seed,
                       state_bits, amsgrad)


class AdamW(DropinOptimizer, torch.optim.AdamW):
    """``torch.optim.AdamW`` on :func:`fastopt.adam_step` (``weight_decay`` default ``1e-2``)."""

    _torch_cls = torch.optim.AdamW
    _checker = _np_opt.Adam

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None, backend="auto", master_weights=False,
                 state_dtype=None, stochastic_rounding=False, seed=0, state_bits=32):
        torch.optim.AdamW.__init__(self, params, lr, betas, eps, weight_decay, amsgrad,
                                   maximize=maximize, foreach=foreach, capturable=capturable,
                                   differentiable=differentiable, fused=fused)
        self._fo_setup(backend, master_weights, state_dtype, stochastic_rounding, seed,
                       state_bits, amsgrad)


class Adagrad(DropinOptimizer, torch.optim.Adagrad):
    """``torch.optim.Adagrad`` on :func:`fastopt.adagrad_step` (state ``step``, ``sum``,
    created at construction as torch does)."""

    _torch_cls = torch.optim.Adagrad
    _checker = _np_opt.Adagrad
    _sparse_ok = True

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None,
                 backend="auto", master_weights=False, state_dtype=None,
                 stochastic_rounding=False, seed=0):
        torch.optim.Adagrad.__init__(self, params, lr, lr_decay, weight_decay,
                                     initial_accumulator_value, eps, foreach, maximize=maximize,
                                     differentiable=differentiable, fused=fused)
        self._fo_setup(backend, master_weights, state_dtype, stochastic_rounding, seed)
        _amp.recast_state(self)   # torch made `sum` in the parameter's type

    def _fill(self, hp):
        return float(self.defaults["initial_accumulator_value"])   # torch reads defaults


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    backend="auto"):
    """``torch.nn.utils.clip_grad_norm_`` on fastopt kernels: one deterministic reduction
    over all ``.grad`` tensors and one scaling pass (:func:`fastopt.clip_grad_norm`).
    Returns the total norm as a 0-d tensor of the gradients' dtype. All gradients
    must share one dtype and device. float16/bfloat16 gradients (fastopt's norm kernels
    take float32 and float64) run torch's own ``clip_grad_norm_``, with a one-time warning."""
    from fastopt.functional.clipping import clip_grad_norm

    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    try:   # CPU gradients: NumPy views, without the per-tensor checks below (2 us each)
        arrays = [g.numpy() for g in grads]
    except (RuntimeError, TypeError):   # CUDA, bfloat16, requires grad: the checks below
        arrays = None
    if arrays:
        try:
            norm = clip_grad_norm(arrays, max_norm, norm_type,
                                  error_if_nonfinite=error_if_nonfinite, backend=backend)
        except TypeError:   # refused before any write (float16, mixed dtypes): below
            pass
        else:
            return torch.tensor(norm, dtype=grads[0].dtype)
    if any(g.dtype in (torch.float16, torch.bfloat16) for g in grads):
        _warn_once("clip_grad_norm_", "float16/bfloat16 gradients", "torch.nn.utils.")
        return torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type, error_if_nonfinite)
    dtype = grads[0].dtype if grads else torch.get_default_dtype()
    device = grads[0].device if grads else None
    on_gpu = device is not None and device.type == "cuda"
    with _cuda.stream_of(grads):
        # on CUDA, as torch's: the norm stays on the device (no host synchronization)
        norm = clip_grad_norm([_view(g) for g in grads], max_norm, norm_type,
                              error_if_nonfinite=error_if_nonfinite, backend=backend,
                              sync=error_if_nonfinite or not on_gpu)
        if on_gpu and not isinstance(norm, float):
            return torch.from_dlpack(norm).to(dtype)
    return torch.tensor(norm, dtype=dtype, device=device)
