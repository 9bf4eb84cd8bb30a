"""A drop-in for ``torch.optim``: ``fastopt.torch.SGD / RMSprop / Adam / AdamW / Adagrad``.

Subclasses of ``torch.optim.Optimizer`` with torch's constructor arguments,
parameter groups, hooks, ``zero_grad`` and ``state_dict`` (state tensors named
and shaped as torch names them, so a state dict moves between
``torch.optim.Adam`` and ``fastopt.torch.Adam`` both ways), whose ``step()``
runs fastopt's fused kernels on the tensors' own memory: CPU tensors are
passed zero-copy as NumPy views (``.detach().numpy()``); any other tensor
goes to the public functional API as it is (through DLPack), so CUDA tensors
reach the ``cuda`` backend once it exists. All parameters of a group that
share a step count and a device/dtype are updated in one list-form call.

This module imports torch; ``import fastopt`` does not import it.

>>> model = torch.nn.Linear(10, 1)
>>> opt = fastopt.torch.Adam(model.parameters(), lr=1e-3)
>>> loss.backward(); opt.step(); opt.zero_grad()
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from fastopt import backends as _backends
from fastopt.functional import optim as _f
from fastopt import optim as _np_opt
from fastopt import _validate as v
from fastopt._arrays import as_array

__all__ = ["SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "clip_grad_norm_"]


def _view(t):
    """The array the functional API receives: a NumPy view for CPU tensors, a
    cupy view (DLPack, zero-copy) for CUDA tensors, else the tensor. Views of
    parameters and state are made once and cached with the step plan."""
    t = t.detach()
    if t.device.type == "cpu":
        return t.numpy()
    if t.device.type == "cuda":
        return as_array(t, "tensor")
    return t


def _torch_stream(params):
    """Context running fastopt's CUDA kernels on torch's current stream (cupy's
    current stream may be another one), when the parameters are on one GPU."""
    devices = {p.device for p in params}
    if len(devices) != 1 or next(iter(devices)).type != "cuda":
        return contextlib.nullcontext()
    import cupy
    dev = next(iter(devices))
    return cupy.cuda.ExternalStream(torch.cuda.current_stream(dev).cuda_stream, dev.index)


class _FastoptOptimizer(torch.optim.Optimizer):
    # Which fastopt.optim class states the hyper-parameter checks.
    _checker: type = None

    def __init__(self, params, defaults, backend, options=None):
        defaults = dict(defaults, backend=v.backend(backend))
        for k, val in (options or {}).items():
            # torch's implementation switches: accepted so torch code runs unchanged;
            # fastopt always runs its own fused multi-tensor kernel.
            if k not in defaults or k not in ("foreach", "fused", "capturable", "differentiable"):
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {k!r}")
            if k in ("capturable", "differentiable") and val:
                raise ValueError(f"{type(self).__name__}: {k}=True is not supported by fastopt")
            defaults[k] = val
        super().__init__(params, defaults)
        self._fo_cache = {}

    def __setstate__(self, state):
        super().__setstate__(state)
        self._fo_cache = {}   # load_state_dict comes through here: new state, new views
        for g in self.param_groups:
            g.setdefault("backend", "auto")
            for k, val in self._torch_defaults.items():
                g.setdefault(k, val)

    _torch_defaults: dict = {}

    def _check(self, g):
        # fastopt.optim' checks (they use no instance state): torch's rules and messages
        self._checker._check_group(None, dict(g))

    def _state_names(self, g):
        return self._checker._state_names(None, g)

    def _init_state(self, g, p):
        st = {"step": torch.tensor(0.0)} if self._has_step else {}
        for name in self._state_names(g):
            st[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return st

    _has_step = True

    def _fill(self, g):
        return 0.0

    def _create_state(self, g, ps):
        """torch's initial state for the parameters ``ps``. Contiguous CPU parameters
        of one dtype get their state tensors as views of one aligned slab per state
        name (NumPy memory, huge pages when large): a step over many small tensors
        then streams its state like one big array."""
        if not ps:
            return
        names = self._state_names(g)
        slabbed = (names and all(p.device.type == "cpu" and p.is_contiguous() for p in ps)
                   and len({p.dtype for p in ps}) == 1
                   and ps[0].dtype in (torch.float32, torch.float64))
        if not slabbed:
            for p in ps:
                self.state[p].update(self._init_state(g, p))
            return
        views = _np_opt.slab_views([p.detach().numpy() for p in ps], names, self._fill(g))
        for j, p in enumerate(ps):
            st = {"step": torch.tensor(0.0)}
            for n in names:
                st[n] = torch.from_numpy(views[n][j])
            self.state[p].update(st)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a ``.grad``; returns ``closure()``'s loss.

        CUDA parameters are updated on torch's current stream."""
        with _torch_stream([p for g in self.param_groups for p in g["params"]]):
            return self._step(closure)

    def _step(self, closure):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for gi, g in enumerate(self.param_groups):
            self._check(g)
            names = self._state_names(g)
            with_grad = [p for p in g["params"] if p.grad is not None]
            # identity and memory of the parameters (p.data may have been replaced)
            ids = tuple(map(id, with_grad)) + tuple(p.data_ptr() for p in with_grad)
            c = self._fo_cache.get(gi)
            if (c is not None and c["ids"] == ids and c["names"] == names
                    and not any(p.grad.is_sparse for p in with_grad)):
                # The same parameters step together again: cached views of the
                # parameters and state, fresh views of the (possibly new) grads.
                grads = [_view(p.grad) for p in with_grad]
                if c["cpu"] and self._plainly_valid(c, grads):
                    # validated once when cached: only the new gradients are checked
                    mod = _backends.module("optim", _backends.choose(g["backend"], False))
                    self._checker._fast_update(self, mod, g, float(g["lr"]), c["key"],
                                               c["params"], grads, c["states"])
                else:   # the public functional step (GPU tensors; or it names the error)
                    self._update(g, c["key"], c["params"], grads, c["states"])
                torch._foreach_add_(c["steps"], 1.0)
                c["key"] += 1
                continue
            self._fo_cache.pop(gi, None)
            buckets = {}
            for p in with_grad:
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            self._create_state(g, [p for p in with_grad if len(self.state[p]) == 0])
            for p in with_grad:
                st = self.state[p]
                key = (self._bucket(st, False), p.device, p.dtype)
                buckets.setdefault(key, []).append(p)
            for (key, _, _), ps in buckets.items():
                states = {n: [_view(self.state[p][n]) for p in ps] for n in names}
                params = [_view(p) for p in ps]
                self._update(g, key, params, [_view(p.grad) for p in ps], states)
                steps = [self.state[p]["step"] for p in ps]
                torch._foreach_add_(steps, 1.0)
                if len(buckets) == 1 and ps:
                    self._fo_cache[gi] = dict(ids=ids, names=names, key=key + 1, params=params,
                                              states=states, steps=steps,
                                              **self._cpu_plan(params, states, names))
        return loss

    def _bucket(self, st, fresh):
        return int(st["step"].item())

    @staticmethod
    def _cpu_plan(params, states, names):
        """Validates cached CPU views once (dtype, contiguity, writeability, overlap)."""
        if not all(isinstance(a, np.ndarray) for a in params):
            return {"cpu": False}
        try:
            v.arrays(("param", params, True), *[(n, states[n], True) for n in names])
        except (TypeError, ValueError):
            return {"cpu": False}   # the functional step will name the problem
        owned = list(params)
        for n in names:
            owned.extend(states[n])
        return {"cpu": True, "owned": owned}

    @staticmethod
    def _plainly_valid(c, grads):
        for gr, p in zip(grads, c["params"]):
            if (type(gr) is not np.ndarray or gr.shape != p.shape or gr.dtype != p.dtype
                    or not gr.flags.c_contiguous):
                return False
        return v.first_overlap(c["owned"] + grads) is None


