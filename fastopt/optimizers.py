"""Optimizer classes over lists of arrays (DESIGN.md s.3): torch.optim's API on fastopt kernels.

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

import json
import os
import tempfile

import numpy as np

from fastopt import _backends, _validate as v
from fastopt._arrays import as_array, is_cupy
from fastopt.optim import adagrad_step, adam_step, rmsprop_step, sgd_step

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "save_state", "load_state"]


class _Plan:
    """The cached lists of one group whose parameters all step together."""

    __slots__ = ("key", "params", "states")

    def __init__(self, key, params, states):
        self.key, self.params, self.states = key, params, states


class Optimizer:
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
                if a.dtype not in v.FLOAT_DTYPES:
                    raise TypeError(f"param_groups[{gi}]['params'][{j}] has dtype {a.dtype}; "
                                    f"fastopt takes float32 or float64")
                if id(a) in seen:
                    raise ValueError("some parameters appear in more than one parameter group")
                if not a.flags.c_contiguous or not a.flags.writeable:
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
        self._owned_cache = None

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
        names = self._state_names(g)
        fill = self._fill_value(g)
        out = [dict() for _ in ps]
        if not names or not ps:
            return out
        if any(is_cupy(p) for p in ps) or len({p.dtype for p in ps}) != 1:
            for st, p in zip(out, ps):
                for n in names:
                    a = np.zeros_like(p)
                    if fill:
                        a[...] = fill
                    st[n] = a
            return out
        slabs = slab_views(ps, names, fill)
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
        """
        if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)):
            if len(self._params) == 1 and grads is not None:
                grads = [grads]
            else:
                raise TypeError("grads must be a list with one array (or None) per parameter")
        if len(grads) != len(self._params):
            raise ValueError(f"got {len(grads)} gradients for {len(self._params)} parameters")
        t = self._step_count
        # Everything that can be wrong is checked before the first group updates:
        # the hyper-parameters (a schedule or a user may have changed them), the
        # learning rates, each gradient's form, and memory overlap of the
        # gradients with each other and with the parameters and state.
        for g in self.param_groups:
            self._check_group(g)
        lrs = [v.at_least("lr", self._lr(g, t)) for g in self.param_groups]
        arrays = []
        missing = 0
        gpu = False
        for i, (p, gr) in enumerate(zip(self._params, grads)):
            if gr is None:
                arrays.append(None)
                missing += 1
                continue
            if type(gr) is not np.ndarray:
                gr = as_array(gr, f"grads[{i}]")
                gpu = gpu or is_cupy(gr)
            if gr.shape != p.shape:
                raise ValueError(f"grads[{i}] has shape {gr.shape} but its parameter has shape {p.shape}")
            if gr.dtype != p.dtype:
                raise TypeError(f"grads[{i}] has dtype {gr.dtype} but its parameter has dtype {p.dtype}")
            if not gr.flags.c_contiguous:
                raise ValueError(f"grads[{i}] is not C-contiguous (fastopt never copies: pass "
                                 f"np.ascontiguousarray(...) yourself)")
            arrays.append(gr)
        present = [x for x in arrays if x is not None] if missing else arrays
        if present and not gpu:
            hit = v.first_overlap(self._owned() + present)
            if hit is not None:
                raise ValueError("a gradient overlaps in memory with another gradient, a "
                                 "parameter or optimizer state; every array must be distinct")
        for gi, g in enumerate(self.param_groups):
            lo, hi = self._ranges[gi]
            gg = arrays[lo:hi]
            plan = self._plans[gi]
            if plan is not None and (not missing or not any(x is None for x in gg)):
                # Cached, validated lists: straight to the backend's list-form step.
                mod = _backends.module("optim", _backends.choose(self.backend, False))
                self._fast_update(mod, g, lrs[gi], plan.key, plan.params, gg, plan.states)
                steps = self._steps
                for i in range(lo, hi):
                    steps[i] += 1
                plan.key = self._key(steps[lo])
            else:
                self._step_general(gi, g, lrs[gi], gg)
        self._step_count += 1

    def _owned(self):
        """Every parameter and state array (cached; rebuilt when state changes)."""
        if self._owned_cache is None:
            flat = list(self._params)
            for st in self.state:
                flat.extend(st.values())
            self._owned_cache = [a for a in flat if not is_cupy(a)]
        return self._owned_cache

    def _step_general(self, gi, g, lr, gg):
        lo, hi = self._ranges[gi]
        names = self._state_names(g)
        buckets = {}
        for j, grad in enumerate(gg):
            if grad is None:
                continue
            i = lo + j
            p = self._params[i]
            buckets.setdefault((self._key(self._steps[i]), p.dtype), []).append(i)
        for (key, _), idx in buckets.items():
            # Lazy state: allocated only now, after the bucket is known.
            fresh = [i for i in idx if not self.state[i]]
            for i, st in zip(fresh, self._init_states(g, [self._params[i] for i in fresh])):
                self.state[i] = st
            if fresh:
                self._owned_cache = None
            try:
                self._update(g, lr, key, [self._params[i] for i in idx], [gg[i - lo] for i in idx],
                             {n: [self.state[i][n] for i in idx] for n in names})
            except BaseException:
                for i in fresh:   # a rejected call leaves no half-made state behind
                    self.state[i] = {}
                raise
            for i in idx:
                self._steps[i] += 1
        self._replan(gi)

    def _replan(self, gi):
        """Caches the group's lists when all its parameters can step in one call."""
        lo, hi = self._ranges[gi]
        g = self.param_groups[gi]
        self._plans[gi] = None
        if hi == lo or any(not self.state[i] and self._state_names(g) for i in range(lo, hi)):
            return
        keys = {self._key(self._steps[i]) for i in range(lo, hi)}
        dtypes = {self._params[i].dtype for i in range(lo, hi)}
        if len(keys) != 1 or len(dtypes) != 1:
            return
        names = self._state_names(g)
        if any(set(self.state[i]) != set(names) for i in range(lo, hi)):
            return
        params = self._params[lo:hi]
        states = {n: [self.state[i][n] for i in range(lo, hi)] for n in names}
        # Validated once here (dtype, contiguity, writeability, overlap), so that
        # later steps only check the new gradients.
        checked = v.arrays(("param", params, True), *[(n, states[n], True) for n in names])
        if checked.on_gpu:
            return   # GPU arrays always go through the public functional step
        self._plans[gi] = _Plan(keys.pop(), params, states)

    def zero_state(self):
        """Forgets all state (the next step starts afresh, as a new optimizer would)."""
        self.state = [dict() for _ in self._params]
        self._steps = [0] * len(self._params)
        self._step_count = 0
        self._plans = [None] * len(self.param_groups)
        self._owned_cache = None
        self._after_reset()

    def _after_reset(self):
        pass

    @property
    def step_count(self):
        """Completed ``step()`` calls: the ``t`` the next update passes to a schedule."""
        return self._step_count

    # -- state dicts ---------------------------------------------------------
    def _export_group(self, g):
        out = {}
        for k, val in g.items():
            if k == "params":
                continue
            if k == "lr" and callable(val):
                val = float(val(self._step_count))   # the rate the next step will use
            out[k] = val
        return out

    def state_dict(self):
        """torch's layout, NumPy copies: ``{"state": {i: {...}}, "param_groups": [...],
        "step_count": n}`` (``step_count`` is fastopt's: the schedules' ``t``)."""
        state = {}
        for i, st in enumerate(self.state):
            if not st and not (self._exports_step and self._steps[i]):
                continue
            entry = {}
            if self._exports_step:
                entry["step"] = int(self._steps[i])
            for name, arr in st.items():
                entry[name] = _to_numpy(arr)
            if entry:
                state[i] = entry
        groups = []
        for gi, g in enumerate(self.param_groups):
            d = self._export_group(g)
            d["params"] = list(range(*self._ranges[gi]))
            groups.append(d)
        return {"state": state, "param_groups": groups, "step_count": int(self._step_count)}

    def _group_of(self, i):
        for gi, (lo, hi) in enumerate(self._ranges):
            if lo <= i < hi:
                return gi
        raise IndexError(i)

    def load_state_dict(self, state_dict):
        """Loads a :meth:`state_dict` (this class's, or torch's layout with NumPy or
        torch tensors). Everything is checked before anything changes: wrong group
        or parameter counts, unknown indices, missing or extra state entries,
        wrong shapes or dtypes, invalid hyper-parameters raise ``ValueError`` /
        ``TypeError`` and leave the optimizer exactly as it was."""
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict or "state" not in state_dict:
            raise ValueError("state_dict must be a dict with 'state' and 'param_groups'")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        id_map = {}
        new_groups = []
        for gi, (sg, g) in enumerate(zip(saved_groups, self.param_groups)):
            ids = list(sg["params"])
            lo, hi = self._ranges[gi]
            if len(ids) != hi - lo:
                raise ValueError(f"loaded parameter group {gi} has {len(ids)} parameters, "
                                 f"this optimizer's has {hi - lo}")
            for k, i in zip(ids, range(lo, hi)):
                id_map[_plain_key(k)] = i
            ng = dict(g)
            for k, val in sg.items():
                if k == "params":
                    continue
                if k not in self.defaults:
                    continue   # torch-only options (foreach, fused, ...) mean nothing here
                if k == "lr" and callable(g["lr"]):
                    continue   # a schedule is code, not state: keep it
                if isinstance(val, list):
                    val = tuple(val)
                ng[k] = val
            missing = [k for k in self.defaults if k not in sg]
            if missing:
                raise ValueError(f"loaded parameter group {gi} lacks {missing}")
            self._check_group(ng)
            new_groups.append(ng)
        saved_state = state_dict["state"]
        new_state = [dict() for _ in self._params]
        new_steps = [0] * len(self._params)
        for k, entry in saved_state.items():
            kk = _plain_key(k)
            if kk not in id_map:
                raise ValueError(f"loaded state refers to parameter {k!r}, which no group lists")
            i = id_map[kk]
            g = new_groups[self._group_of(i)]
            p = self._params[i]
            names = self._state_names(g)
            entry = dict(entry)
            expected = set(names) | ({"step"} if self._exports_step else set())
            if set(entry) != expected:
                raise ValueError(f"state of parameter {k}: expected entries {sorted(expected)}, "
                                 f"got {sorted(entry)}")
            st = {}
            for name in names:
                st[name] = _state_array(entry[name], p, f"state[{k}][{name!r}]")
            new_state[i] = st
            if self._exports_step:
                new_steps[i] = _step_value(entry["step"], f"state[{k}]['step']")
            else:
                new_steps[i] = 1 if st else 0
        step_count = state_dict.get("step_count", max(new_steps, default=0))
        step_count = _step_value(step_count, "step_count")
        # Everything fits: copy the values into fresh (slab) state, then commit.
        for gi, ng in enumerate(new_groups):
            lo, hi = self._ranges[gi]
            idx = [i for i in range(lo, hi) if new_state[i] or self._requires_state()]
            fresh = self._init_states(ng, [self._params[i] for i in idx])
            for i, st in zip(idx, fresh):
                for name, arr in new_state[i].items():
                    st[name][...] = arr
                new_state[i] = st
        for g, ng in zip(self.param_groups, new_groups):
            g.clear()
            g.update(ng)
        self.state, self._steps, self._step_count = new_state, new_steps, step_count
        self._owned_cache = None
        for gi in range(len(self.param_groups)):
            self._replan(gi)

    def _requires_state(self):
        """True when state exists from construction (Adagrad)."""
        return False

    def save(self, path):
        """Writes :meth:`state_dict` to ``path`` (.npz), atomically (see :func:`save_state`)."""
        save_state(self.state_dict(), path)

    def load(self, path):
        """Reads a file written by :meth:`save` and loads it (:meth:`load_state_dict`)."""
        self.load_state_dict(load_state(path))

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for gi, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {gi}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def slab_views(ps, names, fill=0.0):
    """For each state name, one zeroed (or ``fill``-ed) CPU slab holding a C-contiguous
    view per array of ``ps`` (their shapes and common dtype), each starting on a
    64-byte boundary: ``{name: [view, ...]}``. NumPy advises huge pages for
    large allocations, so the views stream like one big array."""
    dtype = np.dtype(ps[0].dtype)
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


