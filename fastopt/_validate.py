"""The one place every input is checked, before any backend runs.

docs/reference.md s.1: TypeError for a non-array or a wrong/mismatched dtype;
ValueError for a shape mismatch, a non-C-contiguous or read-only output, arrays
of one call that overlap in memory (list members too) and hyper-parameters out
of range. Nothing is written to any array before all checks pass.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from fastopt import _precision, _specs
from fastopt._arrays import as_array, is_cupy
from fastopt._precision import FLOAT_DTYPES, HALF_DTYPES, STORAGE_DTYPES  # noqa: F401

_F32 = np.dtype(np.float32)


def kernel_dtypes(spec):
    """The dtypes ``spec``'s kernel takes for its arrays: the 16-bit types too for batch
    norm and dropout (``spec.half``) and the optimizer steps (mixed precision roles)."""
    return STORAGE_DTYPES if spec.half or any(r.precision for r in spec.arrays) else FLOAT_DTYPES


def stat_roles(spec):
    """Names of ``spec``'s arrays that are float32 when the call's dtype is 16-bit."""
    return frozenset(r.name for r in spec.arrays if r.dtype == "stat")


try:  # a native scan of data pointers: the Python fallback costs ~1 us per array
    from fastopt._core import first_overlap as _native_first_overlap
except ImportError:  # pragma: no cover - exercised when the extension is missing
    _native_first_overlap = None


class Checked:
    """Validated arrays of one call, always as lists (a single array is a list of one)."""

    __slots__ = ("lists", "is_list", "on_gpu", "dtype")

    def __init__(self, lists, is_list, on_gpu, dtype):
        self.lists, self.is_list, self.on_gpu, self.dtype = lists, is_list, on_gpu, dtype

    def __getitem__(self, name):
        return self.lists[name]


def _address(a) -> int:
    if is_cupy(a):
        return a.data.ptr
    return a.__array_interface__["data"][0]


def _python_first_overlap(arrays):
    spans = sorted((_address(a), _address(a) + a.nbytes, i) for i, a in enumerate(arrays) if a.nbytes)
    for (s0, e0, i0), (s1, e1, i1) in zip(spans, spans[1:]):
        if s1 < e0:
            return (min(i0, i1), max(i0, i1))
    return None


def first_overlap(arrays):
    """Indices (i, j) of two arrays sharing memory, or None."""
    if _native_first_overlap is not None and not (arrays and is_cupy(arrays[0])):
        return _native_first_overlap(arrays)
    return _python_first_overlap(arrays)


class _CallState:
    """What the arrays of one call must share: device kind, GPU id and dtype (with
    mixed precision: the param's type P and the one state type S)."""

    __slots__ = ("first", "dtypes", "dtype", "on_gpu", "device", "state", "state_label",
                 "stats")

    def __init__(self, first, dtypes, stats=frozenset()):
        self.first, self.dtypes, self.stats = first, dtypes, stats
        self.dtype = self.on_gpu = self.device = self.state = self.state_label = None

    def check(self, a, label, is_output, precision=""):
        """One array of the call: device, dtype, contiguity, writeability."""
        first = self.first
        gpu = is_cupy(a)
        if self.on_gpu is None:
            self.on_gpu = gpu
        elif gpu != self.on_gpu:
            raise TypeError(f"{label} is a {'GPU' if gpu else 'CPU'} array but "
                            f"{first} is not: all arrays of a call live on one device")
        if gpu:
            dev = a.device.id
            if self.device is None:
                self.device = dev
            elif dev != self.device:
                raise ValueError(f"{label} is on GPU {dev} but {first} is on GPU {self.device}: "
                                 f"all arrays of a call live on one device")
        if self.dtype is None:
            if a.dtype not in self.dtypes:
                native = a.dtype.newbyteorder("=")
                if native != a.dtype and native in self.dtypes:
                    raise TypeError(f"{label} has dtype {a.dtype.str}: {native} in non-native "
                                    f"byte order. fastopt never copies: pass "
                                    f"a.astype(a.dtype.newbyteorder('=')) yourself")
                raise TypeError(f"{label} has dtype {a.dtype}; fastopt takes "
                                f"{' or '.join(str(d) for d in self.dtypes)}")
            self.dtype = a.dtype
        elif label in self.stats and self.dtype in HALF_DTYPES:
            if a.dtype != _F32:
                raise TypeError(f"{label} has dtype {a.dtype} but must be float32: {first} has "
                                f"dtype {self.dtype}, whose parameters and statistics are float32")
        elif precision and precision != "param":
            _precision.check_dtype(self, a, label, precision)
        elif a.dtype != self.dtype:
            raise TypeError(f"{label} has dtype {a.dtype} but {first} has dtype {self.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{label} is not C-contiguous (fastopt updates memory in place "
                             f"and never copies: pass np.ascontiguousarray(...) yourself)")
        # cupy arrays have no read-only flag (always writeable)
        if is_output and not getattr(a.flags, "writeable", True):
            raise ValueError(f"{label} is read-only but is updated in place")


def _refuse_overlap(flat, labels):
    hit = first_overlap(flat)
    if hit is not None:
        i, j = hit
        raise ValueError(f"{labels[i]} and {labels[j]} overlap in memory; every array of a "
                         f"call must be distinct")


_GPU_VALID: dict = {}      # key of a validated all-cupy call -> its dtype
_GPU_VALID_SIZE = 4096


def _gpu_lists_key(named, dtypes):
    """The key of a list-form call whose members are all cupy arrays, or None.

    Everything the checks read from a cupy array is in it: data pointer (with
    UVA it also names the device), shape, strides (contiguity, span) and dtype;
    cupy arrays are always writeable. So a call with an equal key passes the
    checks exactly as the first one did.
    """
    key = [dtypes]
    for name, value, is_output, *_ in named:
        if value is None:
            key.append(None)
            continue
        if type(value) is not list and type(value) is not tuple:
            return None
        try:
            key.append((name, is_output, tuple((a.data.ptr, a.shape, a.strides, a.dtype)
                                               for a in value)))
        except AttributeError:
            return None
        if value and not is_cupy(value[0]):
            return None
    return tuple(key)


def arrays(*named, dtypes=FLOAT_DTYPES):
    """Checks the arrays of one call.

    ``named`` holds ``(name, value, is_output)`` triples, or with a fourth
    entry, the role's mixed-precision kind (``fastopt._specs.Role.precision``);
    the first is the reference for form (array or list), count, dtype and
    shape. ``None`` values are absent optional arrays. Returns a :class:`Checked`.

    Lists of cupy arrays are checked once per distinct set of pointers,
    shapes, strides and dtypes (the key of the CUDA pointer table): a GPU
    training loop's later steps cost a key build and a lookup, not the
    per-array checks and the overlap sort.
    """
    ref = named[0][1]
    key = None
    if type(ref) is list and ref and is_cupy(ref[0]):
        key = _gpu_lists_key(named, dtypes)
        dtype = _GPU_VALID.get(key) if key is not None else None
        if dtype is not None:
            return Checked({name: None if value is None else list(value)
                            for name, value, *_ in named}, True, True, dtype)
    checked = _arrays(named, dtypes)
    if key is not None and all(is_cupy(a) for name in checked.lists if checked.lists[name]
                               for a in checked.lists[name]):
        if len(_GPU_VALID) >= _GPU_VALID_SIZE:
            _GPU_VALID.clear()
        _GPU_VALID[key] = checked.dtype
    return checked


def _arrays(named, dtypes):
    ref_name, ref = named[0][:2]
    is_list = isinstance(ref, (list, tuple))
    count = len(ref) if is_list else 1
    lists = {}
    flat, labels = [], []
    ref_shapes = None
    state = _CallState(ref_name, dtypes)
    for name, value, is_output, *precision in named:
        if value is None:
            lists[name] = None
            continue
        if is_list:
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"{name} must be a list of arrays like {ref_name}, got {type(value).__name__}")
            if len(value) != count:
                raise ValueError(f"{name} has {len(value)} arrays but {ref_name} has {count}")
            members = [as_array(x, f"{name}[{i}]") for i, x in enumerate(value)]
        else:
            if isinstance(value, (list, tuple)):
                raise TypeError(f"{name} is a list but {ref_name} is a single array")
            members = [as_array(value, name)]
        for i, a in enumerate(members):
            state.check(a, f"{name}[{i}]" if is_list else name, is_output, *precision)
        if ref_shapes is None:
            ref_shapes = [a.shape for a in members]
        else:
            for i, a in enumerate(members):
                if a.shape != ref_shapes[i]:
                    label = f"[{i}]" if is_list else ""
                    raise ValueError(f"{name}{label} has shape {a.shape} but {ref_name}{label} "
                                     f"has shape {ref_shapes[i]}")
        lists[name] = members
        flat.extend(members)
        labels.extend(f"{name}[{i}]" if is_list else name for i in range(count))
    _refuse_overlap(flat, labels)
    return Checked(lists, is_list, bool(state.on_gpu), state.dtype)


