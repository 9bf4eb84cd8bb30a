"""``step()`` of every ``fastopt.torch`` optimizer (a mixin before the torch class).

Each step has three phases, so that a step that raises writes nothing:

1. **Check** every group: hyper-parameters (tensors as floats, through
   ``fastopt.optim``'s ``_check_group``), every parameter with a gradient
   (dtype, shape, state entries), memory overlap. Parameters fastopt does not
   run (sparse gradients, devices other than the CPU and CUDA, CUDA without
   fastopt's cuda backend, ``differentiable`` or ``capturable`` groups, memory
   shared between parameters) are set aside for torch's own implementation,
   with a one-time warning.
2. **Torch's step** for the set-aside parameters (the torch class's ``step``
   on groups holding only them).
3. **fastopt's kernels** for the rest: missing state is created as torch
   creates it (``zeros_like`` with the parameter's layout), parameters of a
   group sharing a step count and device go in one list-form call on NumPy
   views, or on cupy views for CUDA tensors, launched on torch's current
   stream (:mod:`fastopt.torch._layout`, :mod:`fastopt.torch._cuda`), step
   counts advance, and the autograd
   version counters of parameters and state are bumped, as torch's in-place
   ops do.

A group whose parameters all ran zero-copy keeps a ``_Plan`` of its arrays. The
next step reuses it only after checking, per parameter, that the gradient is
there, the parameter's memory is the same, every state entry is the same
tensor object and the step tensor was not modified since; anything else
(``opt.state[p]["exp_avg"] = ...``, ``opt.state.clear()``, ``p.data = ...``,
a load) rebuilds from ``opt.state``. A CUDA plan also keeps, per parameter, a
view of the last gradient seen, reused while the gradient has its pointer (a
new gradient from the caching allocator usually does), and skips the overlap
check while the gradients' pointers are those last checked.
"""
from __future__ import annotations

import contextlib
import warnings
import weakref
from operator import is_

import torch
from torch.optim.optimizer import _get_scalar_dtype

from fastopt import backends as _backends, _validate as v
from fastopt._arrays import bfloat16_numpy, is_cupy
from fastopt._precision import HALF_DTYPES
from fastopt.optim import _eightbit as _bits, slab_views
from fastopt.torch import _amp, _cuda
from fastopt.torch import _eightbit as q8
from fastopt.torch._layout import arranged, as_array, memory_order, real, scatter, step_slab

_BF16 = HALF_DTYPES[1]
_INF = float("inf")

try:  # the native check of a CPU plan's arrays, gradients included (fastopt/optim/optimizer.py)
    from fastopt._core import plainly_typed as _plainly_typed
except ImportError:  # pragma: no cover - exercised when the extension is missing
    _plainly_typed = None

try:
    from torch.distributed.tensor import DTensor
except ImportError:  # pragma: no cover - torch built without distributed
    DTensor = ()

_KERNEL_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128,
                  torch.float16, torch.bfloat16)
_warned = set()


def _set_aside(opt, cls, reason, params):
    """Hands ``params`` to torch's own step (with a warning, once), or raises when one of
    them uses what torch's step does not have (a master copy, float32 state of a 16-bit
    parameter, stochastic rounding, 8-bit state): before anything is written."""
    for p in params:
        only = _amp.fastopt_only(opt, p) or ("state_bits=8" if q8.quantizes(opt._fo_bits, p)
                                             else None)
        if only is not None:
            raise ValueError(f"fastopt.torch.{cls}: {reason}: such parameters go to "
                             f"torch.optim.{cls}'s own step, which has no {only}")
    _warn_once(cls, reason)
    return params


def _warn_once(cls, reason, home="torch.optim."):
    if (cls, reason) not in _warned:
        _warned.add((cls, reason))
        warnings.warn(f"fastopt.torch.{cls}: {reason}: these parameters use "
                      f"{home}{cls}'s own implementation", stacklevel=4)