class SGD(_FastoptOptimizer):
    """``torch.optim.SGD`` on fastopt kernels (same arguments; ``momentum_buffer`` state)."""

    _checker = _np_opt.SGD
    _has_step = False
    _torch_defaults = dict(nesterov=False, maximize=False, foreach=None, differentiable=False,
                           fused=None)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, backend="auto", **options):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=None, differentiable=False,
                        fused=None)
        _np_opt.SGD._check_group(None, dict(defaults))
        super().__init__(params, defaults, backend, options)

    def _init_state(self, g, p):
        return {}

    def _bucket(self, st, fresh):
        return 1 if "momentum_buffer" in st else 0

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            self._check(g)
            buckets = {}
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                first = g["momentum"] != 0 and "momentum_buffer" not in st
                if first:
                    st["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                buckets.setdefault((first, p.device, p.dtype), []).append(p)
            for (first, _, _), ps in buckets.items():
                bufs = ([_view(self.state[p]["momentum_buffer"]) for p in ps]
                        if g["momentum"] != 0 else None)
                _f.sgd_step([_view(p) for p in ps], [_view(p.grad) for p in ps], bufs, lr=g["lr"],
                            momentum=g["momentum"], dampening=g["dampening"],
                            weight_decay=g["weight_decay"], nesterov=g["nesterov"],
                            maximize=g["maximize"], first_step=first, backend=g["backend"])
        return loss


class RMSprop(_FastoptOptimizer):
    """``torch.optim.RMSprop`` on fastopt kernels (state ``step``, ``square_avg``,
    ``momentum_buffer``, ``grad_avg`` as torch's)."""

    _checker = _np_opt.RMSprop
    _torch_defaults = dict(momentum=0, centered=False, foreach=None, maximize=False,
                           differentiable=False, capturable=False)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False, backend="auto", **options):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize, foreach=None, differentiable=False,
                        capturable=False)
        _np_opt.RMSprop._check_group(None, dict(defaults))
        super().__init__(params, defaults, backend, options)

    def _update(self, g, key, ps, gs, st):
        _f.rmsprop_step(ps, gs, st["square_avg"], lr=g["lr"], alpha=g["alpha"], eps=g["eps"],
                        weight_decay=g["weight_decay"], momentum=g["momentum"],
                        momentum_buffer=st.get("momentum_buffer"), centered=g["centered"],
                        grad_avg=st.get("grad_avg"), maximize=g["maximize"], backend=g["backend"])