def shaped_arrays(*named, dtypes=FLOAT_DTYPES, stats=frozenset()):
    """Checks the arrays of a call whose arrays have different shapes.

    ``named`` holds ``(name, value, is_output, shape)`` tuples: ``shape`` is the
    exact shape required (a tuple), or None for any. ``None`` values are absent
    optional arrays. All arrays share one dtype (the first one's; the arrays
    named in ``stats`` are float32 instead when it is 16-bit) and one
    device, are C-contiguous, outputs are writeable, and no two overlap.
    Returns a :class:`Checked` whose entries are single arrays (or None).
    """
    arrays_, labels = {}, []
    state = _CallState(named[0][0], dtypes, stats)
    for name, value, is_output, shape in named:
        if value is None:
            arrays_[name] = None
            continue
        a = as_array(value, name)
        state.check(a, name, is_output)
        if shape is not None and a.shape != shape:
            raise ValueError(f"{name} has shape {tuple(a.shape)} but must have shape {tuple(shape)}")
        arrays_[name] = a
        labels.append(name)
    _refuse_overlap([arrays_[n] for n in labels], labels)
    return Checked(arrays_, False, bool(state.on_gpu), state.dtype)


try:
    from fastopt._core import empty as _cached_empty
except ImportError:  # pragma: no cover - extension not built
    _cached_empty = None