def _plain_key(k):
    try:
        return int(k)
    except (TypeError, ValueError):
        return k


def _to_numpy(a):
    if is_cupy(a):
        return a.get()
    return np.array(a, copy=True)


def _step_value(s, label):
    if hasattr(s, "item"):
        s = s.item()
    if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)):
        raise TypeError(f"{label} must be a number, got {type(s).__name__}")
    if s != s or s < 0 or int(s) != s:
        raise ValueError(f"{label} must be a non-negative integer, got {s}")
    return int(s)


def _state_array(a, p, label):
    """``a`` as an array after checking its shape and dtype against parameter ``p``."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):   # a torch tensor
        a = a.detach().cpu().numpy()
    if not isinstance(a, np.ndarray) and not is_cupy(a):
        raise TypeError(f"{label} must be an array, got {type(a).__name__}")
    if a.dtype != p.dtype:
        raise TypeError(f"{label} has dtype {a.dtype} but the parameter has dtype {p.dtype}")
    if a.shape != p.shape:
        raise ValueError(f"{label} has shape {a.shape} but the parameter has shape {p.shape}")
    return a   # copied into the optimizer's own state on commit


# ----------------------------------------------------------------- .npz files
def _write_npz(f, arrays):
    np.savez(f, **arrays)


def save_state(state_dict, path):
    """Writes an optimizer state dict to ``path`` as ``.npz``: arrays as
    ``state/<index>/<name>``, everything else (steps, hyper-parameters) as JSON
    in ``__meta__``. Nothing is lost (floats are written exactly). The file is
    written to a temporary file in the same directory, fsync'ed, then moved
    over ``path`` with ``os.replace``: a crash mid-write leaves the old file
    intact."""
    arrays = {}
    meta_state = {}
    for k, entry in state_dict["state"].items():
        scalars = {}
        for name, val in entry.items():
            if isinstance(val, (np.ndarray,)) or is_cupy(val) or hasattr(val, "__dlpack__"):
                arr = _to_numpy(val) if not hasattr(val, "detach") else val.detach().cpu().numpy()
                if arr.ndim == 0 and name == "step":
                    scalars[name] = arr.item()
                else:
                    arrays[f"state/{k}/{name}"] = arr
            else:
                scalars[name] = val
        meta_state[str(k)] = scalars
    meta = {"format": "fastopt-optimizer-state-1", "state": meta_state,
            "param_groups": state_dict["param_groups"],
            "extra": {k: val for k, val in state_dict.items() if k not in ("state", "param_groups")}}
    arrays["__meta__"] = np.array(json.dumps(meta, default=_json_default))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"cannot store {type(o).__name__} in an optimizer state file")


def load_state(path):
    """Reads a state dict written by :func:`save_state` (arrays as NumPy)."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        meta = json.loads(str(z["__meta__"]))
        if meta.get("format") != "fastopt-optimizer-state-1":
            raise ValueError(f"{path} is not a fastopt optimizer state file")
        state = {}
        for k, scalars in meta["state"].items():
            state[int(k)] = dict(scalars)
        for name in z.files:
            if name.startswith("state/"):
                _, k, field = name.split("/", 2)
                state.setdefault(int(k), {})[field] = z[name]
    groups = []
    for g in meta["param_groups"]:
        groups.append({k: tuple(val) if isinstance(val, list) and k != "params" else val
                       for k, val in g.items()})
    out = {"state": state, "param_groups": groups}
    out.update(meta.get("extra", {}))
    return out


