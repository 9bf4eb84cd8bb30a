"""Optimizer state dicts (torch's layout, NumPy arrays) and ``.npz`` state files.

``StateDicts`` is the part of :class:`fastopt.optim.Optimizer` that exports and
loads state; ``save_state`` / ``load_state`` write and read a state dict as an
``.npz`` file, atomically.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import tempfile
import tokenize
import zipfile
import zlib

import numpy as np

from fastopt._arrays import is_cupy
from fastopt._precision import HALF_DTYPES
from fastopt.optim import _eightbit, _mixed
from fastopt.quantized import BLOCK, QuantizedState

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
        out = {"state": state, "param_groups": groups, "step_count": int(self._step_count)}
        if _mixed.of(self) != _mixed.Settings() or any(p.dtype in HALF_DTYPES for p in self._params):
            out["mixed_precision"] = _mixed.describe(self)   # the types (arrays carry theirs)
        return out

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
            expected = (set(names) | ({"step"} if self._exports_step else set())
                        | ({_mixed.MASTER} if _mixed.has_master(self, p) else set()))
            if set(entry) != expected:
                raise ValueError(f"state of parameter {k}: expected entries {sorted(expected)}, "
                                 f"got {sorted(entry)}")
            st = {}
            for name in sorted(expected - {"step"}):
                label = f"state[{k}][{name!r}]"
                st[name] = (_eightbit.check_loaded(entry[name], p, label)
                            if isinstance(entry[name], QuantizedState)
                            else _state_array(entry[name], p, label,
                                              _mixed.expected_dtype(self, name, p)))
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
        for gi in range(len(self.param_groups)):
            self._replan(gi)

    def save(self, path):
        """Writes :meth:`state_dict` to ``path`` (.npz), atomically (see :func:`save_state`)."""
        save_state(self.state_dict(), path)

    def load(self, path):
        """Reads a file written by :meth:`save` and loads it (:meth:`load_state_dict`).
        State arrays whose ``.npy`` header does not fit this optimizer's parameters
        are refused before any data is read."""
        self.load_state_dict(load_state(path, [(p.shape, p.dtype) for p in self._params]))


def _plain_key(k):
    try:
        return int(k)
    except (TypeError, ValueError):
        return k


def _to_numpy(a):
    if is_cupy(a):
        return a.get()
    return np.array(a, copy=True)


# Steps beyond 2**53 cannot be counted in a double (the bias corrections'
# beta ** step): such a count comes from a corrupt or crafted file.
MAX_STEP = 2 ** 53


def _step_value(s, label):
    if hasattr(s, "item"):
        s = s.item()
    if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)):
        raise TypeError(f"{label} must be a number, got {type(s).__name__}")
    if s != s or not 0 <= s <= MAX_STEP or int(s) != s:
        raise ValueError(f"{label} must be an integer in [0, 2**53], got {s}")
    return int(s)


def _state_array(a, p, label, dtype=None):
    """``a`` as an array after checking its shape against parameter ``p`` and its dtype
    (``dtype``, default ``p``'s)."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):   # a torch tensor
        a = a.detach().cpu().numpy()
    if not isinstance(a, np.ndarray) and not is_cupy(a):
        raise TypeError(f"{label} must be an array, got {type(a).__name__}")
    dtype = p.dtype if dtype is None else dtype
    if a.dtype != dtype:
        raise TypeError(f"{label} has dtype {a.dtype} but must have dtype {dtype} "
                        f"(the parameter has dtype {p.dtype})")
    if a.shape != p.shape:
        raise ValueError(f"{label} has shape {a.shape} but the parameter has shape {p.shape}")
    return a   # copied into the optimizer's own state on commit


# ----------------------------------------------------------------- .npz files
def _write_npz(f, arrays):
    np.savez(f, **arrays)


def save_state(state_dict, path):
    """Writes an optimizer state dict to ``path`` as ``.npz``: arrays as
    ``state/<index>/<name>``, everything else (steps, hyper-parameters) as JSON
    in ``__meta__``. Nothing is lost (floats are written exactly).

    Atomic: the file is written to a temporary file in the same directory,
    fsync'ed, then moved over ``path`` with ``os.replace``; a crash mid-write
    leaves the old file intact. An existing file keeps its permission bits, a
    symlink keeps pointing where it did (its target is replaced), and the
    temporary files that killed saves left behind are removed."""
    arrays = {}
    meta_state = {}
    bfloat16 = []   # members holding bfloat16 values as uint16 bits
    for k, entry in state_dict["state"].items():
        scalars = {}
        for name, val in entry.items():
            if isinstance(val, (np.ndarray,)) or is_cupy(val) or hasattr(val, "__dlpack__"):
                arr = _to_numpy(val) if not hasattr(val, "detach") else val.detach().cpu().numpy()
                if arr.ndim == 0 and name == "step":
                    scalars[name] = arr.item()
                elif arr.dtype == HALF_DTYPES[1]:   # .npy has no bfloat16: its bits
                    arrays[f"state/{k}/{name}"] = arr.view(np.uint16)
                    bfloat16.append(f"state/{k}/{name}")
                else:
                    arrays[f"state/{k}/{name}"] = arr
            else:
                scalars[name] = val
        meta_state[str(k)] = scalars
    meta = {"format": "fastopt-optimizer-state-1", "state": meta_state,
            "param_groups": state_dict["param_groups"],
            "extra": {k: val for k, val in state_dict.items() if k not in ("state", "param_groups")},
            "bfloat16": bfloat16}
    arrays["__meta__"] = np.array(json.dumps(meta, default=_json_default))
    target = os.path.realpath(os.fspath(path))   # through symlinks: the link stays a link
    directory, base = os.path.split(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()   # what open(path, "w") would give
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temp_prefix(base), suffix=_TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)
    _remove_stale_temps(directory, base)


# Temporary files are named ".<name>.<host>.<pid>.<random>.fastopt-tmp": a later save
# removes those of a process of this host that no longer runs (killed mid-save),
# never one that another live process is still writing.
_TEMP_SUFFIX = ".fastopt-tmp"


def _temp_prefix(base, pid=None):
    host = socket.gethostname().replace(".", "_") or "host"
    return f".{base}.{host}.{os.getpid() if pid is None else pid}."


def _umask():
    try:   # Linux: read it, since setting it to read it races with other threads
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(directory, base):
    head = _temp_prefix(base, pid=0)[:-2]   # ".<name>.<host>."
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not (name.startswith(head) and name.endswith(_TEMP_SUFFIX)):
            continue
        parts = name[len(head):-len(_TEMP_SUFFIX)].split(".")   # "<pid>.<random>"
        if len(parts) != 2 or not parts[0].isdigit():
            continue   # another file's temp whose name starts like ours
        pid = int(parts[0])
        if pid == os.getpid() or _process_alive(pid):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"cannot store {type(o).__name__} in an optimizer state file")


