"""GPU benchmarks of the cuda backend, side by side with the device's copy
bandwidth, a same-traffic twin and torch (docs/notes-bench.md, docs/notes-cuda.md).

    python benchmarks/bench_cuda.py [--quick] [--out DIR]

Cells (fp32 unless stated):
  copy       device-to-device copy of 2 GiB: the measured bandwidth ceiling
             (bytes read + bytes written).
  adam-1e8   Adam on one tensor of 10^8 elements: fastopt, its twin
             (p += g; m += g; v += g: the same 28 B/element in one kernel),
             torch.optim.Adam(fused=True).step() and torch._fused_adam_.
  adam-200   Adam on 200 tensors of mixed sizes, one launch: fastopt list form,
             the twin over one buffer of the same total size, torch fused.
  bn         batch norm forward + backward on (256, 64, 56, 56), training:
             fastopt (when the batchnorm family has a cuda backend) vs
             torch.nn.functional.batch_norm + autograd (cuDNN).
  dropout    dropout forward + backward, p = 0.1, 256*64*56*56 elements:
             fastopt (when available) vs torch.nn.functional.dropout + backward.

Variants of a cell are timed round-robin (A B C A B C ...) with CUDA events
around `reps` calls, synchronized inside the timed region; medians are
reported with the bandwidth reached as a share of the measured copy
bandwidth. Inputs are random, never zeros. Results go to stdout and, as JSON
and Markdown, to $OUT (or --out) when set.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

try:
    import cupy
except ImportError as exc:  # pragma: no cover
    sys.exit(f"bench_cuda needs cupy and a GPU: {exc}")

import fastopt
from fastopt import backends as _backends

try:
    import torch
    if not torch.cuda.is_available():
        torch = None
except Exception:  # torch missing or broken: its columns are left out
    torch = None

GiB = 1 << 30


def event_time(fn, reps):
    """Milliseconds per call: CUDA events around `reps` calls on the current stream."""
    stream = cupy.cuda.get_current_stream()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record(stream)
    for _ in range(reps):
        fn()
    stop.record(stream)
    stop.synchronize()
    return cupy.cuda.get_elapsed_time(start, stop) / reps


def sync_all():
    cupy.cuda.get_current_stream().synchronize()
    if torch is not None:
        torch.cuda.synchronize()


def round_robin(variants, *, samples, reps):
    """{name: median ms} over `samples` interleaved samples of `reps` calls each."""
    for fn in variants.values():          # warm-up: compiles, caches tables
        fn()
        fn()
    sync_all()
    times = {name: [] for name in variants}
    for _ in range(samples):
        for name, fn in variants.items():
            times[name].append(event_time(fn, reps))
            sync_all()
    return {name: statistics.median(t) for name, t in times.items()}, times


def rand(n, dtype=np.float32, positive=False, gen=None):
    gen = gen or cupy.random.default_rng(0)
    a = gen.random(n, dtype=np.float32 if dtype == np.float32 else np.float64)
    return (a + 0.1 if positive else a * 2 - 1).astype(dtype, copy=False)


TWIN = cupy.ElementwiseKernel("T g", "T p, T m, T v", "p += g; m += g; v += g", "fastopt_twin3")


# -------------------------------------------------------------------- cells
def cell_copy(quick):
    n = (GiB if not quick else GiB // 8) // 4
    src, dst = rand(n), cupy.empty(n, np.float32)
    med, raw = round_robin({"copy": lambda: dst.__setitem__(Ellipsis, src)}, samples=7, reps=10)
    bw = 2 * src.nbytes / (med["copy"] * 1e-3) / 1e9
    return {"cell": "copy", "bytes": 2 * src.nbytes, "ms": med, "GB/s": {"copy": bw}}, bw


def torch_adam(shapes, fused=True):
    tparams = [torch.nn.Parameter(torch.randn(s, device="cuda")) for s in shapes]
    for p in tparams:
        p.grad = torch.randn_like(p)
    opt = torch.optim.Adam(tparams, lr=1e-3, fused=fused)
    opt.step()                           # creates the state (zeros) ...
    for p in tparams:                    # ... which is then filled with random values
        st = opt.state[p]
        st["exp_avg"].normal_()
        st["exp_avg_sq"].uniform_(0.1, 1.0)
    return opt, tparams


def cell_adam(name, sizes, quick):
    gen = cupy.random.default_rng(1)
    params = [rand(n, gen=gen) for n in sizes]
    grads = [rand(n, gen=gen) for n in sizes]
    ms = [rand(n, gen=gen) for n in sizes]
    vs = [rand(n, positive=True, gen=gen) for n in sizes]
    total = sum(sizes)
    # the twin: same bytes, one kernel, over buffers of the same total size
    tw = [rand(total, gen=gen) for _ in range(3)] + [rand(total, gen=gen)]
    variants = {
        "fastopt": lambda: fastopt.adam_step(params, grads, ms, vs, step=3, lr=1e-3),
        "twin": lambda: TWIN(tw[3], tw[0], tw[1], tw[2]),
    }
    if torch is not None:
        opt, tparams = torch_adam(sizes, fused=True)
        variants["torch.Adam(fused).step"] = opt.step
        st = [opt.state[p] for p in tparams]
        steps = [s["step"] for s in st]
        ex = [s["exp_avg"] for s in st]
        exq = [s["exp_avg_sq"] for s in st]
        gr = [p.grad for p in tparams]
        pd = [p.detach() for p in tparams]
        def raw():
            torch._fused_adam_(pd, gr, ex, exq, [], steps, lr=1e-3, beta1=0.9, beta2=0.999,
                               weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)
        try:
            raw()
            variants["torch._fused_adam_"] = raw
        except Exception as exc:  # the raw op's signature moves between torch versions
            print(f"torch._fused_adam_ left out: {type(exc).__name__}: {exc}")
    reps = 3 if total >= 5e7 else 20
    med, raw_times = round_robin(variants, samples=5 if quick else 15, reps=reps)
    nbytes = 28 * total
    return {"cell": name, "elements": total, "tensors": len(sizes), "bytes": nbytes, "ms": med,
            "GB/s": {k: nbytes / (v * 1e-3) / 1e9 for k, v in med.items()},
            "samples_ms": raw_times}


def cell_batchnorm(quick):
    shape = (256, 64, 56, 56) if not quick else (64, 64, 56, 56)
    fwd = getattr(fastopt, "batch_norm_forward", None)
    bwd = getattr(fastopt, "batch_norm_backward", None)
    variants = {}
    gen = cupy.random.default_rng(2)
    x = rand(int(np.prod(shape)), gen=gen).reshape(shape) * 3 + 5
    dy = rand(int(np.prod(shape)), gen=gen).reshape(shape)
    C = shape[1]
    gamma, beta = rand(C, gen=gen) + 1, rand(C, gen=gen)
    rm, rv = cupy.zeros(C, np.float32), cupy.ones(C, np.float32)
    note = None
    if fwd is not None and _backends.unavailable_reason("cuda") is None:
        def ours():
            y, sm, si = fwd(x, gamma, beta, rm, rv, training=True)
            bwd(dy, x, gamma, sm, si, training=True)
        try:
            ours()
            variants["fastopt"] = ours
        except Exception as exc:  # the family may not have a cuda backend yet
            note = f"fastopt batch norm on cuda unavailable: {type(exc).__name__}: {exc}"
    else:
        note = "fastopt.batch_norm_forward not in this build"
    if torch is not None:
        tx = torch.as_tensor(x, device="cuda").requires_grad_(True)
        tdy = torch.as_tensor(dy, device="cuda")
        tg = torch.as_tensor(gamma, device="cuda").requires_grad_(True)
        tb = torch.as_tensor(beta, device="cuda").requires_grad_(True)
        trm, trv = torch.zeros(C, device="cuda"), torch.ones(C, device="cuda")

        def theirs():
            y = torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, training=True)
            y.backward(tdy)
            tx.grad = tg.grad = tb.grad = None
        variants["torch/cuDNN"] = theirs
    if not variants:
        return {"cell": "bn", "note": note}
    med, raw_times = round_robin(variants, samples=5 if quick else 15, reps=5)
    # fewest bytes: fwd reads x (stats) + reads x, writes y; bwd reads dy, x (sums),
    # reads dy, x, writes dx: 7 passes of 4 B; a fused single-read forward is 3.
    nbytes = 7 * x.nbytes
    return {"cell": "bn", "shape": shape, "bytes": nbytes, "ms": med,
            "GB/s": {k: nbytes / (v * 1e-3) / 1e9 for k, v in med.items()},
            "note": note, "samples_ms": raw_times}


def cell_dropout(quick):
    n = 256 * 64 * 56 * 56 if not quick else 64 * 64 * 56 * 56
    p = 0.1
    gen = cupy.random.default_rng(3)
    x, dy = rand(n, gen=gen), rand(n, gen=gen)
    fwd = getattr(fastopt, "dropout_forward", None)
    bwd = getattr(fastopt, "dropout_backward", None)
    variants, note = {}, None
    if fwd is not None and _backends.unavailable_reason("cuda") is None:
        def ours():
            y, mask = fwd(x, p, seed=1234, training=True)
            bwd(dy, mask, p)
        try:
            ours()
            variants["fastopt"] = ours
        except Exception as exc:
            note = f"fastopt dropout on cuda unavailable: {type(exc).__name__}: {exc}"
    else:
        note = "fastopt.dropout_forward not in this build"
    if torch is not None:
        tx = torch.as_tensor(x, device="cuda").requires_grad_(True)
        tdy = torch.as_tensor(dy, device="cuda")

        def theirs():
            y = torch.nn.functional.dropout(tx, p, training=True)
            y.backward(tdy)
            tx.grad = None
        variants["torch"] = theirs
    if not variants:
        return {"cell": "dropout", "note": note}
    med, raw_times = round_robin(variants, samples=5 if quick else 15, reps=5)
    nbytes = int(16.25 * n)      # fwd 8 + 1/8, bwd 8 + 1/8 bytes per element (fp32)
    return {"cell": "dropout", "elements": n, "bytes": nbytes, "ms": med,
            "GB/s": {k: nbytes / (v * 1e-3) / 1e9 for k, v in med.items()},
            "note": note, "samples_ms": raw_times}


def mixed_sizes(count, seed=4):
    """`count` sizes, log-uniform between 10^3 and 2*10^6 (a model's parameter list)."""
    r = np.random.default_rng(seed)
    return [int(s) for s in np.exp(r.uniform(np.log(1e3), np.log(2e6), count))]


# The CUDA issue's targets: (cell, what, check(ms, gbps, copy_bw) -> True/False/None).
TARGETS = [
    ("adam-1e8", ">= 90% of copy bandwidth",
     lambda ms, gbs, bw: gbs["fastopt"] >= 0.9 * bw if "fastopt" in gbs else None),
    ("adam-1e8", "at least torch fused",
     lambda ms, gbs, bw: _at_least(ms, "fastopt", "torch.Adam(fused).step")),
    ("adam-200", "at least torch fused",
     lambda ms, gbs, bw: _at_least(ms, "fastopt", "torch.Adam(fused).step")),
    ("bn", "at least cuDNN", lambda ms, gbs, bw: _at_least(ms, "fastopt", "torch/cuDNN")),
    ("dropout", "at least torch", lambda ms, gbs, bw: _at_least(ms, "fastopt", "torch")),
]


def _at_least(ms, ours, theirs):
    """fastopt's median no slower than the reference's; None when either is missing."""
    if ours not in ms or theirs not in ms:
        return None
    return ms[ours] <= ms[theirs]


def target_lines(results, copy_bw):
    """Markdown rows: every target of the issue beside the figure it is judged on."""
    by_cell = {r["cell"]: r for r in results}
    lines = ["", "| target | cell | fastopt | reference | met |", "|---|---|---|---|---|"]
    for cell, what, check in TARGETS:
        r = by_cell.get(cell)
        if r is None or "ms" not in r:
            lines.append(f"| {what} | {cell} | - | - | not measured |")
            continue
        ms, gbs = r["ms"], r["GB/s"]
        ours = f"{ms['fastopt']:.3f} ms, {gbs['fastopt']:.0f} GB/s" if "fastopt" in ms else "-"
        ref = ", ".join(f"{k} {v:.3f} ms" for k, v in ms.items() if k != "fastopt") or "-"
        if "bandwidth" in what:
            ref = f"copy {copy_bw:.0f} GB/s (90%: {0.9 * copy_bw:.0f})"
        met = check(ms, gbs, copy_bw)
        lines.append(f"| {what} | {cell} | {ours} | {ref} | "
                     f"{'not measured' if met is None else ('yes' if met else 'NO')} |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer samples")
    ap.add_argument("--out", default=os.environ.get("OUT"), help="folder for JSON/Markdown")
    ap.add_argument("--cells", default="copy,adam-1e8,adam-200,bn,dropout")
    args = ap.parse_args(argv)
    why = _backends.unavailable_reason("cuda")
    if why is not None:
        sys.exit(f"fastopt's cuda backend is unavailable: {why}")
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    meta = {"device": name, "sms": props["multiProcessorCount"], "cupy": cupy.__version__,
            "torch": None if torch is None else torch.__version__, "fastopt": fastopt.__version__,
            "python": platform.python_version(), "command": " ".join(sys.argv),
            "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    print(json.dumps(meta))
    cells = args.cells.split(",")
    results, copy_bw = [], None
    r, copy_bw = cell_copy(args.quick)     # always: every share needs the ceiling
    results.append(r)
    if "adam-1e8" in cells:
        results.append(cell_adam("adam-1e8", [10**8 if not args.quick else 10**7], args.quick))
    if "adam-200" in cells:
        results.append(cell_adam("adam-200", mixed_sizes(200), args.quick))
    if "bn" in cells:
        results.append(cell_batchnorm(args.quick))
    if "dropout" in cells:
        results.append(cell_dropout(args.quick))

    lines = [f"# bench_cuda on {name} ({meta['sms']} SMs), copy bandwidth {copy_bw:.0f} GB/s",
             "", f"`{meta['command']}` at {meta['time']}; cupy {meta['cupy']}, torch {meta['torch']}",
             "", "| cell | variant | ms (median) | GB/s | % of copy | ref ms / this ms (ref: twin, else torch) |",
             "|---|---|---|---|---|---|"]
    for r in results:
        if "ms" not in r:
            lines.append(f"| {r['cell']} | - | - | - | - | {r.get('note', '')} |")
            continue
        base = r["ms"].get("twin") or r["ms"].get("torch/cuDNN") or r["ms"].get("torch")
        for k, ms in r["ms"].items():
            gbs = r["GB/s"][k]
            rel = f"{base / ms:.2f}" if base else ""
            lines.append(f"| {r['cell']} | {k} | {ms:.3f} | {gbs:.0f} | {100 * gbs / copy_bw:.0f}% | {rel} |")
        if r.get("note"):
            lines.append(f"| {r['cell']} | note | | | | {r['note']} |")
    lines += target_lines(results, copy_bw)
    table = "\n".join(lines)
    print(table)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "bench_cuda.json"), "w") as f:
            json.dump({"meta": meta, "copy_GBps": copy_bw, "results": results}, f, indent=1,
                      default=str)
        with open(os.path.join(args.out, "bench_cuda.md"), "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
