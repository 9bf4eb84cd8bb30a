"""The cpp batch norm kernels with the output (y, dx) placed at several offsets
from the input modulo 4 KiB: x at its page + 16 bytes (where NumPy puts large
arrays), the output at page + OFF. One thread (FASTOPT_NUM_THREADS=1 by
default), float32, the bench's (N, 32, 64) shape (row layout, rows 8 KiB apart).
Medians of interleaved samples.
    PYTHONPATH=. python benchmarks/runs/2026-12-03/s14/bn/bn_alias.py N [threads [x offset]]"""
import sys, numpy as np
from fastopt import _core
from fastopt.backends.cpp import batchnorm as cb
from fastopt.bench.timer import interleaved

N = int(float(sys.argv[1])) if len(sys.argv) > 1 else 256
_core.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
XOFF = int(sys.argv[3]) if len(sys.argv) > 3 else 16   # x's page offset
shape, C = (N, 32, 64), 32
n = N * 32 * 64


def at(offset, src=None):
    """A float32 array of `shape` at page + offset bytes."""
    buf = np.empty(n * 4 + 8192, np.uint8)
    start = (-buf.ctypes.data) % 4096 + offset
    a = buf[start:start + n * 4].view(np.float32).reshape(shape)
    if src is not None:
        a[...] = src
    return a


rng = np.random.default_rng(0)
x = at(XOFF, rng.standard_normal(shape).astype(np.float32) * 2 + 0.5)
dy = at((XOFF + 2048) % 4096, rng.standard_normal(shape).astype(np.float32))
w, b = rng.random(C).astype(np.float32) + 0.5, rng.standard_normal(C).astype(np.float32)
rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
sm, si = np.empty(C, np.float32), np.empty(C, np.float32)
dg, db = np.empty(C, np.float32), np.empty(C, np.float32)
cb.batch_norm_forward(x, at(0), w, b, rm, rv, sm, si, training=True, momentum=0.1, eps=1e-5)
cells = {}
# 1024 and 1216/1280 (printed as 'placement_offset picks' in the .txt files) were the offsets
# a page-placement rule picked in a build that was not kept (RESULTS.md, session 14).
for off in sorted({0, XOFF, (XOFF + 2048) % 4096, 1024}):
    y = at(off)
    cells[f"fwd eval   y@+{off}"] = (lambda y=y: cb.batch_norm_forward(
        x, y, w, b, rm, rv, np.empty(C, np.float32), np.empty(C, np.float32), training=False,
        momentum=0.1, eps=1e-5))
    cells[f"fwd train  y@+{off}"] = (lambda y=y: cb.batch_norm_forward(
        x, y, w, b, rm.copy(), rv.copy(), np.empty(C, np.float32), np.empty(C, np.float32),
        training=True, momentum=0.1, eps=1e-5))
    cells[f"bwd train dx@+{off}"] = (lambda y=y: cb.batch_norm_backward(
        dy, x, w, sm, si, y, dg, db, training=True))
r = interleaved(cells, repeat=9, min_time=0.01)
print(f"x at page + {XOFF}, dy at + {dy.ctypes.data % 4096}")
for k, t in sorted(r.items()):
    print(f"{k:22s} {t.median*1e6:9.1f} us")
