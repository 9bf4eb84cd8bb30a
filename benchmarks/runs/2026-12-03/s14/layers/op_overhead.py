"""fastopt.torch batch norm ops at (32, 256) float32, one thread: the custom op call (torch.library dispatch), the op body without dispatch, its pieces, and torch's native op; medians of 9 rounds of 200 calls, wall time.
    PYTHONPATH=. python benchmarks/runs/2026-12-03/s14/layers/op_overhead.py"""
import time, statistics, torch
from fastopt.torch import _lean, ops
torch.set_num_threads(1)
from fastopt import _core; _core.set_num_threads(1)
shape = (32, 256); C = 256
x = torch.randn(shape); dy = torch.randn(shape)
w, b = torch.ones(C), torch.zeros(C); rm, rv = torch.zeros(C), torch.ones(C)
y, mean, invstd = _lean.forward(x, w, b, rm, rv, True, 0.1, 1e-5)
def clones():
    a = rm.detach().to(torch.float32, memory_format=torch.contiguous_format, copy=True)
    c = rv.detach().to(torch.float32, memory_format=torch.contiguous_format, copy=True)
    return a.to(rm.dtype), c.to(rv.dtype)
cells = {
    "op train (dispatch)": lambda: torch.ops.fastopt.batch_norm_train(x, w, b, rm, rv, None, 0.1, 1e-5),
    "_bn_train (no dispatch)": lambda: ops._bn_train(x, w, b, rm, rv, None, 0.1, 1e-5),
    "_bn_checks": lambda: ops._bn_checks(x, w, b, rm, rv),
    "two clones + to": clones,
    "lean fwd": lambda: _lean.forward(x, w, b, rm, rv, True, 0.1, 1e-5),
    "op bwd (dispatch)": lambda: torch.ops.fastopt.batch_norm_backward(dy, x, w, mean, invstd, True),
    "_bn_backward (no dispatch)": lambda: ops._bn_backward(dy, x, w, mean, invstd, True),
    "lean bwd": lambda: _lean.backward(dy, x, w, mean, invstd, True),
    "torch native fwd": lambda: torch.ops.aten.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5),
}
res = {k: [] for k in cells}
for f in cells.values(): f()
for _ in range(9):
    for k, f in cells.items():
        t0 = time.perf_counter()
        for _ in range(200): f()
        res[k].append((time.perf_counter() - t0) / 200 * 1e6)
for k, v in res.items(): print(f"{k:28s} {statistics.median(v):6.1f} us")