def compute_dtype(dtype):
    """The dtype of the parameters and statistics that go with arrays of ``dtype``:
    float32 for 16-bit types (their compute type), else ``dtype`` itself."""
    return _F32 if dtype in HALF_DTYPES else np.dtype(dtype)


def empty_like(ref, shape=None, dtype=None):
    """A new uninitialised C-contiguous array on ``ref``'s device with its dtype
    (``shape`` and ``dtype`` default to ``ref``'s): the outputs a function allocates.

    A GPU array is allocated inside ``with ref.device``: cupy allocates on the
    *current* device, which need not be ``ref``'s (a kernel writing another
    GPU's memory faults and poisons the CUDA context)."""
    shape = ref.shape if shape is None else shape
    dtype = ref.dtype if dtype is None else dtype
    if is_cupy(ref):
        import cupy
        with ref.device:
            return cupy.empty(shape, dtype=dtype)
    if _cached_empty is not None:  # large outputs reuse freed buffers (csrc/cpu/buffers.h)
        return _cached_empty(shape, dtype)
    return np.empty(shape, dtype=dtype)


def full_like(ref, shape=None, value=0.0, dtype=None):
    """Like :func:`empty_like`, filled with ``value`` (on ``ref``'s device)."""
    out = empty_like(ref, shape, dtype)
    if is_cupy(ref):
        with ref.device:   # the fill is a kernel launched on the current device
            out.fill(value)
    else:
        out[...] = value
    return out


def zeros_like(ref, shape=None, dtype=None):
    return full_like(ref, shape, 0.0, dtype)


def flag(name, value):
    if value is not True and value is not False and not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def real(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"Invalid {name} value: nan")
    return value


def integer(name, value):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


def backend(value):
    if not isinstance(value, str):
        raise TypeError(f"backend must be a str, got {type(value).__name__}")
    return value


def scale(name, value):
    """A loss scale: a real (its range checked by :func:`check`) or a 1-element float32
    array, returned as it is (``_precision.amp`` checks its device and reads a CPU one)."""
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return real(name, value)
    if not (isinstance(value, np.ndarray) or is_cupy(value) or hasattr(value, "__dlpack__")):
        raise TypeError(f"{name} must be a real number or a 1-element float32 array, got "
                        f"{type(value).__name__}")
    a = as_array(value, name)
    if a.dtype != _F32 or a.size != 1:
        raise TypeError(f"{name} must be a real number or a 1-element float32 array, got an "
                        f"array of dtype {a.dtype} and {a.size} elements")
    return a


_CONVERT = {"real": real, "int": integer, "bool": flag, "scale": scale,
            "str": lambda name, value: backend(value), "shape": lambda name, value: shape(value)}


def check(kind, name, value):
    """``value`` as a parameter of ``kind`` (fastopt._specs): converted (float, int,
    bool, tuple), else TypeError for its type or ValueError for its range."""
    if value is None and kind.optional:
        return None
    value = _CONVERT[kind.type](name, value)
    if kind.type in ("real", "int", "scale") and type(value) in (float, int) and not kind.contains(value):
        raise ValueError(f"Invalid {name} value: {value} ({kind.rule})")
    return value


def at_least(name, value):
    return check(_specs.NON_NEGATIVE, name, value)


def unit_interval(name, value, *, closed_right=False):
    """0 <= value < 1 (or <= 1 when closed_right)."""
    return check(_specs.CLOSED_UNIT if closed_right else _specs.UNIT, name, value)


def finite(name, value):
    return check(_specs.FINITE, name, value)


def positive(name, value):
    """value > 0 (e.g. batch norm's eps)."""
    return check(_specs.POSITIVE, name, value)


def step(value):
    return check(_specs.STEP, "step", value)


def seed(value):
    """A seed of the counter-based generators: an int in [0, 2**64)."""
    return check(_specs.SEED, "seed", value)


def hypers(spec, values):
    """Checks ``spec``'s hyper-parameters (table order) in ``values`` (name -> value
    passed, e.g. the entry point's ``locals()``); returns name -> converted value."""
    return {h.name: check(h.kind, h.name, values[h.name]) for h in spec.hypers}