# ----------------------------------------------------------------- the optimizers
def _check_lr(g):
    if not callable(g["lr"]):
        v.at_least("lr", g["lr"])


def _check_betas(betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"Invalid betas value: {betas!r} (must be a pair)")
    for i, b in enumerate(betas):
        b = v.real(f"betas[{i}]", b)
        if not 0.0 <= b < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b}")


class SGD(Optimizer):
    """``torch.optim.SGD``: ``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
    nesterov=False, maximize=False)``, each group in one :func:`fastopt.sgd_step` call.
    State (torch's): ``momentum_buffer`` when ``momentum != 0``; no ``step``."""

    _exports_step = False

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, backend="auto"):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize), backend)

    def _check_group(self, g):
        _check_lr(g)
        v.at_least("momentum", g["momentum"])
        v.finite("dampening", g["dampening"])
        v.at_least("weight_decay", g["weight_decay"])
        v.flag("nesterov", g["nesterov"])
        v.flag("maximize", g["maximize"])
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _state_names(self, g):
        return ["momentum_buffer"] if g["momentum"] != 0 else []

    def _key(self, steps):
        return min(steps, 1)   # only "first momentum step or not" matters

    def _fast_update(self, mod, g, lr, key, params, grads, states):
        mom = float(g["momentum"])
        mod.sgd(params, grads, states["momentum_buffer"] if mom != 0.0 else None, lr=lr,
                momentum=mom, dampening=float(g["dampening"]),
                weight_decay=float(g["weight_decay"]), nesterov=bool(g["nesterov"]),
                maximize=bool(g["maximize"]), first_step=key == 0)

    def _update(self, g, lr, key, params, grads, states):
        sgd_step(params, grads, states.get("momentum_buffer"), lr=lr, momentum=g["momentum"],
                 dampening=g["dampening"], weight_decay=g["weight_decay"],
                 nesterov=g["nesterov"], maximize=g["maximize"], first_step=key == 0,
                 backend=self.backend)


