"""Runs the registry over sizes and variants; formats the table, JSON and plot."""
from __future__ import annotations

import datetime
import gc
import json
import math
import os
import platform
import sys
import textwrap
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from fastopt import backends as _backends
from fastopt.bench import kernels as K
from fastopt.bench import registry
from fastopt.bench.timer import interleaved

DEFAULT_SIZES = (1_000, 100_000, 1_000_000, 10_000_000, 30_000_000)
QUICK_SIZES = (100_000, 10_000_000)
COPY_SIZE = 25_000_000          # float32 elements per array: 100 MB, well past a 32 MiB L3
QUICK_COPY_SIZE = 10_000_000
TORCH_RUNNERS = ("torch", "torch-raw")
# Untimed pause before each sample of a cell that has torch in it: torch's
# OpenMP threads keep spinning after its parallel regions, and the variant
# timed right after torch paid 20-30% for it (Adam 1e7 here); 5 ms was not
# enough, 20 ms was.
TORCH_GAP = 0.02
WIDTH = 80


# --------------------------------------------------------------------------- measurement

def copy_bandwidth(n: int = COPY_SIZE, *, repeat: int = 7, min_time: float = 0.01,
                   seed: int = 0) -> dict:
    """The machine's copy bandwidth, in GB/s counted as read + write (2 x bytes).

    Two copies are timed interleaved on float32 arrays of ``n`` elements: a
    copy on fastopt's thread pool (``_core.bench_twin``, how the kernels run)
    and ``np.copyto`` (one thread). ``gbps`` is the faster; a copy into a
    separate array also pays a read-for-ownership that this count ignores, so
    a kernel's same-traffic twin may exceed it (docs/notes-bench.md: the same-traffic twin).
    """
    rng = np.random.default_rng(seed)
    src = rng.standard_normal(n, dtype=np.float32)
    dst = rng.standard_normal(n, dtype=np.float32)
    variants = {"numpy_copyto": lambda: np.copyto(dst, src)}
    if K.twin_is_fused():
        from fastopt import _core
        variants["pool_copy"] = lambda: _core.bench_twin([src], [], [dst])
    t = interleaved(variants, repeat=repeat, min_time=min_time)
    out = {"n": n, "dtype": "float32", "bytes_per_element": 8}
    for name, timing in t.items():
        out[f"{name}_gbps"] = 8 * n / timing.median / 1e9
    out["gbps"] = max(v for k, v in out.items() if k.endswith("_gbps"))
    return out


def _share(a, b):
    return a / b if (a and b and math.isfinite(a) and math.isfinite(b)) else None