def _local(t):
    """The local shard of a DTensor (elementwise updates run per shard)."""
    return t.to_local() if isinstance(t, DTensor) else t


def _span(t):
    """A NumPy (cupy for CUDA) view of all the memory ``t`` touches (for overlap checks)."""
    t = real(_local(t).detach())
    if t.is_contiguous() or t.numel() == 0:
        return as_array(t)
    n = 1 + sum((s - 1) * st for s, st in zip(t.shape, t.stride()))
    return as_array(t.as_strided((n,), (1,)))


def _overlap(arrays):
    """Whether two of ``arrays`` share memory (host and device arrays checked apart)."""
    gpu = [a for a in arrays if is_cupy(a)]
    cpu = [a for a in arrays if not is_cupy(a)] if gpu else arrays
    return any(v.first_overlap(part) is not None for part in (cpu, gpu) if part)


class _Shim:
    """What ``fastopt.optim``'s ``_update`` / ``_fast_update`` read from ``self``."""

    __slots__ = ("backend", "_decoupled")

    def __init__(self, backend, decoupled):
        self.backend, self._decoupled = backend, decoupled


class _Entry:
    """One parameter of a checked group."""

    __slots__ = ("p", "order", "grad", "fresh", "key")

    def __init__(self, p, order, grad, fresh, key):
        self.p, self.order, self.grad, self.fresh, self.key = p, order, grad, fresh, key


class _Plan:
    """A group's validated zero-copy arrays, reused while nothing changed."""

    __slots__ = ("plist", "n", "params", "ptrs", "others", "states", "versions", "count",
                 "arrays", "names", "owned", "key", "slab", "steps", "bumped", "orders",
                 "gpu", "gviews", "gchecked", "snames", "gdtypes", "mixed", "native", "convs",
                 "seeds")


def _unchanged_grad(p, ptr, sts, version, state, names, versions):
    """``p.grad`` when ``p`` keeps the memory, state tensors and step version its plan
    recorded, else None."""
    gr = p.grad
    if gr is None or p.data_ptr() != ptr:
        return None
    if sts:
        st = state.get(p)
        if st is None or not all(map(is_, map(st.get, names), sts)):
            return None
        if versions is not None and sts[0]._version != version:
            return None
    return gr


def _native_check(plan, names):
    """``(native, convs)`` of a CPU plan whose roles each have one type: the arguments of
    ``_core.plainly_typed`` (the gradients' slot left None) and each gradient's
    tensor-to-array function; ``(None, None)`` otherwise (the Python checks run)."""
    if plan.gpu is not None or _plainly_typed is None or len(set(plan.gdtypes)) != 1:
        return None, None
    params, states = plan.arrays
    roles = [params, None] + [states[n] for n in names]
    if plan.mixed:
        roles.append(plan.mixed["masters"])
    dtypes = [None if r is None else r[0].dtype for r in roles]
    dtypes[1] = plan.gdtypes[0]
    for r, d in zip(roles, dtypes):
        if r is not None and any(a.dtype is not d for a in r):
            return None, None
    if dtypes[1] == _BF16:
        plain = bfloat16_numpy
    else:
        plain = torch.Tensor.numpy
    convs = [plain if order is None else (lambda t, o=order: arranged(t, o)[0])
             for order in plan.orders]
    outputs = (True, False) + (True,) * (len(roles) - 2)
    return ([*roles], tuple(dtypes), tuple(d.itemsize for d in dtypes), outputs), convs


