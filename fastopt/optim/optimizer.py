"""Optimizer classes over lists of arrays (docs/reference.md s.6): torch.optim's API on fastopt kernels.

``SGD``, ``RMSprop``, ``Adam``, ``AdamW`` and ``Adagrad`` take torch's argument
names and defaults, a list of arrays or a list of parameter groups
(``{"params": [...], "lr": ..., ...}``), and update every parameter of a group
in **one** call of the list-form functional step (``fastopt.adam_step(list,
...)``): one native call, threads over all elements.

- ``opt.step(grads)``: ``grads`` in parameter order (groups concatenated);
  ``None`` skips a parameter, as a ``None`` ``.grad`` does in torch. State is
  allocated lazily on a parameter's first step, as torch does (zeros; SGD's
  first momentum step copies ``g``; Adagrad, like torch, allocates at
  construction). Each parameter keeps its own ``step`` count; parameters of a
  group that share a count (and a dtype) go in one call.
- ``lr`` is a float or a schedule (``fastopt.schedules``, any callable
  ``t -> lr``), called with ``t`` = the number of completed ``step()`` calls of
  this optimizer (0-based: the first update uses ``lr(0)``), which is what a
  torch ``LRScheduler`` stepped once per ``optimizer.step()`` gives.
- ``state_dict()`` / ``load_state_dict()`` use torch's layout (``{"state":
  {index: {"step": int, "exp_avg": ndarray, ...}}, "param_groups": [{...,
  "params": [indices]}]}``) with NumPy arrays, loadable on any backend; a dict
  that does not fit raises and changes nothing. ``save(path)`` / ``load(path)``
  write / read it as ``.npz``, atomically.
"""
from __future__ import annotations

import numpy as np

from fastopt import backends as _backends, _validate as v
from fastopt._arrays import as_array, is_cupy
from fastopt.optim import _eightbit, _mixed
from fastopt.optim.state import StateDicts

__all__ = ["Optimizer", "slab_views"]

try:  # the native fast path's checks alone: ~ns per array, where Python takes ~1 us
    from fastopt._core import plainly_typed as _plainly_typed
    from fastopt._core import plainly_valid as _plainly_valid
except ImportError:  # pragma: no cover - exercised when the extension is missing
    _plainly_valid = _plainly_typed = None


class _Plan:
    """A group whose parameters all step together, in one call with this step count.

    ``typed``: None for one float dtype throughout; for 16-bit parameters or state of
    another type, ``(dtypes, itemsizes, outputs, master, seeds)``: each role's dtype (param,
    grad, each state, the master last when ``master``), as the full validator accepted
    them on the step that made the plan; every later step checks exactly these. ``seeds``:
    None, or each parameter's stochastic-rounding seed (one call per parameter)."""

    __slots__ = ("key", "typed")

    def __init__(self, key, typed=None):
        self.key = key
        self.typed = typed