class RMSprop(Optimizer):
    """``torch.optim.RMSprop``: ``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8,
    weight_decay=0, momentum=0, centered=False, maximize=False)``.
    State: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False, backend="auto"):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize),
                         backend)

    def _check_group(self, g):
        _check_lr(g)
        v.at_least("eps", g["eps"])
        v.at_least("momentum", g["momentum"])
        v.at_least("weight_decay", g["weight_decay"])
        v.at_least("alpha", g["alpha"])
        v.flag("centered", g["centered"])
        v.flag("maximize", g["maximize"])

    def _state_names(self, g):
        names = ["square_avg"]
        if g["momentum"] > 0:
            names.append("momentum_buffer")
        if g["centered"]:
            names.append("grad_avg")
        return names

    def _fast_update(self, mod, g, lr, key, params, grads, states):
        mom = float(g["momentum"])
        mod.rmsprop(params, grads, states["square_avg"],
                    states["grad_avg"] if g["centered"] else None,
                    states["momentum_buffer"] if mom > 0.0 else None, lr=lr,
                    alpha=float(g["alpha"]), eps=float(g["eps"]),
                    weight_decay=float(g["weight_decay"]), momentum=mom,
                    maximize=bool(g["maximize"]))

    def _update(self, g, lr, key, params, grads, states):
        rmsprop_step(params, grads, states["square_avg"], lr=lr, alpha=g["alpha"], eps=g["eps"],
                     weight_decay=g["weight_decay"], momentum=g["momentum"],
                     momentum_buffer=states.get("momentum_buffer"), centered=g["centered"],
                     grad_avg=states.get("grad_avg"), maximize=g["maximize"], backend=self.backend)


class Adam(Optimizer):
    """``torch.optim.Adam``: ``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
    weight_decay=0, amsgrad=False, maximize=False)``, each group in one
    :func:`fastopt.adam_step` call. State: ``step``, ``exp_avg``, ``exp_avg_sq``,
    ``max_exp_avg_sq`` (amsgrad)."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, backend="auto"):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize), backend)

    def _check_group(self, g):
        _check_lr(g)
        v.at_least("eps", g["eps"])
        _check_betas(g["betas"])
        g["betas"] = tuple(g["betas"])
        v.at_least("weight_decay", g["weight_decay"])
        v.flag("amsgrad", g["amsgrad"])
        v.flag("maximize", g["maximize"])

    def _state_names(self, g):
        return ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] if g["amsgrad"] else ["exp_avg", "exp_avg_sq"]

    def _fast_update(self, mod, g, lr, key, params, grads, states):
        beta1, beta2 = g["betas"]
        mod.adam(params, grads, states["exp_avg"], states["exp_avg_sq"],
                 states["max_exp_avg_sq"] if g["amsgrad"] else None, step=key + 1, lr=lr,
                 beta1=float(beta1), beta2=float(beta2), eps=float(g["eps"]),
                 weight_decay=float(g["weight_decay"]), decoupled=self._decoupled,
                 maximize=bool(g["maximize"]))

    def _update(self, g, lr, key, params, grads, states):
        beta1, beta2 = g["betas"]
        adam_step(params, grads, states["exp_avg"], states["exp_avg_sq"], step=key + 1, lr=lr,
                  beta1=beta1, beta2=beta2, eps=g["eps"], weight_decay=g["weight_decay"],
                  decoupled_weight_decay=self._decoupled, amsgrad=g["amsgrad"],
                  max_exp_avg_sq=states.get("max_exp_avg_sq"), maximize=g["maximize"],
                  backend=self.backend)


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay (``param *= 1 - lr * wd``
    first); ``weight_decay`` defaults to ``1e-2``."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, backend="auto"):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, backend=backend)