class DropinOptimizer:
    """The fastopt ``step()``; subclasses also derive from the torch optimizer class."""

    _checker: type = None    # fastopt.optim class: hyper-parameter rules and kernel calls
    _has_step = True         # torch keeps a "step" tensor per parameter (not SGD)
    _sparse_ok = False       # torch's class takes sparse gradients (SGD, Adagrad)

    def _fo_setup(self, backend, master_weights=False, state_dtype=None,
                  stochastic_rounding=False, seed=0, state_bits=32, amsgrad=False):
        self._fo_backend = v.backend(backend)
        self._fo_bits = _bits.bits(state_bits, amsgrad)
        if self._fo_bits == 8:
            self.register_load_state_dict_post_hook(q8.after_load)
        self._fo_plans = {}
        self._fo_counts = weakref.WeakValueDictionary()   # step-count arrays fastopt made
        self._fo_mp = _amp.settings(self, master_weights, state_dtype, stochastic_rounding, seed)
        # torch.amp.GradScaler hands this step grad_scale / found_inf (fastopt/torch/_amp.py)
        self._step_supports_amp_scaling = True

    def __getstate__(self):
        state = super().__getstate__()
        state["_fo_backend"] = self._fo_backend
        state["_fo_mp"] = self._fo_mp
        state["_fo_bits"] = self._fo_bits
        return state

    def __setstate__(self, state):
        super().__setstate__(state)   # torch's: defaults, plain-number steps to tensors
        self.__dict__.setdefault("_fo_backend", "auto")
        self.__dict__.setdefault("_fo_mp", _amp.DEFAULT)
        self.__dict__.setdefault("_fo_bits", 32)
        if self._fo_bits == 8:   # torch's pickled state drops the hooks
            self.register_load_state_dict_post_hook(q8.after_load)
        self._fo_plans = {}
        self._fo_counts = weakref.WeakValueDictionary()

    def load_state_dict(self, state_dict):
        """torch's, keeping float32 state and master copies of 16-bit parameters float32;
        8-bit entries are checked first (codes 0..255, absmax >= 0)."""
        if self._fo_bits == 8:
            q8.check_incoming(state_dict)
        _amp.keep_float32_state(self, state_dict, super().load_state_dict)

    # -- per-family rules ----------------------------------------------------
    def _hyper(self, g):
        """The group's hyper-parameters with tensors as floats, checked by fastopt.optim."""
        hp = {k: (float(x) if isinstance(x, torch.Tensor) else x) for k, x in g.items()
              if k != "params"}
        if "betas" in hp and isinstance(hp["betas"], (tuple, list)):   # tensor betas as floats
            hp["betas"] = tuple(float(b) if isinstance(b, torch.Tensor) else b for b in hp["betas"])
        self._checker._check_group(None, hp)
        hp["lr"] = float(hp["lr"])
        return hp

    def _names(self, hp):
        names = list(self._checker._state_names(None, hp))
        return ["step"] + names if self._has_step else names

    def _key(self, st):
        """Parameters with equal keys update together: the completed step count."""
        return int(st["step"]) if st else 0

    def _fill(self, hp):
        return 0.0

    def _gpu_refusal(self):
        """None when CUDA parameters run on fastopt's cuda backend, else why not."""
        try:
            _backends.choose(self._fo_backend, True)
        except (TypeError, ValueError) as exc:   # backend="cpp", FASTOPT_BACKEND=numba, ...
            return str(exc)
        why = _backends.unavailable_reason("cuda")
        return None if why is None else f"fastopt's cuda backend is unavailable ({why})"

    # -- step ------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a ``.grad``; returns ``closure()``'s loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        scale, skip = _amp.from_scaler(self)
        if skip:
            return loss   # torch's fused found_inf: nothing is written, steps do not count
        fast, jobs, aside = [], [], []
        self._fo_scale = scale
        for gi, g in enumerate(self.param_groups):
            if g.get("differentiable") or g.get("capturable"):
                flag = "differentiable" if g.get("differentiable") else "capturable"
                _warn_once(self._torch_cls.__name__, f"{flag}=True")
                aside.append(g)
                continue
            hp = self._hyper(g)
            # (a scale GradScaler hands over is divided out in the kernels, planned or not;
            # one that is not positive and finite goes to the validator's error)
            plan = self._fo_plans.get(gi) if scale is None or 0.0 < scale < _INF else None
            grads = (self._plan_grads(plan, g)
                     if plan is not None and plan.names == self._names(hp) else None)
            if grads is not None:
                fast.append((plan, hp, grads))
                continue
            self._fo_plans.pop(gi, None)
            job, torch_params = self._check(g, hp)
            jobs.append((gi, g, hp, job))
            if torch_params:
                aside.append(dict(g, params=torch_params))
        if aside:
            with _amp.unscaled_for_torch(self, aside, scale):
                self._torch_step(aside)
        for plan, hp, grads in fast:
            self._run_plan(plan, hp, grads)
        for gi, g, hp, job in jobs:
            self._run(gi, g, hp, job)
        return loss

    def _torch_step(self, groups):
        """The torch class's own step on ``groups`` (closure already evaluated)."""
        step = self._torch_cls.step
        if getattr(step, "hooked", False):   # hooks already ran around this step()
            step = step.__wrapped__
        saved = self.param_groups
        self.param_groups = groups
        try:
            step(self)
        finally:
            self.param_groups = saved

    def _check(self, g, hp):
        """Phase 1 for a group without a valid plan: raises before anything is written."""
        cls = self._torch_cls.__name__
        names = self._names(hp)
        entries, aside, spans, grads = [], [], [], []
        for p in g["params"]:
            gr = p.grad
            if gr is None:
                continue
            lp, lg = _local(p), _local(gr)
            if gr.layout != torch.strided:
                if not self._sparse_ok:
                    raise RuntimeError(f"{cls} does not support sparse gradients")
                aside.extend(_set_aside(self, cls, "sparse gradients", [p]))
                continue
            if _cuda.on_gpu(lp):
                why = self._gpu_refusal()
                if why is not None:
                    aside.extend(_set_aside(self, cls, f"CUDA parameters: {why}", [p]))
                    continue
            elif lp.device.type != "cpu":
                aside.extend(_set_aside(self, cls, f"parameters on the {lp.device.type!r} device",
                                        [p]))
                continue
            if p.dtype not in _KERNEL_DTYPES:
                raise TypeError(f"fastopt.torch.{cls}: a parameter has dtype {p.dtype}; fastopt "
                                f"steps float16, bfloat16, float32 and float64 (and "
                                f"complex64/128) parameters")
            if not _amp.grad_fits(p, gr) or lg.shape != lp.shape:
                raise TypeError(f"fastopt.torch.{cls}: a gradient of dtype {gr.dtype}, shape "
                                f"{tuple(lg.shape)} for a parameter of dtype {p.dtype}, shape "
                                f"{tuple(lp.shape)}")
            st = self.state.get(p)
            fresh = self._fresh(st, hp)
            if not fresh:
                for n in names:
                    if n != "step" and q8.holds(st, n):   # 8-bit state
                        spans.extend(q8.check(st, n, lp, cls))
                        continue
                    t = st[n]   # KeyError, as torch's step gives, for a missing entry
                    if n != "step" and (not isinstance(t, torch.Tensor)
                                        or t.dtype != _amp.state_dtype(self, p, n)
                                        or _local(t).shape != lp.shape):
                        raise ValueError(f"fastopt.torch.{cls}: state {n!r} of a parameter of "
                                         f"shape {tuple(p.shape)}, {p.dtype} is not a tensor "
                                         f"of that shape and dtype")
                    if n != "step":
                        spans.append(_span(t))
            order = memory_order(real(lp))
            ga, _ = arranged(lg, order)
            spans.append(_span(lp))
            grads.append(ga)
            entries.append(_Entry(p, order, ga, fresh, 0 if fresh else self._key(st)))
        if entries and _overlap(spans + grads):
            return [], aside + _set_aside(self, cls, "parameters, gradients or state share memory",
                                          [e.p for e in entries])
        return entries, aside

    def _fresh(self, st, hp):
        return not st

    def _create(self, g, hp, entries):
        """torch's initial state for ``entries``: contiguous real CPU parameters of one
        dtype get views of one aligned slab per state name (and their steps one slab)."""
        names = [n for n in self._names(hp) if n != "step"]
        eight = {id(e.p) for e in entries if q8.quantizes(self._fo_bits, e.p)}
        plain = [e for e in entries if e.p.is_contiguous() and not e.p.is_complex()
                 and not isinstance(e.p, DTensor) and not _cuda.on_gpu(e.p)
                 and not _amp.is_mixed(self, e.p) and id(e.p) not in eight]
        if len({e.p.dtype for e in plain}) != 1:
            plain = []
        slabs = slab_views([e.p.detach().numpy() for e in plain], names,
                           self._fill(hp)) if plain and names else {}
        if self._has_step:   # one array, but tensors of their own (own version counters)
            counts = torch.zeros(len(entries), dtype=_get_scalar_dtype(is_fused=g.get("fused")))
            counts = counts.numpy()
            self._fo_counts[counts.ctypes.data] = counts
            steps = [torch.from_numpy(counts[i:i + 1].reshape(())) for i in range(len(entries))]
        j = 0
        for i, e in enumerate(entries):
            st = self.state[e.p]
            if self._has_step:
                st["step"] = steps[i]
            if id(e.p) in eight:
                q8.create(st, names, e.p)
                continue
            for n in names:
                if j < len(plain) and plain[j] is e:
                    st[n] = torch.from_numpy(slabs[n][j])
                else:
                    st[n] = torch.full_like(e.p, self._fill(hp) * (1 + 1j if e.p.is_complex()
                                                                   else 1),
                                            dtype=_amp.state_dtype(self, e.p, n),
                                            memory_format=torch.preserve_format)
            if j < len(plain) and plain[j] is e:
                j += 1

    def _run(self, gi, g, hp, entries):
        """Phase 3 for a checked group."""
        if not entries:
            return
        with _cuda.stream_of([e.p for e in entries]):   # views made on the kernels' stream
            self._run_entries(gi, g, hp, entries)

    def _run_entries(self, gi, g, hp, entries):
        fresh = [e for e in entries if e.fresh]
        try:
            self._create(g, hp, fresh)
            names = [n for n in self._names(hp) if n != "step"]
            backs, buckets, bumped = [], {}, []
            for e in entries:
                st = self.state.get(e.p, {})
                arrays = {}
                for n in names + _amp.master_name(self, e.p, st):
                    if q8.holds(st, n):
                        arrays[n], written = q8.state(st, n)
                        bumped.extend(written)
                        continue
                    arrays[n], back = arranged(_local(st[n]), e.order)
                    if back is not None:
                        backs.append((arrays[n], back))
                    bumped.append(st[n])
                pa, back = arranged(_local(e.p), e.order)
                if back is not None:
                    backs.append((pa, back))
                bumped.append(e.p)
                eight = bool(names) and q8.holds(st, names[0])
                buckets.setdefault((e.key, e.p.dtype, e.p.device, _amp.bucket(self, e.p), eight),
                                   []).append((e, pa, arrays))
        except BaseException:
            for e in fresh:   # a rejected call leaves no half-made state behind
                self.state.pop(e.p, None)
            raise
        shim = _Shim(self._fo_backend, bool(hp.get("decoupled_weight_decay", False)))
        for (key, *_), rows in buckets.items():
            with _cuda.stream_of([rows[0][0].p]):
                self._checker._update(shim, hp, hp["lr"], key, [r[1] for r in rows],
                                      [r[0].grad for r in rows],
                                      {n: [r[2][n] for r in rows] for n in names},
                                      **_amp.extra(self, key, rows))
        scatter(backs)
        steps = self._advance([e.p for e in entries])
        torch.autograd.graph.increment_version(bumped)
        if backs or next(iter(buckets))[4]:   # scattered copies, 8-bit: no plan
            return
        if len(buckets) == 1 and not _amp.unplanned(self, entries):
            self._make_plan(gi, g, hp, entries, names, buckets, steps)
            return
        seeds = _amp.plan_seeds(self, entries, buckets)
        if seeds is not None:   # stochastic rounding: one planned call per parameter
            rows = {id(r[0]): r for rs in buckets.values() for r in rs}
            merged = {next(iter(buckets)): [rows[id(e)] for e in entries]}
            self._make_plan(gi, g, hp, entries, names, merged, steps, seeds)

    def _advance(self, ps):
        """Counts one more step for ``ps``: one NumPy add when the step tensors are
        consecutive in one storage (fastopt's own), else torch's ``_foreach_add_``."""
        if not self._has_step:
            return [], None
        steps = []
        for p in ps:
            st = self.state[p]
            if not isinstance(st["step"], torch.Tensor):   # a number put there by hand
                st["step"] = torch.tensor(float(st["step"]), dtype=_get_scalar_dtype())
            steps.append(st["step"])
        slab = step_slab(steps, self._fo_counts)
        if slab is not None:
            slab += 1
            torch.autograd.graph.increment_version(steps)
        else:
            torch._foreach_add_(steps, 1.0)
        return steps, slab

    # -- plans ---------------------------------------------------------------
    def _make_plan(self, gi, g, hp, entries, names, buckets, steps, seeds=None):
        (key, *_), rows = next(iter(buckets.items()))
        if any(isinstance(e.p, DTensor) for e in entries):
            return
        plan = _Plan()
        plan.plist, plan.n = g["params"], len(g["params"])
        chosen = {id(e.p) for e in entries}
        plan.others = [q for q in g["params"] if id(q) not in chosen]
        plan.params = [e.p for e in entries]
        plan.ptrs = [p.data_ptr() for p in plan.params]
        tnames = self._names(hp)
        plan.names = tnames
        plan.mixed = _amp.plan_extra(rows)
        # the state entries whose identity the plan checks: with the master copies
        plan.snames = tnames + ([_amp.MASTER] if plan.mixed else [])
        plan.states = [tuple(self.state[p][n] for n in plan.snames) if plan.snames else ()
                       for p in plan.params]
        plan.gdtypes = [r[0].grad.dtype for r in rows]   # a 16-bit param's may be float32
        plan.steps, plan.slab = steps
        plan.versions = [s._version for s in plan.steps] if self._has_step else None
        plan.count = 0
        plan.orders = [e.order if (e.order or e.p.is_complex()) else None for e in entries]
        plan.gpu = entries[0].p.device if _cuda.on_gpu(entries[0].p) else None
        plan.gviews = [None] * len(entries)
        plan.gchecked = None
        plan.arrays = ([r[1] for r in rows], {n: [r[2][n] for r in rows] for n in names})
        owned = list(plan.arrays[0])
        for n in names:
            owned.extend(plan.arrays[1][n])
        plan.owned = owned
        plan.native, plan.convs = _native_check(plan, names)
        plan.seeds = seeds
        plan.key = key + 1 if self._has_step else 1   # what the next update passes
        plan.bumped = plan.params + [t for sts in plan.states for n, t in zip(plan.snames, sts)
                                     if n != "step" or plan.slab is not None]
        self._fo_plans[gi] = plan

    def _plan_grads(self, plan, g):
        """The gradients as arrays when ``plan`` still describes the group, else None."""
        if g["params"] is not plan.plist or len(plan.plist) != plan.n:
            return None
        for q in plan.others:
            if q.grad is not None:
                return None
        state = self.state
        names = plan.snames
        count = plan.count
        grads = []
        versions = plan.versions or [0] * len(plan.params)
        if plan.native is not None:
            return self._plan_grads_native(plan, state, names, count, versions)
        gpu = plan.gpu is not None
        for i, (p, ptr, sts, ver, order, pa, gdt) in enumerate(zip(
                plan.params, plan.ptrs, plan.states, versions, plan.orders, plan.arrays[0],
                plan.gdtypes)):
            gr = _unchanged_grad(p, ptr, sts, ver + count, state, names, plan.versions)
            if gr is None:
                return None
            if gpu:
                a = _gpu_grad(plan, i, gr, order)
            else:
                try:
                    a = as_array(gr) if order is None else arranged(gr, order)[0]
                except (RuntimeError, TypeError):   # requires grad (create_graph=True), sparse
                    return None
            if a is None or a.shape != pa.shape or a.dtype != gdt \
                    or not a.flags.c_contiguous:
                return None
            grads.append(a)
        if gpu:
            ptrs = tuple(a.data.ptr for a in grads)
            if ptrs != plan.gchecked:   # same pointers and shapes: the same answer as before
                if _overlap(plan.owned + grads):
                    return None
                plan.gchecked = ptrs
        elif v.first_overlap(plan.owned + grads) is not None:
            return None
        return grads

    @staticmethod
    def _plan_grads_native(plan, state, names, count, versions):
        """:meth:`_plan_grads` of a CPU plan: the tensors' identities and versions here,
        then one native check of every array (types, shapes, C order, no overlap)."""
        grads = []
        for p, ptr, sts, ver, conv in zip(plan.params, plan.ptrs, plan.states, versions,
                                          plan.convs):
            gr = _unchanged_grad(p, ptr, sts, ver + count, state, names, plan.versions)
            if gr is None:
                return None
            try:
                grads.append(conv(gr))
            except (RuntimeError, TypeError):   # requires grad (create_graph=True), sparse, GPU
                return None
        roles, dtypes, sizes, outputs = plan.native
        roles[1] = grads
        ok = _plainly_typed(tuple(roles), dtypes, sizes, outputs)
        roles[1] = None
        return grads if ok else None

    def _run_plan(self, plan, hp, grads):
        gpu = plan.gpu is not None
        mod = _backends.module("optim", _backends.choose(self._fo_backend, gpu))
        shim = _Shim(self._fo_backend, bool(hp.get("decoupled_weight_decay", False)))
        params, states = plan.arrays
        mixed = plan.mixed if self._fo_scale is None else dict(plan.mixed,
                                                               grad_scale=self._fo_scale)
        with _cuda.torch_stream(plan.gpu) if gpu else contextlib.nullcontext():
            if plan.seeds is None:
                self._checker._fast_update(shim, mod, hp, hp["lr"], plan.key, params, grads,
                                           states, **mixed)
            else:   # stochastic rounding: each parameter with its own seed
                if getattr(self._checker, "_sr_step", False):
                    mixed = dict(mixed, step=plan.key + 1)
                for k, seed in enumerate(plan.seeds):
                    self._checker._fast_update(shim, mod, hp, hp["lr"], plan.key,
                                               params[k:k + 1], grads[k:k + 1],
                                               {n: x[k:k + 1] for n, x in states.items()},
                                               stochastic_rounding=True, seed=seed, **mixed)
        if plan.slab is not None:
            plan.slab += 1
        elif plan.steps:
            torch._foreach_add_(plan.steps, 1.0)
        torch.autograd.graph.increment_version(plan.bumped)
        plan.count += 1
        if self._has_step:
            plan.key += 1


def _gpu_grad(plan, i, gr, order):
    """Parameter ``i``'s gradient as a cupy array: the cached view while ``gr`` has the
    pointer, shape and dtype of the last one, else a new unowned view (``gr`` is alive throughout the
    step); None when ``gr`` is not dense in the parameter's order (the slow path
    gathers it)."""
    t = gr if order is None else real(gr)
    if order:
        t = t.permute(order)
    if not t.is_contiguous():
        return None
    key = (t.data_ptr(), t.shape, t.dtype)
    hit = plan.gviews[i]
    if hit is not None and hit[0] == key:
        return hit[1]
    a = _cuda.unowned(t)
    plan.gviews[i] = (key, a)
    return a
