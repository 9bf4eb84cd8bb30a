"""The same-traffic twin (docs/notes-bench.md: the same-traffic twin): a trivial kernel moving
exactly the bytes of the kernel it stands in for, on fastopt's thread pool.

``_core.bench_twin(ro, rw, wo, mask_in, mask_out)`` (csrc/bench/twin.cpp)
streams every array once, all streams concurrently, vectorized for every
stream kind: ``s = sum(ro) + bit(mask_in)``; ``rw += 0 * s``; ``wo = s``;
``bit(mask_out) = s > 0``; with nothing written it returns ``sum(s)``. A
kernel that makes two passes (clipping: norm, then scale) has a twin of two
calls. Under the ``"fresh"`` output policy the twin allocates its outputs
on every call, as the kernel then does.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from fastopt import backends as _backends
from fastopt.bench.registry import Traffic


def twin_is_fused() -> bool:
    """True when the C++ twin is built (else a NumPy stand-in, more traffic)."""
    if _backends.unavailable_reason("cpp") is not None:
        return False
    from fastopt import _core
    return hasattr(_core, "bench_twin")


def _flat(arrays, keys):
    return [arrays[k].reshape(-1) for k in keys]


def _call(p: Traffic, arrays: dict, fresh: bool):
    from fastopt import _core
    ro, rw = _flat(arrays, p.ro), _flat(arrays, p.rw)
    mi = arrays[p.mask_in] if p.mask_in else None
    if not fresh:
        wo = _flat(arrays, p.wo)
        mo = arrays[p.mask_out] if p.mask_out else None
        return lambda: _core.bench_twin(ro, rw, wo, mi, mo)
    shapes = [(arrays[k].size, arrays[k].dtype) for k in p.wo]
    mshape = arrays[p.mask_out].shape if p.mask_out else None

    def run():
        wo = [np.empty(n, d) for n, d in shapes]
        mo = np.empty(mshape, np.uint8) if mshape else None
        _core.bench_twin(ro, rw, wo, mi, mo)
        return wo, mo
    return run


def _numpy_call(p: Traffic, arrays: dict, fresh: bool):
    """Without the C++ extension: one NumPy pass per array (more traffic than counted)."""
    ro, rw, wo = ([arrays[k] for k in keys] for keys in (p.ro, p.rw, p.wo))

    def run():
        s = ro[0].copy() if ro else np.zeros_like((rw or wo)[0])
        for a in ro[1:]:
            s += a
        for a in rw:
            a += 0 * s
        for a in wo:
            np.copyto(np.empty_like(a) if fresh else a, s)
        return s
    return run


def make_twin(passes: Sequence[Traffic], arrays: dict, fresh: bool = False
              ) -> Callable[[], object]:
    """The twin of ``passes`` on ``arrays`` (from a kernel's setup, which holds
    the twin's own output buffers under ``_twin_`` keys)."""
    for p in passes:
        for k in p.wo + ((p.mask_out,) if p.mask_out else ()):
            if k not in arrays:
                raise KeyError(k)
    make = _call if twin_is_fused() else _numpy_call
    calls = [make(p, arrays, fresh) for p in passes]
    if len(calls) == 1:
        return calls[0]

    def run():
        for c in calls:
            c()
    return run
