"""``fastopt.info()`` and ``python -m fastopt info``: what works here and why not."""
from __future__ import annotations

import os
import platform

from fastopt import backends as _backends


def info() -> dict:
    """Backends, their status, and the CPU path in use.

    Returns a dict with ``backends`` (name -> "available" or the reason it is
    not), ``default`` (what ``backend="auto"`` picks for NumPy arrays), and,
    when the C++ extension loads, ``cpp`` (instruction set, threads).
    """
    status = {}
    for name in _backends.BACKENDS:
        why = _backends.unavailable_reason(name)
        status[name] = "available" if why is None else why
    out = {
        "version": __import__("fastopt").__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "backends": status,
        "default": _backends.choose("auto", on_gpu=False),
        "FASTOPT_BACKEND": os.environ.get("FASTOPT_BACKEND"),
    }
    if status["cpp"] == "available":
        from fastopt import _core
        from fastopt.backends.cpp.quantized import SIGNED, UNSIGNED
        out["cpp"] = dict(_core.build_info())
        # the 8-bit steps' table loops on this CPU (first moments' map, second's)
        out["cpp"]["loops_8bit"] = {"signed": dict(_core.loops_8bit(*SIGNED, True)),
                                    "unsigned": dict(_core.loops_8bit(*UNSIGNED, False))}
    if status["cuda"] == "available":
        from fastopt.backends.cuda import loader
        out["cuda"] = loader.describe()
    if status["numba"] == "available":
        import numba
        from fastopt.backends import numba as _numba  # sets the threading layer fastopt asks for
        out["numba"] = {"version": numba.__version__, "threads": numba.config.NUMBA_NUM_THREADS,
                        "threading_layer": numba.config.THREADING_LAYER}
    return out


def format_info(d: dict) -> str:
    lines = [f"fastopt {d['version']} on Python {d['python']} ({d['machine']})",
             f"auto backend for CPU arrays: {d['default']}"
             + (f"  (FASTOPT_BACKEND={d['FASTOPT_BACKEND']})" if d["FASTOPT_BACKEND"] else "")]
    lines.append("backends:")
    for name, state in d["backends"].items():
        lines.append(f"  {name:6s} {state}")
    if "cpp" in d:
        c = d["cpp"]
        lines.append(f"cpp: SIMD path {c['isa']}, {c['threads']} threads ({c['threading']})")
        if "loops_8bit" in c:
            q = c["loops_8bit"]["signed"]
            lines.append(f"cpp 8-bit state: dequantize {q['dequantize']}, code {q['code']}")
    if "cuda" in d:
        c = d["cuda"]
        lines.append(f"cuda: device {c['device']}, cupy {c['cupy']}, NVRTC {c['nvrtc']}, "
                     f"driver {c['driver']}")
    if "numba" in d:
        n = d["numba"]
        lines.append(f"numba: {n['version']}, {n['threads']} threads, "
                     f"threading layer {n['threading_layer']}")
    return "\n".join(lines)
