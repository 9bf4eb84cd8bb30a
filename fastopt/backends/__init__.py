"""Which backends load on this machine, and which one a call runs on.

Every backend is a set of modules with the same internal functions
(``fastopt/backends/{numpy,numba,cpp,cuda}``), called only after
``fastopt._validate`` has checked the inputs.
"""
from __future__ import annotations

import importlib
import os
import time

BACKENDS = ("cpp", "numba", "numpy", "cuda")
_PACKAGES = {name: f"fastopt.backends.{name}" for name in ("numpy", "numba", "cpp", "cuda")}

_status: dict[str, str | None] = {}   # backend -> None (works) or why it does not
_failed_at: dict[str, float] = {}      # backend -> when a probe last failed
# A failed probe is tried again this many seconds later: an import can fail
# for a passing reason (a signal, a full disk, a half-finished install).
RETRY_SECONDS = 1.0
_modules: dict[tuple[str, str], object] = {}


def _probe(name: str) -> str | None:
    """None when backend ``name`` works here, else the reason it does not."""
    try:
        if name == "numpy":
            return None
        if name == "numba":
            import numba  # noqa: F401
            return None
        if name == "cpp":
            from fastopt import _core  # noqa: F401
            return None
        if name == "cuda":
            from fastopt.backends.cuda import loader
            return loader.unavailable_reason()
    except Exception as exc:  # the original import error is the useful message
        return f"{type(exc).__name__}: {exc}"
    return f"unknown backend {name!r}"


def unavailable_reason(name: str) -> str | None:
    why = _status.get(name, "")
    if why is None:
        return None
    if why == "" or time.monotonic() - _failed_at.get(name, 0.0) >= RETRY_SECONDS:
        try:
            why = _probe(name)
        except BaseException:   # interrupted: nothing learnt, probe again next time
            _status.pop(name, None)
            raise
        _status[name] = why
        if why is not None:
            _failed_at[name] = time.monotonic()
    return why


def available_backends() -> list[str]:
    """Backends that work on this machine, fastest CPU path first."""
    return [b for b in BACKENDS if unavailable_reason(b) is None]


def module(family: str, name: str):
    """The ``family`` module (``optim``, ``batchnorm``, ...) of backend ``name``."""
    key = (family, name)
    mod = _modules.get(key)
    if mod is None:
        why = unavailable_reason(name)
        if why is not None:
            raise RuntimeError(f"fastopt backend {name!r} is unavailable: {why}")
        mod = importlib.import_module(f"{_PACKAGES[name]}.{family}")
        _modules[key] = mod
    return mod


def choose(backend: str, on_gpu: bool) -> str:
    """Resolve ``backend=`` (and ``FASTOPT_BACKEND`` for "auto") to a backend name."""
    if backend == "auto":
        backend = os.environ.get("FASTOPT_BACKEND", "auto") or "auto"
        if backend == "auto":
            if on_gpu:
                return "cuda"
            for name in ("cpp", "numba", "numpy"):
                if unavailable_reason(name) is None:
                    return name
    if backend not in _PACKAGES:
        raise ValueError(f"backend must be one of 'auto', {', '.join(map(repr, BACKENDS))}; "
                         f"got {backend!r}")
    if (backend == "cuda") != on_gpu:
        where = "GPU (cupy / CUDA DLPack)" if on_gpu else "CPU (NumPy)"
        raise TypeError(f"backend {backend!r} cannot take {where} arrays")
    return backend