def run_cell(kernel: K.Kernel, n: int, dtype, runners: Sequence[str], *, repeat: int,
             min_time: float, seed: int = 0, notes: Optional[list] = None,
             outputs: str = "cached") -> List[dict]:
    """Times every available runner on one (kernel, size, dtype) cell, interleaved,
    every runner under the output policy ``outputs`` (registry.py)."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng([seed, n, dtype.itemsize])
    arrays = kernel.setup(n, dtype, rng)
    variants = {}
    for r in runners:
        why = kernel.unavailable(r)
        if r in K.BASELINES and r not in kernel.baselines and r != "twin":
            continue  # this kernel has no such baseline (torch-raw exists for Adam only)
        if why is None:
            try:
                fn = kernel.make(r, arrays, outputs)
                fn()  # a first call: a runner that fails here is dropped with a note
                variants[r] = fn
            except Exception as exc:  # e.g. a baseline this torch/NumPy lacks: say so, go on
                why = f"failed: {type(exc).__name__}: {exc}"
        if why is not None and notes is not None:
            note = f"{kernel.name}: {r} skipped: {why}"
            if note not in notes:
                notes.append(note)
    elements = int(arrays[next(iter(arrays))].size)
    if kernel.family == "batchnorm":
        elements = int(arrays["x"].size)
    gap = TORCH_GAP if any(r in TORCH_RUNNERS for r in variants) else 0.0
    timings = interleaved(variants, repeat=repeat, min_time=min_time, gap=gap)
    bpe = kernel.bytes_per_element(dtype)
    rows = []
    for r, t in timings.items():
        rows.append({"kernel": kernel.name, "family": kernel.family, "dtype": dtype.name,
                     "size": n, "n": elements, "runner": r, "bytes_per_element": bpe,
                     "outputs": outputs if kernel.allocates else None,
                     **t.as_dict(), "gbps": bpe * elements / t.median / 1e9})
    del arrays, variants
    gc.collect()
    return rows


def _derive(rows: List[dict], copy_gbps: Optional[float]) -> None:
    """Adds share of copy bandwidth, of the twin, and speed-ups, per cell."""
    cells: Dict[tuple, Dict[str, dict]] = {}
    for r in rows:
        cells.setdefault((r["kernel"], r["dtype"], r["size"]), {})[r["runner"]] = r
    for cell in cells.values():
        twin = cell.get("twin")
        plain = cell.get("numpy-plain")
        torches = [cell[t]["median_s"] for t in TORCH_RUNNERS if t in cell]
        best_torch = min(torches) if torches else None
        for r in cell.values():
            r["share_copy"] = _share(r["gbps"], copy_gbps)
            r["share_twin"] = _share(twin["median_s"], r["median_s"]) if twin else None
            r["speedup_numpy_plain"] = _share(plain["median_s"], r["median_s"]) if plain else None
            r["speedup_torch"] = _share(best_torch, r["median_s"])


def environment() -> dict:
    import fastopt
    env = {"fastopt": fastopt.__version__, "python": platform.python_version(),
           "numpy": np.__version__, "machine": platform.machine(),
           "cpus": os.cpu_count(), "platform": platform.platform(),
           "backends": fastopt.info()["backends"],
           "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    env["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = fastopt.info()
    if "cpp" in info:
        env["cpp"] = {k: str(v) for k, v in info["cpp"].items()}
    if "numba" in info:
        env["numba"] = {k: str(v) for k, v in info["numba"].items()}
    if K.torch_unavailable() is None:
        import torch
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    return env


def default_runners() -> List[str]:
    return list(K.RUNNERS)


def run_suite(kernel_names: Optional[Iterable[str]] = None, sizes: Sequence[int] = DEFAULT_SIZES,
              dtypes: Sequence = ("float32",), runners: Optional[Sequence[str]] = None, *,
              repeat: int = 7, min_time: float = 0.01, copy_n: int = COPY_SIZE,
              progress: bool = True, seed: int = 0, outputs: str = "cached") -> dict:
    """Measures copy bandwidth, then every kernel x size x dtype cell; returns the report.

    ``runners`` are fastopt backends and baselines (``kernels.RUNNERS``); the
    twin is always timed, since every share is taken against it. torch, when
    installed, is imported before anything is timed (docs/notes-bench.md: measure
    fastopt with torch in the same process). ``outputs``: the output policy
    of kernels that return new arrays; ``"fresh"`` needs fastopt's buffer
    cache off in this process (``FASTOPT_BUFFER_CACHE_MB=0`` before the first
    kernel call), else a note says that fastopt's outputs were cached.
    """
    if outputs not in K.OUTPUT_POLICIES:
        raise ValueError(f"outputs is one of {K.OUTPUT_POLICIES}, got {outputs!r}")
    names = list(kernel_names) if kernel_names else list(K.KERNELS)
    runners = list(runners) if runners else default_runners()
    unknown = [r for r in runners if r not in K.RUNNERS]
    if unknown:
        raise ValueError(f"unknown backend/baseline {unknown}; known: {', '.join(K.RUNNERS)}")
    if "twin" not in runners:
        runners.append("twin")
    if K.torch_unavailable() is None:
        import torch  # noqa: F401  (loaded up front: its thread pool is part of the setting)
    notes: List[str] = []
    if not K.twin_is_fused():
        notes.append("twin: fastopt._core.bench_twin unavailable (C++ extension not built): "
                     "NumPy twin, one pass per array, more traffic than counted")
    if outputs == "fresh" and not registry.fastopt_fresh_outputs():
        notes.append("outputs fresh, but fastopt's buffer cache is on in this process "
                     "(set FASTOPT_BUFFER_CACHE_MB=0): fastopt's outputs were cached")
    skipped: List[dict] = []
    todo = []
    for name in names:
        k = K.get(name)
        for dt in dtypes:
            for n in sizes:
                todo.append((k, n, np.dtype(dt)))
    for r in runners:
        if r in K.BACKENDS and _backends.unavailable_reason(r):
            notes.append(f"{r}: unavailable: {_backends.unavailable_reason(r)}")
        if r in TORCH_RUNNERS and K.torch_unavailable():
            notes.append(f"{r}: {K.torch_unavailable()}")
    notes = list(dict.fromkeys(notes))
    copy = copy_bandwidth(copy_n, repeat=repeat, min_time=min_time)
    bar = _progress(len(todo), progress)
    rows: List[dict] = []
    for k, n, dt in todo:
        if bar is not None:
            bar.set_description(f"{k.name} {dt.name} {_fmt_size(n)}")
        active = [r for r in runners if not (r in K.BACKENDS and _backends.unavailable_reason(r))
                  and not (r in TORCH_RUNNERS and K.torch_unavailable())]
        rows.extend(run_cell(k, n, dt, active, repeat=repeat, min_time=min_time, seed=seed,
                             notes=notes, outputs=outputs))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    _derive(rows, copy["gbps"])
    return {"environment": environment(), "copy_bandwidth": copy,
            "config": {"kernels": names, "sizes": list(sizes), "torch_gap_s": TORCH_GAP,
                       "dtypes": [np.dtype(d).name for d in dtypes], "runners": runners,
                       "repeat": repeat, "min_time_s": min_time, "outputs": outputs},
            "results": rows, "skipped": skipped, "notes": notes}


def _progress(total, enabled):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=sys.stderr, unit="cell", leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------- output

def _fmt_size(n: int) -> str:
    if n < 10_000:
        return str(n)
    e = int(math.floor(math.log10(n)))
    m = n / 10 ** e
    if m >= 9.95:  # 9994240 -> 1e7, not 10e6
        e, m = e + 1, m / 10
    return f"{m:.0f}e{e}" if abs(m - round(m)) < 0.05 else f"{m:.1f}e{e}"[:5]


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= scale or unit == "ns":
            v = s / scale
            return f"{v:.3g}{unit}" if v < 999.5 else f"{v:.0f}{unit}"
    return "-"


def _fmt_pct(x) -> str:
    if x is None:
        return "-"
    v = 100 * x
    return f"{v:.0f}%" if v < 9999.5 else f"{v:.0e}"


def _fmt_gbps(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x:.1f}" if x < 999.95 else (f"{x:.0f}" if x < 999_999.5 else f"{x:.0e}")


def _fmt_x(x) -> str:
    if x is None:
        return "-"
    if x < 9.995:
        return f"{x:.2f}"
    if x < 99.95:
        return f"{x:.1f}"
    return f"{x:.0f}" if x < 999_999.5 else f"{x:.0e}"


_COLS = [("kernel", 13, "<"), ("dt", 3, "<"), ("size", 5, ">"), ("runner", 11, "<"),
         ("median", 8, ">"), ("GB/s", 6, ">"), ("%copy", 5, ">"), ("%twin", 5, ">"),
         ("x-plain", 7, ">"), ("x-torch", 7, ">")]


def _line(values) -> str:
    return " ".join(f"{v:{a}{w}}"[:w] for v, (_, w, a) in zip(values, _COLS)).rstrip()


def format_table(report: dict) -> str:
    """The report as one table that fits in 80 columns, with its header and notes."""
    env, copy = report["environment"], report["copy_bandwidth"]
    wrap = lambda s: textwrap.wrap(s, WIDTH, subsequent_indent="  ")  # noqa: E731
    out = []
    cpu = env.get("cpu", env.get("machine", "?"))
    cpp = env.get("cpp")
    head = f"fastopt {env['fastopt']} bench on {cpu}, {env.get('cpus')} CPUs"
    if cpp:
        head += f"; cpp {cpp.get('isa')}, {cpp.get('threads')} threads"
    nb = env.get("numba")
    if nb and nb.get("threading_layer"):
        head += f"; numba {nb['threading_layer']} layer"
    if "torch" in env:
        head += f"; torch {env['torch']} ({env.get('torch_threads')} threads)"
    out += wrap(head)
    extra = " ".join(f"{k[:-5].replace('_', ' ')} {v:.1f}" for k, v in copy.items()
                     if k.endswith("_gbps"))
    out += wrap(f"copy bandwidth {copy['gbps']:.1f} GB/s ({extra}; {_fmt_size(copy['n'])} "
                f"float32, read + write counted)")
    cfg = report["config"]
    out += wrap(f"median of {cfg['repeat']} interleaved samples of >= "
                f"{cfg['min_time_s'] * 1e3:g} ms each (a {TORCH_GAP * 1e3:g} ms pause before each "
                f"where torch runs); GB/s = bytes the kernel must move / time; outputs "
                f"{cfg.get('outputs', 'cached')} (batch norm, dropout)")
    out.append("")
    out.append(_line([c[0] for c in _COLS]))
    out.append("-" * len(_line([c[0] for c in _COLS])))
    last_k = last_s = None
    for r in report["results"]:
        k = (r["kernel"], r["dtype"])
        dt = {"float32": "f32", "float64": "f64"}.get(r["dtype"], r["dtype"][:3])
        new_k = k != last_k
        new_s = new_k or r["size"] != last_s
        if new_k and last_k is not None:
            out.append("")
        out.append(_line([r["kernel"] if new_k else "", dt if new_k else "",
                          _fmt_size(r["n"]) if new_s else "", r["runner"],
                          _fmt_time(r["median_s"]), _fmt_gbps(r["gbps"]),
                          _fmt_pct(r["share_copy"]), _fmt_pct(r["share_twin"]),
                          _fmt_x(r["speedup_numpy_plain"]), _fmt_x(r["speedup_torch"])]))
        last_k, last_s = k, r["size"]
    out.append("")
    dt0 = report["results"][0]["dtype"] if report["results"] else "float32"
    bpe = {r["kernel"]: r["bytes_per_element"] for r in report["results"] if r["dtype"] == dt0}
    out += wrap("%copy: share of the copy bandwidth; %twin: share of the same-traffic twin "
                "(twin time / time); x-plain, x-torch: speed-up over lecture-notes NumPy and "
                "over the fastest torch variant of the row's cell."
                + (" Bytes per element: " + ", ".join(f"{k} {v:g}" for k, v in bpe.items())
                   + f" ({dt0})." if bpe else ""))
    for s in report["skipped"]:
        out += wrap(f"skipped {s['kernel']}: {s['reason']}")
    for note in report["notes"]:
        out += wrap(f"note: {note}")
    return "\n".join(out)


def save_json(report: dict, path) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=str)


def plot(report: dict, path) -> None:
    """GB/s against size, one panel per kernel and dtype, one line per runner,
    with the copy bandwidth as a dashed line. Needs matplotlib (extra ``bench``)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install 'fastopt[bench]' "
                           f"({exc})") from None
    panels: Dict[tuple, Dict[str, list]] = {}
    for r in report["results"]:
        panels.setdefault((r["kernel"], r["dtype"]), {}).setdefault(r["runner"], []).append(
            (r["n"], r["gbps"]))
    if not panels:
        raise RuntimeError("nothing to plot: no results")
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3.6 * nrows), squeeze=False)
    runners = list(dict.fromkeys(r["runner"] for r in report["results"]))
    colors = {name: f"C{i % 10}" for i, name in enumerate(runners)}
    bw = report["copy_bandwidth"]["gbps"]
    for ax, ((kname, dt), lines) in zip(axes.flat, panels.items()):
        for runner, pts in lines.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3,
                    color=colors[runner], label=runner,
                    linestyle="--" if runner == "twin" else "-")
        ax.axhline(bw, color="k", linestyle=":", linewidth=1, label=f"copy {bw:.0f} GB/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{kname} ({dt})")
        ax.set_xlabel("elements")
        ax.set_ylabel("GB/s")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    legend = {}
    for ax in axes.flat:  # every runner once, whichever panel has it
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    handles, labels = list(legend.values()), list(legend)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8)
    env = report["environment"]
    fig.suptitle(f"fastopt {env['fastopt']}: effective bandwidth ({env.get('cpu', '')})",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
