"""Optimizer state dicts (torch's layout, NumPy arrays) and ``.npz`` state files.

``StateDicts`` is the part of :class:`fastopt.optim.Optimizer` that exports and
loads state; ``save_state`` / ``load_state`` write and read a state dict as an
``.npz`` file, atomically.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from fastopt._arrays import is_cupy
from fastopt.optim import _eightbit
from fastopt.quantized import QuantizedState

__all__ = ["StateDicts", "save_state", "load_state"]


class StateDicts:
    """``state_dict`` / ``load_state_dict`` of :class:`fastopt.optim.Optimizer`."""

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
                entry.update(_eightbit.export(name, arr, _to_numpy))   # 8-bit: codes, absmax
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
            entry = _eightbit.gather(entry, names)
            expected = set(names) | ({"step"} if self._exports_step else set())
            if set(entry) != expected:
                raise ValueError(f"state of parameter {k}: expected entries {sorted(expected)}, "
                                 f"got {sorted(entry)}")
            st = {}
            for name in names:
                label = f"state[{k}][{name!r}]"
                st[name] = (_eightbit.check_loaded(entry[name], p, label)
                            if isinstance(entry[name], QuantizedState)
                            else _state_array(entry[name], p, label))
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
                    _eightbit.assign(st, name, arr)
                new_state[i] = st
        for g, ng in zip(self.param_groups, new_groups):
            g.clear()
            g.update(ng)
        self.state, self._steps, self._step_count = new_state, new_steps, step_count
        self._owned_cache = None
        for gi in range(len(self.param_groups)):
            self._replan(gi)

    def save(self, path):
        """Writes :meth:`state_dict` to ``path`` (.npz), atomically (see :func:`save_state`)."""
        save_state(self.state_dict(), path)

    def load(self, path):
        """Reads a file written by :meth:`save` and loads it (:meth:`load_state_dict`)."""
        self.load_state_dict(load_state(path))


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