def load_state(path, params=None):
    """Reads a state dict written by :func:`save_state` (arrays as NumPy).

    Every member's ``.npy`` header is read first and must be consistent with
    the member's size in the archive; with ``params`` (one ``(shape, dtype)``
    per parameter, in parameter order, as :meth:`StateDicts.load` passes) each
    state array must also have its parameter's shape and dtype. So a crafted
    file can make ``load`` allocate no more than the optimizer's own state
    before it is refused."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    try:
        return _load_state(path, size, params)
    except _DAMAGED as e:   # not a zip archive, cut short, a flipped bit...
        raise ValueError(f"{path} is not a readable fastopt optimizer state file: "
                         f"{type(e).__name__}: {e}") from e


# what zipfile and zlib raise on a damaged archive (a wrong compression method id
# is NotImplementedError, a cut member EOFError), and what numpy's .npy header parser
# lets through for a header with an unclosed bracket (tokenize.TokenError, SyntaxError)
_DAMAGED = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error,
            tokenize.TokenError, SyntaxError)


def _malformed(path, what):
    return ValueError(f"{path} is not a fastopt optimizer state file: {what}")


def _is_index(k):
    return isinstance(k, str) and k.isdigit()


def _check_meta(meta, path):
    """The structure that the reader below relies on, else ValueError."""
    state, groups = meta.get("state"), meta.get("param_groups")
    if not isinstance(state, dict) or not all(_is_index(k) and isinstance(v, dict)
                                              for k, v in state.items()):
        raise _malformed(path, "'state' must map parameter indices to dicts")
    if not isinstance(groups, list) or not all(isinstance(g, dict)
                                               and isinstance(g.get("params"), list)
                                               for g in groups):
        raise _malformed(path, "'param_groups' must be a list of dicts with 'params' lists")
    if not isinstance(meta.get("bfloat16", []), list) or not isinstance(meta.get("extra", {}),
                                                                          dict):
        raise _malformed(path, "'bfloat16' must be a list and 'extra' a dict")


def _load_state(path, size, params):
    with zipfile.ZipFile(path) as zf:
        names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        if "__meta__" not in names:
            raise ValueError(f"{path} is not a fastopt optimizer state file")
        meta_text = _read_member(zf, "__meta__", size, _meta_header)
        try:
            meta = json.loads(str(meta_text))
        except ValueError:
            raise ValueError(f"{path} is not a fastopt optimizer state file") from None
        if not isinstance(meta, dict) or meta.get("format") != "fastopt-optimizer-state-1":
            raise ValueError(f"{path} is not a fastopt optimizer state file")
        _check_meta(meta, path)
        expected = _expected_shapes(meta, params, path)
        state = {}
        for k, scalars in meta["state"].items():
            state[int(k)] = dict(scalars)
        bfloat16 = set(meta.get("bfloat16", ()))
        for name in names:
            if name.startswith("state/"):
                parts = name.split("/", 2)
                if len(parts) != 3 or not _is_index(parts[1]):
                    raise _malformed(path, f"unexpected member {name!r}")
                _, k, field = parts
                check = _state_header(expected, _plain_key(k), name, name in bfloat16)
                a = _read_member(zf, name, size, check)
                state.setdefault(int(k), {})[field] = a.view(HALF_DTYPES[1]) if name in bfloat16 else a
    groups = []
    for g in meta["param_groups"]:
        groups.append({k: tuple(val) if isinstance(val, list) and k != "params" else val
                       for k, val in g.items()})
    out = {"state": state, "param_groups": groups}
    out.update(meta.get("extra", {}))
    return out


def _expected_shapes(meta, params, path):
    """{saved parameter id: (shape, dtype)}, or None when nothing is expected."""
    if params is None:
        return None
    try:
        ids = [_plain_key(i) for g in meta["param_groups"] for i in g["params"]]
    except (KeyError, TypeError):
        raise ValueError(f"{path}: malformed parameter groups") from None
    if len(ids) != len(params):
        raise ValueError(f"{path} holds state for {len(ids)} parameters, this optimizer has "
                         f"{len(params)}")
    return {i: (tuple(shape), np.dtype(dtype)) for i, (shape, dtype) in zip(ids, params)}


def _meta_header(shape, dtype):
    if shape != () or dtype.kind != "U":
        raise ValueError("__meta__ must be a string")


def _state_header(expected, k, name, bfloat16=False):
    def check(shape, dtype):
        if bfloat16:
            if dtype != np.uint16:
                raise TypeError(f"{name} holds bfloat16 bits but has dtype {dtype}")
            dtype = HALF_DTYPES[1]
        if expected is None:
            return
        if k not in expected:
            raise ValueError(f"{name}: the file's parameter groups list no parameter {k!r}")
        want_shape, want_dtype = expected[k]
        if name.endswith(".codes"):      # an 8-bit state: one uint8 code per element
            want_dtype = np.dtype(np.uint8)
        elif name.endswith(".absmax"):   # and one float32 absmax per block
            want_dtype = np.dtype(np.float32)
            want_shape = (-(-int(np.prod(want_shape, dtype=np.int64)) // BLOCK),)
        # mixed precision: float32 state or master beside a 16-bit parameter (the exact
        # type is checked by load_state_dict)
        if dtype != want_dtype and not (want_dtype in HALF_DTYPES and dtype == np.float32):
            raise TypeError(f"{name} has dtype {dtype} but the parameter has dtype {want_dtype}")
        if shape != want_shape:
            raise ValueError(f"{name} has shape {shape} but the parameter has shape {want_shape}")
    return check


# deflate expands at most ~1032x: a member claiming more is not deflate output
_MAX_DEFLATE_RATIO = 1032


def _read_member(zf, name, archive_size, check):
    """Member ``name`` (.npy) of ``zf``, after its header passed ``check(shape, dtype)``
    and declared no more data than the member holds."""
    info = zf.getinfo(name + ".npy")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"{name}: unsupported .npy format version {version}")
        if dtype.hasobject:
            raise ValueError(f"{name}: object arrays are not state")
        check(shape, dtype)
        count = 1
        for d in shape:
            count *= int(d)
        nbytes = count * dtype.itemsize
        limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED
                                      else _MAX_DEFLATE_RATIO)
        if nbytes > info.file_size or info.file_size > limit or info.compress_size > archive_size:
            raise ValueError(f"{name}: its header declares {nbytes} bytes, more than the "
                             f"file holds")
    with zf.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)