class Adagrad(Optimizer):
    """``torch.optim.Adagrad``: ``Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0,
    initial_accumulator_value=0, eps=1e-10, maximize=False)``. Like torch, the state
    (``step`` = 0, ``sum`` = ``initial_accumulator_value``) exists from construction."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, maximize=False, backend="auto"):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize), backend)
        self._after_reset()

    def _after_reset(self):
        for gi, g in enumerate(self.param_groups):
            lo, hi = self._ranges[gi]
            for i, st in zip(range(lo, hi), self._init_states(g, self._params[lo:hi])):
                self.state[i] = st
            self._replan(gi)
        self._owned_cache = None

    def _requires_state(self):
        return True

    def _check_group(self, g):
        _check_lr(g)
        v.at_least("lr_decay", g["lr_decay"])
        v.at_least("weight_decay", g["weight_decay"])
        v.at_least("initial_accumulator_value", g["initial_accumulator_value"])
        v.at_least("eps", g["eps"])
        v.flag("maximize", g["maximize"])

    def _state_names(self, g):
        return ["sum"]

    def _fill_value(self, g):
        return float(g["initial_accumulator_value"])

    def _fast_update(self, mod, g, lr, key, params, grads, states):
        mod.adagrad(params, grads, states["sum"], step=key + 1, lr=lr,
                    lr_decay=float(g["lr_decay"]), eps=float(g["eps"]),
                    weight_decay=float(g["weight_decay"]), maximize=bool(g["maximize"]))

    def _update(self, g, lr, key, params, grads, states):
        adagrad_step(params, grads, states["sum"], step=key + 1, lr=lr, lr_decay=g["lr_decay"],
                     eps=g["eps"], weight_decay=g["weight_decay"], maximize=g["maximize"],
                     backend=self.backend)