class Adam(_FastoptOptimizer):
    """``torch.optim.Adam`` on fastopt kernels (state ``step``, ``exp_avg``,
    ``exp_avg_sq``, ``max_exp_avg_sq`` as torch's)."""

    _checker = _np_opt.Adam
    _decoupled = False
    _torch_defaults = dict(amsgrad=False, maximize=False, foreach=None, capturable=False,
                           differentiable=False, fused=None, decoupled_weight_decay=False)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, backend="auto", **options):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=None, capturable=False,
                        differentiable=False, fused=None,
                        decoupled_weight_decay=self._decoupled)
        _np_opt.Adam._check_group(None, dict(defaults))
        super().__init__(params, defaults, backend, options)

    def _update(self, g, key, ps, gs, st):
        beta1, beta2 = g["betas"]
        _f.adam_step(ps, gs, st["exp_avg"], st["exp_avg_sq"], step=key + 1, lr=g["lr"],
                     beta1=beta1, beta2=beta2, eps=g["eps"], weight_decay=g["weight_decay"],
                     decoupled_weight_decay=self._decoupled, amsgrad=g["amsgrad"],
                     max_exp_avg_sq=st.get("max_exp_avg_sq"), maximize=g["maximize"],
                     backend=g["backend"])


class AdamW(Adam):
    """``torch.optim.AdamW`` on fastopt kernels (``weight_decay`` default ``1e-2``)."""

    _checker = _np_opt.AdamW
    _decoupled = True
    _torch_defaults = dict(Adam._torch_defaults, decoupled_weight_decay=True)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, backend="auto", **options):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, backend=backend, **options)


class Adagrad(_FastoptOptimizer):
    """``torch.optim.Adagrad`` on fastopt kernels (state ``step``, ``sum``, created at
    construction as torch does)."""

    _checker = _np_opt.Adagrad
    _torch_defaults = dict(foreach=None, maximize=False, differentiable=False, fused=None)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, maximize=False, backend="auto",
                 **options):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize, foreach=None, differentiable=False, fused=None)
        _np_opt.Adagrad._check_group(None, dict(defaults))
        super().__init__(params, defaults, backend, options)
        for g in self.param_groups:   # torch creates Adagrad's state at construction
            self._create_state(g, list(g["params"]))

    def _fill(self, g):
        return float(g["initial_accumulator_value"])

    def _init_state(self, g, p):
        return {"step": torch.tensor(0.0),
                "sum": torch.full_like(p, g["initial_accumulator_value"],
                                       memory_format=torch.preserve_format)}

    def _update(self, g, key, ps, gs, st):
        _f.adagrad_step(ps, gs, st["sum"], step=key + 1, lr=g["lr"], lr_decay=g["lr_decay"],
                        eps=g["eps"], weight_decay=g["weight_decay"], maximize=g["maximize"],
                        backend=g["backend"])


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    backend="auto"):
    """``torch.nn.utils.clip_grad_norm_`` on fastopt kernels: one deterministic reduction
    over all ``.grad`` tensors and one scaling pass (:func:`fastopt.clip_grad_norm`).
    Returns the total norm as a 0-d tensor of the gradients' dtype. All gradients
    must share one dtype and device."""
    from fastopt.functional.clipping import clip_grad_norm

    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    dtype = grads[0].dtype if grads else torch.get_default_dtype()
    device = grads[0].device if grads else None
    on_gpu = device is not None and device.type == "cuda"
    with _torch_stream(grads):
        # on CUDA, as torch's: the norm stays on the device (no host synchronization)
        norm = clip_grad_norm([_view(g) for g in grads], max_norm, norm_type,
                              error_if_nonfinite=error_if_nonfinite, backend=backend,
                              sync=error_if_nonfinite or not on_gpu)
    if on_gpu and not isinstance(norm, float):
        return torch.from_dlpack(norm).to(dtype)
    return torch.tensor(norm, dtype=dtype, device=device)