_compiled = {}


def _holds(expr, values):
    code = _compiled.get(expr)
    if code is None:
        code = _compiled[expr] = compile(expr, "<fastopt._specs rule>", "eval")
    return eval(code, {}, values)


def rules(spec, h, values):
    """The cross-parameter rules, then the arrays options make required (ValueError).
    ``h``: the checked hyper-parameters; ``values``: everything passed."""
    scope = dict(values, **h)
    for rule in spec.rules:
        if not _holds(rule.expr, scope):
            raise ValueError(rule.message)
    for role in spec.arrays:
        if role.when is not None and values[role.name] is None and _holds(role.when.expr, scope):
            raise ValueError(role.missing)


def group(spec, g):
    """Checks a parameter group of an optimizer class on ``spec``'s kernel: its
    options (``lr`` may be a schedule: any callable; ``per_call`` ones only when
    present, as in torch's groups), Adam's ``betas`` pair (torch's messages) and the
    class's extra options, then the rules."""
    h = {}
    for hp in spec.hypers + spec.group_options:
        if hp.name in ("beta1", "beta2") and "betas" in g:   # torch's classes pair them
            if hp.name == "beta1":
                _betas(spec, g["betas"])
        elif (not hp.per_call or hp.name in g) and not (hp.name == "lr" and callable(g["lr"])):
            h[hp.name] = check(hp.kind, hp.name, g[hp.name])
    for rule in spec.rules:
        if not rule.per_call and not _holds(rule.expr, h):
            raise ValueError(rule.message)


def _betas(spec, betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"Invalid betas value: {betas!r} (must be a pair)")
    for i, b in enumerate(betas):
        b = real(f"betas[{i}]", b)
        if not spec.hyper(f"beta{i + 1}").kind.contains(b):
            raise ValueError(f"Invalid beta parameter at index {i}: {b}")


def _is_quantized(value):
    if isinstance(value, (list, tuple)):
        return any(type(x).__name__ == "QuantizedState" for x in value)
    return type(value).__name__ == "QuantizedState"


def call(spec, values):
    """The whole check of one call of a kernel whose arrays all share one shape:
    arrays, hyper-parameters, rules. Returns ``(checked, h)``; in ``checked`` an
    optional array whose option is off is None (passed but unused)."""
    if any(_is_quantized(values[r.name]) for r in spec.arrays if r.signed is not None):
        from fastopt._quantized_validate import call as quantized_call
        return quantized_call(spec, values)
    mixed = any(r.precision for r in spec.arrays)
    c = arrays(*[(r.name, values[r.name], r.written is True, r.precision) for r in spec.arrays
                 if r.dtype == "float"], dtypes=kernel_dtypes(spec))
    h = hypers(spec, values)
    rules(spec, h, values)
    if mixed:
        _precision.amp(c, h, values)
    scope = None
    for role in spec.arrays:
        if role.when is not None and c.lists[role.name] is not None:
            scope = scope or dict(values, **h)
            if not _holds(role.when.expr, scope):
                c.lists[role.name] = None
    return c, h


def shape(value):
    """A shape: a non-negative int or a sequence of them. Returns a tuple."""
    dims = (value,) if not isinstance(value, (tuple, list)) else tuple(value)
    out = []
    for d in dims:
        if isinstance(d, (bool, np.bool_)):
            raise TypeError("shape entries must be ints, got bool")
        try:
            d = operator.index(d)
        except TypeError:
            raise TypeError(f"shape entries must be ints, got {type(d).__name__}") from None
        if d < 0:
            raise ValueError(f"Invalid shape {tuple(dims)}: negative dimension")
        out.append(d)
    return tuple(out)


def bit_mask(name, value, n, on_gpu):
    """A bit-packed mask of n elements: uint8, 1-D, C-contiguous, ceil(n/8) bytes, on
    the same device as the data."""
    a = as_array(value, name)
    if is_cupy(a) != on_gpu:
        raise TypeError(f"{name} is a {'GPU' if is_cupy(a) else 'CPU'} array but the data is not: "
                        f"all arrays of a call live on one device")
    if a.dtype != np.uint8:
        raise TypeError(f"{name} has dtype {a.dtype}; a dropout mask is bit-packed uint8")
    if a.ndim != 1:   # np.packbits along rows pads each row: not fastopt's C-order layout
        raise ValueError(f"{name} must be 1-D (ceil(n/8) bytes, element i in bit i % 8 of "
                         f"byte i // 8), got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} is not C-contiguous")
    expected = (n + 7) // 8
    if a.size != expected:
        raise ValueError(f"{name} has {a.size} bytes but {n} elements need ceil({n}/8) = "
                         f"{expected}")
    return a