class Optimizer(StateDicts):
    """Base class. Subclasses define ``_defaults``, ``_check_group``,
    ``_state_names``, ``_update`` and ``_fast_update`` (and ``_fill_value``, ``_key``)."""

    _exports_step = True   # torch keeps a "step" entry in the state (not SGD)

    def __init__(self, params, defaults, backend="auto"):
        self.backend = v.backend(backend)
        self.defaults = dict(defaults)
        params = list(params) if not isinstance(params, np.ndarray) else None
        if params is None:
            raise TypeError("params must be a list of arrays or of parameter-group dicts, "
                            "not a single array: pass [array]")
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = []
        self._params = []          # flat, in state_dict index order
        self._ranges = []          # (lo, hi) of each group in _params
        seen = set()
        for gi, group in enumerate(params):
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError(f"param group {gi} must be a dict with a 'params' list")
            g = dict(group)
            plist = g["params"]
            plist = [plist] if not isinstance(plist, (list, tuple)) else list(plist)
            arrays = []
            for j, p in enumerate(plist):
                a = as_array(p, f"param_groups[{gi}]['params'][{j}]")
                if a.dtype not in v.STORAGE_DTYPES:
                    raise TypeError(f"param_groups[{gi}]['params'][{j}] has dtype {a.dtype}; "
                                    f"fastopt takes float16, bfloat16, float32 or float64")
                if id(a) in seen:
                    raise ValueError("some parameters appear in more than one parameter group")
                # cupy arrays have no writeable flag (device memory is always writeable)
                if not a.flags.c_contiguous or not getattr(a.flags, "writeable", True):
                    raise ValueError(f"param_groups[{gi}]['params'][{j}] must be C-contiguous and "
                                     f"writeable (fastopt updates parameters in place)")
                seen.add(id(a))
                arrays.append(a)
            unknown = set(g) - set(self.defaults) - {"params"}
            if unknown:
                raise ValueError(f"param group {gi} has unknown options {sorted(unknown)}")
            for k, val in self.defaults.items():
                g.setdefault(k, val)
            g["params"] = arrays
            self._check_group(g)
            lo = len(self._params)
            self._params.extend(arrays)
            self._ranges.append((lo, len(self._params)))
            self.param_groups.append(g)
        cpu = [a for a in self._params if not is_cupy(a)]
        hit = v.first_overlap(cpu)
        if hit is not None:
            raise ValueError(f"parameters {hit[0]} and {hit[1]} (in parameter order) share memory; "
                             f"some parameters appear more than once")
        n = len(self._params)
        self.state = [dict() for _ in range(n)]   # index -> {name: array}
        self._steps = [0] * n                     # per-parameter update counts
        self._step_count = 0                      # completed step() calls (schedules)
        self._plans = [None] * len(self.param_groups)
        self._on_gpu = any(is_cupy(a) for a in self._params)

    # -- hooks ---------------------------------------------------------------
    def _check_group(self, g):  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_names(self, g):  # pragma: no cover - abstract
        raise NotImplementedError

    def _fill_value(self, g):
        """The value state arrays start at (torch: zeros; Adagrad's sum differs)."""
        return 0.0

    def _init_states(self, g, ps):
        """Fresh state for the parameters ``ps`` of group ``g``, one dict per parameter.

        On the CPU each state name gets one contiguous slab for all of ``ps``
        and every parameter a view of it (starting on a 64-byte boundary):
        large slabs get transparent huge pages from NumPy's allocator, so a
        step over 200 small tensors streams the state like one big array.
        """
        eight = _eightbit.big(self, ps)   # state_bits=8: QuantizedState for large params
        if eight:
            return _eightbit.init_states(self, g, ps, eight, self._init_states)
        names = self._state_names(g)
        fill = self._fill_value(g)
        out = [dict() for _ in ps]
        for st, p in zip(out, ps):
            _mixed.init_master(self, p, st)   # master_weights=True: a float32 copy of p
        if not names or not ps:
            return out
        dtypes = {_mixed.state_dtype(self, p) for p in ps}
        if any(is_cupy(p) for p in ps) or len({p.dtype for p in ps}) != 1 or len(dtypes) != 1:
            for st, p in zip(out, ps):
                dt = _mixed.state_dtype(self, p)
                for n in names:   # on p's device (cupy allocates on the current one)
                    st[n] = v.full_like(p, None, fill) if dt == p.dtype else \
                        v.full_like(p, None, fill).astype(dt)
            return out
        slabs = slab_views(ps, names, fill, dtypes.pop())
        for j, st in enumerate(out):
            for n in names:
                st[n] = slabs[n][j]
        return out

    def _key(self, steps):
        """Parameters with equal keys update together (the step count)."""
        return steps

    def _update(self, g, lr, key, params, grads, states):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- stepping ------------------------------------------------------------
    @staticmethod
    def _lr(g, t):
        lr = g["lr"]
        return lr(t) if callable(lr) else lr

    def step(self, grads):
        """One update of every parameter whose gradient is not None.

        ``grads``: one array (or None) per parameter, in parameter order (all
        groups concatenated), same shapes and dtypes as the parameters.

        Acts on the arrays ``param_groups`` and ``state`` hold now (a parameter
        or state array replaced since the last step is the one updated), and
        checks every group, gradient and state array before it writes any.
        """
        params = self._current_params()
        if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)):
            if len(params) == 1 and grads is not None:
                grads = [grads]
            else:
                raise TypeError("grads must be a list with one array (or None) per parameter")
        if len(grads) != len(params):
            raise ValueError(f"got {len(grads)} gradients for {len(params)} parameters")
        t = self._step_count
        # Everything that can be wrong is checked before the first group updates:
        # the hyper-parameters (a schedule or a user may have changed them), the
        # learning rates, each gradient's form, every group's arrays, and memory
        # overlap of all of them.
        for g in self.param_groups:
            self._check_group(g)
        lrs = [v.at_least("lr", self._lr(g, t)) for g in self.param_groups]
        runs = self._fast_runs(params, grads)
        if runs is None:
            runs, arrays = self._checked_runs(params, grads)
        else:
            arrays = grads
        mod = None
        for gi, lists in runs:
            g = self.param_groups[gi]
            if lists is None:
                lo, hi = self._ranges[gi]
                self._step_general(gi, g, lrs[gi], arrays[lo:hi])
                continue
            if mod is None:
                mod = _backends.module("optim", _backends.choose(self.backend, False))
            lo, hi = self._ranges[gi]
            plan = self._plans[gi]
            ps, gg, states, *mixed = lists
            mixed = mixed[0] if mixed else {}
            if "seeds" not in mixed:
                self._fast_update(mod, g, lrs[gi], plan.key, ps, gg, states, **mixed)
            else:   # stochastic rounding: each parameter with its own seed
                sr_step = getattr(self, "_sr_step", False)   # SGD's key is not the count
                for k, seed in enumerate(mixed["seeds"]):
                    kw = {"step": self._steps[lo + k] + 1} if sr_step else {}
                    self._fast_update(mod, g, lrs[gi], plan.key, ps[k:k + 1], gg[k:k + 1],
                                      {n: x[k:k + 1] for n, x in states.items()},
                                      stochastic_rounding=True, seed=seed, **kw)
            steps = self._steps
            for i in range(lo, hi):
                steps[i] += 1
            plan.key = self._key(steps[lo])
        self._step_count += 1

    def _fast_runs(self, params, grads):
        """The fused calls of this step when every group is one call whose arrays pass
        the native fast-path checks (all of them, gradients included); else None."""
        if _plainly_valid is None or self._on_gpu:
            return None   # (a None gradient fails the checks: the general path skips it)
        grads = grads if type(grads) is list else list(grads)
        runs = []
        for gi, g in enumerate(self.param_groups):
            if self._plans[gi] is None:
                return None
            lo, hi = self._ranges[gi]
            names = self._state_names(g)
            try:
                lists = {n: [st[n] for st in self.state[lo:hi]] for n in names}
            except KeyError:
                return None
            ps, gg = params[lo:hi], grads[lo:hi]
            typed = self._plans[gi].typed
            if typed is None:
                if not _plainly_valid(ps, gg, *lists.values()):
                    return None
                runs.append((gi, (ps, gg, lists)))
                continue
            dtypes, sizes, outputs, master, seeds = typed
            roles = (ps, gg, *lists.values())
            mixed = {} if seeds is None else {"seeds": seeds}
            if master:
                try:
                    mixed["masters"] = [st[_mixed.MASTER] for st in self.state[lo:hi]]
                except KeyError:
                    return None
                roles += (mixed["masters"],)
            if not _plainly_typed(roles, dtypes, sizes, outputs):
                return None
            runs.append((gi, (ps, gg, lists, mixed)))
        if len(runs) > 1:   # each call's own arrays are disjoint; across calls too?
            flat = list(params) + grads
            for _, (_, _, lists, *mixed) in runs:
                for role in lists.values():
                    flat.extend(role)
                flat.extend(mixed[0].get("masters", ()) if mixed else ())
            if v.first_overlap(flat) is not None:
                return None   # the checked path names the arrays
        return runs

    def _checked_runs(self, params, grads):
        """The calls of this step after the full Python checks (precise errors)."""
        arrays = []
        missing = 0
        gpu = False
        for i, (p, gr) in enumerate(zip(params, grads)):
            if gr is None:
                arrays.append(None)
                missing += 1
                continue
            if type(gr) is not np.ndarray:
                gr = as_array(gr, f"grads[{i}]")
                gpu = gpu or is_cupy(gr)
            if gr.shape != p.shape:
                raise ValueError(f"grads[{i}] has shape {gr.shape} but its parameter has shape {p.shape}")
            if gr.dtype != p.dtype and not (p.dtype in v.HALF_DTYPES and gr.dtype == np.float32):
                raise TypeError(f"grads[{i}] has dtype {gr.dtype} but its parameter has dtype {p.dtype}")
            if not gr.flags.c_contiguous:
                raise ValueError(f"grads[{i}] is not C-contiguous (fastopt never copies: pass "
                                 f"np.ascontiguousarray(...) yourself)")
            arrays.append(gr)
        runs = []          # (group index, lists for one fused call, or None: general path)
        flat = list(params)
        for gi, g in enumerate(self.param_groups):
            lo, hi = self._ranges[gi]
            gg = arrays[lo:hi]
            plan = self._plans[gi]
            # (a typed plan's arrays failed the native check: the general path names the error)
            if plan is not None and plan.typed is None and (not missing or not any(x is None for x in gg)):
                lists = self._checked_lists(g, params[lo:hi], gg, self.state[lo:hi])
                for role in lists[2].values():
                    flat.extend(role)
                runs.append((gi, lists))
            else:
                flat.extend(self._check_general(gi, g, params, gg))
                runs.append((gi, None))
        present = [x for x in arrays if x is not None] if missing else arrays
        if present and not gpu and not self._on_gpu:
            hit = v.first_overlap(flat + present)
            if hit is not None:
                raise ValueError("a gradient, parameter or optimizer state array overlaps in "
                                 "memory with another; every array must be distinct")
        return runs, arrays

    def _current_params(self):
        """The parameters ``param_groups`` hold now, flat (a swapped-in array counts)."""
        flat = []
        for gi, g in enumerate(self.param_groups):
            ps = g["params"]
            lo, hi = self._ranges[gi]
            if len(ps) != hi - lo:
                raise ValueError(f"param_groups[{gi}]['params'] has {len(ps)} parameters but had "
                                 f"{hi - lo}: replace parameters in place, or build a new optimizer")
            flat.extend(ps)
        self._params = flat
        return flat

    def _checked_lists(self, g, ps, gg, states):
        """(params, grads, {name: states}) of a one-call group, every array checked."""
        names = self._state_names(g)
        try:
            lists = {n: [st[n] for st in states] for n in names}
        except KeyError as exc:
            raise ValueError(f"optimizer state lacks {exc.args[0]!r} for a parameter that has "
                             f"stepped; state entries are {names}") from None
        roles = [lists[n] for n in names]
        if _plainly_valid is not None and _plainly_valid(ps, gg, *roles):
            return ps, gg, lists
        checked = v.arrays(("param", list(ps), True), ("grad", list(gg), False),
                           *[(n, lists[n], True) for n in names])
        if checked.on_gpu:
            raise ValueError("a CPU optimizer's parameters or state were replaced by GPU arrays")
        return checked["param"], checked["grad"], {n: checked[n] for n in names}

    def _check_general(self, gi, g, params, gg):
        """Checks what the general path of group ``gi`` will update; returns its arrays."""
        lo, hi = self._ranges[gi]
        names = self._state_names(g)
        out = []
        for j, grad in enumerate(gg):
            if grad is None:
                continue
            i = lo + j
            st = self.state[i]   # empty: made fresh (and valid) on this step
            lacking = [n for n in names if n not in st] if st else []
            if lacking:
                raise ValueError(f"state of parameter {i} lacks {lacking}")
            present = (names + [_mixed.MASTER] * (_mixed.MASTER in st)) if st else ()
            # 8-bit states are checked by the functional step (fastopt/_quantized_validate.py)
            v.arrays(("param", params[i], True, "param"), ("grad", grad, False, "grad"),
                     *[(n, st[n], True, "master" if n == _mixed.MASTER else "state")
                       for n in present if not _eightbit.is_quantized(st[n])],
                     dtypes=v.STORAGE_DTYPES)
            out.extend(_eightbit.arrays_of(st[n] for n in present))
        return out

    def _step_general(self, gi, g, lr, gg):
        lo, hi = self._ranges[gi]
        names = self._state_names(g)
        buckets = {}
        for j, grad in enumerate(gg):
            if grad is None:
                continue
            i = lo + j
            p = self._params[i]
            buckets.setdefault((self._key(self._steps[i]), p.dtype, _eightbit.quantizes(self, p),
                                _mixed.bucket(self, i, p)), []).append(i)
        for (key, *_), idx in buckets.items():
            # Lazy state: allocated only now, after the bucket is known.
            fresh = [i for i in idx if not self.state[i]]
            for i, st in zip(fresh, self._init_states(g, [self._params[i] for i in fresh])):
                self.state[i] = st
            try:
                self._update(g, lr, key, [self._params[i] for i in idx], [gg[i - lo] for i in idx],
                             {n: [self.state[i][n] for i in idx] for n in names},
                             **_mixed.extra(self, idx, self._params, self.state, self._steps))
            except BaseException:
                for i in fresh:   # a rejected call leaves no half-made state behind
                    self.state[i] = {}
                raise
            for i in idx:
                self._steps[i] += 1
        self._replan(gi, gg)

    def _replan(self, gi, grads=None):
        """Marks the group as one fused call when all its parameters can step together
        (state made, one step count, one dtype, on the CPU). Only that decision is
        kept: each step reads the arrays from ``param_groups`` and ``state`` anew."""
        lo, hi = self._ranges[gi]
        g = self.param_groups[gi]
        self._plans[gi] = None
        names = self._state_names(g)
        if hi == lo or any(not self.state[i] and names for i in range(lo, hi)):
            return
        keys = {self._key(self._steps[i]) for i in range(lo, hi)}
        ps = self._params[lo:hi]
        if len(keys) != 1 or len({p.dtype for p in ps}) != 1 or any(is_cupy(p) for p in ps):
            return
        typed = None
        if any(_mixed.is_mixed(self, p) for p in ps):
            typed = self._typed_plan(gi, grads)
            if typed is None:
                return
        elif any(set(self.state[i]) != set(names) for i in range(lo, hi)):
            return
        if _eightbit.any_quantized({n: [self.state[i][n] for i in range(lo, hi)] for n in names}):
            return   # 8-bit state goes through the public functional step
        self._plans[gi] = _Plan(keys.pop(), typed)

    def _typed_plan(self, gi, grads):
        """The role types of a mixed-precision group's plan (see :class:`_Plan`), or None
        when it cannot have one: types that differ within a role, some parameters rounded
        stochastically and some not, or a gradient type not yet seen."""
        lo, hi = self._ranges[gi]
        ps = self._params[lo:hi]
        if _plainly_typed is None:
            return None
        sr = {_mixed.rounds_stochastically(self, p) for p in ps}
        if len(sr) != 1:
            return None
        seeds = [_mixed.param_seed(_mixed.of(self).seed, i) for i in range(lo, hi)] \
            if sr.pop() else None
        names = self._state_names(self.param_groups[gi])
        master = _mixed.has_master(self, ps[0])
        want = set(names) | ({_mixed.MASTER} if master else set())
        sts = self.state[lo:hi]
        if any(set(st) != want for st in sts) or any(_eightbit.is_quantized(st[n]) for st in sts
                                                       for n in names):
            return None
        gg = [gr for gr in (grads or ()) if gr is not None]
        gdt = {gr.dtype for gr in gg if isinstance(gr, np.ndarray)}
        roles = [[p.dtype for p in ps], [next(iter(gdt))] if len(gdt) == 1 else [ps[0].dtype]]
        roles += [[st[n].dtype for st in sts] for n in names + [_mixed.MASTER] * master]
        if any(len({id(d) for d in role}) != 1 for role in roles):
            return None
        dtypes = tuple(role[0] for role in roles)
        outputs = (True, False) + (True,) * (len(dtypes) - 2)
        return dtypes, tuple(d.itemsize for d in dtypes), outputs, master, seeds

    def zero_state(self):
        """Forgets all state (the next step starts afresh, as a new optimizer would)."""
        self.state = [dict() for _ in self._params]
        self._steps = [0] * len(self._params)
        self._step_count = 0
        self._plans = [None] * len(self.param_groups)
        self._after_reset()

    def _after_reset(self):
        pass

    @property
    def step_count(self):
        """Completed ``step()`` calls: the ``t`` the next update passes to a schedule."""
        return self._step_count

    def _requires_state(self):
        """True when state exists from construction (Adagrad)."""
        return False

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for gi, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {gi}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def slab_views(ps, names, fill=0.0, dtype=None):
    """For each state name, one zeroed (or ``fill``-ed) CPU slab holding a C-contiguous
    view per array of ``ps`` (their shapes; their common dtype unless ``dtype``), each
    starting on a 64-byte boundary: ``{name: [view, ...]}``. NumPy advises huge pages
    for large allocations, so the views stream like one big array."""
    dtype = np.dtype(ps[0].dtype if dtype is None else dtype)
    offsets, total = [], 0
    for p in ps:
        offsets.append(total)
        total += -(-int(np.prod(p.shape, dtype=np.int64)) // 16) * 16
    out = {}
    for n in names:
        raw = np.zeros(total + 64 // dtype.itemsize, dtype)
        shift = (-raw.__array_interface__["data"][0] % 64) // dtype.itemsize
        slab = raw[shift:shift + total]
        if fill:
            slab[...] = fill
        out[n] = [slab[off:off + int(np.prod(p.shape, dtype=np.int64))].reshape(tuple(p.shape))
                  for p, off in zip(ps, offsets)]
    return out

