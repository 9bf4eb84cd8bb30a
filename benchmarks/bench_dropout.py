"""Dropout forward + backward, side by side (issue 5; method: ../shared/BENCHMARKING.md).

One call of every variant is a training step's dropout: the forward on x and
the backward on dy, fp32, p = 0.5 (drop probability). All variants are timed
round-robin in one process (A B C A B C ...), each sample lasting >= ~10 ms,
and medians from that one window are compared. GB/s counts the bytes a fused
pass must move: forward 8 + 1/8 per element (read x; write y and the bit
mask), backward 8 + 1/8 (read dy and the mask; write dx). "twin" is the
same-traffic floor: fastopt._core's dropout_twin_forward/backward read and
write exactly those arrays with trivial work, on the same threads, and -- like
every variant here -- allocate their outputs per call, as the API does.

    python benchmarks/bench_dropout.py                  # 1e7 elements, torch if installed
    python benchmarks/bench_dropout.py --sizes 1e5 1e7 --repeat 15
    python benchmarks/bench_dropout.py --no-torch
    python benchmarks/bench_dropout.py --raw            # also: kernels alone, outputs preallocated
"""
from __future__ import annotations

import argparse
import platform

import numpy as np

import fastopt
from fastopt.bench import timer
from fastopt import _core

P = 0.5
KEEP = 1.0 - P
BYTES_PER_ELEMENT = 2 * (8 + 1 / 8)   # fp32 forward + backward, fused


def variants(n, rng, use_torch):
    x = rng.standard_normal(n, dtype=np.float32)
    dy = rng.standard_normal(n, dtype=np.float32)
    out = {}
    seeds = iter(range(1, 1 << 62))

    def fastopt_step(backend):
        def run():
            y, mask = fastopt.dropout_forward(x, P, seed=next(seeds), backend=backend)
            return fastopt.dropout_backward(dy, mask, P, backend=backend)
        return run

    out["cpp"] = fastopt_step("cpp")
    if "numba" in fastopt.available_backends():
        out["numba"] = fastopt_step("numba")

    if use_torch:
        import torch
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        gt = torch.from_numpy(dy.copy())

        def torch_step():
            y = torch.nn.functional.dropout(xt, P, training=True)
            y.backward(gt)
            xt.grad = None
        out["torch"] = torch_step

    gen = np.random.default_rng(7)

    def numpy_f32():
        # the lecture notes' inverted dropout, kept in float32 (p there = keep)
        u = (gen.random(n, dtype=np.float32) < np.float32(KEEP)) / np.float32(KEEP)
        y = x * u
        return dy * u                               # backward: dx = dy * U
    out["numpy-f32"] = numpy_f32

    def numpy_lecture():
        # exactly as written in the notes: np.random.rand -> float64 mask, float64 y
        u = (np.random.rand(*x.shape) < KEEP) / KEEP
        y = x * u
        return dy * u
    out["numpy-lecture-f64"] = numpy_lecture

    def twin():
        y = np.empty_like(x)
        mask = np.empty((n + 7) // 8, dtype=np.uint8)
        _core.dropout_twin_forward(x, y, mask)
        dx = np.empty_like(dy)
        _core.dropout_twin_backward(dy, mask, dx)
        return dx
    out["twin"] = twin
    return out


def raw_variants(n, rng):
    """The C++ kernels alone into preallocated outputs (no allocation, no Python
    API), forward and backward separately, beside their twins."""
    from fastopt import _scalars
    x = rng.standard_normal(n, dtype=np.float32)
    dy = rng.standard_normal(n, dtype=np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    mask = np.empty((n + 7) // 8, dtype=np.uint8)
    s = _scalars.dropout(P)
    return {
        "cpp-forward": lambda: _core.dropout_forward(x, y, mask, 1, s.threshold, s.scale),
        "twin-forward": lambda: _core.dropout_twin_forward(x, y, mask),
        "cpp-backward": lambda: _core.dropout_backward(dy, mask, dx, s.scale),
        "twin-backward": lambda: _core.dropout_twin_backward(dy, mask, dx),
        "cpp-mask-only": lambda: _core.dropout_mask(mask, n, 1, s.threshold),
    }


def interleaved(variants: dict, repeat: int) -> dict:
    """Median seconds per call of each variant, timed round-robin (fastopt.bench.timer)."""
    return {name: t.median for name, t in timer.interleaved(variants, repeat=repeat).items()}


def torch_mask_bytes(n):
    """Bytes torch keeps for the backward of F.dropout (its saved tensors)."""
    import torch
    xt = torch.randn(n).requires_grad_(True)
    y = torch.nn.functional.dropout(xt, P, training=True)
    seen, total, kinds = set(), 0, []
    fn = y.grad_fn
    for name in dir(fn):
        if name.startswith("_saved_"):
            t = getattr(fn, name)
            if torch.is_tensor(t) and t.data_ptr() not in seen and t.data_ptr() != xt.data_ptr():
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
                kinds.append(f"{name[7:]}:{t.dtype}")
    return total, f"{type(fn).__name__}({', '.join(kinds)})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e7])
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--raw", action="store_true", help="also time the kernels alone")
    args = ap.parse_args()
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch
            torch_info = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
        except ImportError:
            use_torch, torch_info = False, "torch not installed"
    else:
        torch_info = "torch not imported"
    info = _core.build_info()
    print(f"# fastopt {fastopt.__version__}; cpp {info['isa']}, {info['threads']} threads; "
          f"{torch_info}; numpy {np.__version__}; {platform.processor() or platform.machine()}")
    print(f"# dropout forward+backward, fp32, p={P}; bytes/element {BYTES_PER_ELEMENT:.3f}; "
          f"repeat {args.repeat}, interleaved medians")
    rng = np.random.default_rng(0)
    for size in args.sizes:
        n = int(size)
        res = interleaved(variants(n, rng, use_torch), args.repeat)
        twin_t, cpp_t = res["twin"], res["cpp"]
        print(f"\nn = {n:.0e}")
        print(f"{'variant':20s} {'ms':>9s} {'GB/s':>7s} {'of twin':>8s} {'cpp faster':>10s}")
        for name, t in res.items():
            gbs = BYTES_PER_ELEMENT * n / t / 1e9
            print(f"{name:20s} {t * 1e3:9.3f} {gbs:7.1f} {twin_t / t:8.0%} {t / cpp_t:9.1f}x")
        line = f"mask memory: fastopt {(n + 7) // 8:,} bytes (n/8)"
        if use_torch:
            tb, what = torch_mask_bytes(n)
            line += f"; torch {tb:,} bytes saved for backward by {what}"
        print(line)
        if args.raw:
            raw = interleaved(raw_variants(n, rng), args.repeat)
            print(f"kernels alone, outputs preallocated ({'GB/s'}: 8.125 B/element each way)")
            for name, t in raw.items():
                twin_name = "twin-" + name.split("-")[1]
                share = f"{raw[twin_name] / t:8.0%}" if twin_name in raw else " " * 8
                gbs = (8 + 1 / 8) * n / t / 1e9 if "mask" not in name else n / 8 / t / 1e9
                print(f"{name:20s} {t * 1e3:9.3f} {gbs:7.1f} {share}")


if __name__ == "__main__":
    main()
