"""One BatchNorm1d(2048) layer on (256, 2048), one thread, CPU time: the layer's
fwd+bwd (autograd, x a leaf) for torch.nn and fastopt.torch, and fastopt's
kernels alone on NumPy arrays (forward training, backward), medians."""
import time, statistics, copy
import numpy as np, torch
import fastopt, fastopt.torch as ft
torch.set_num_threads(1)
from fastopt import _core
_core.set_num_threads(1)
torch.manual_seed(0)
ref = torch.nn.BatchNorm1d(2048)
mine = ft.convert(copy.deepcopy(ref))
x = torch.randn(256, 2048, requires_grad=True)
g = torch.randn(256, 2048)
xa, ga = x.detach().numpy().copy(), g.numpy().copy()
w, b = np.ones(2048, np.float32), np.zeros(2048, np.float32)
rm, rv = np.zeros(2048, np.float32), np.ones(2048, np.float32)
fwd = fastopt.batch_norm_forward(xa, w, b, rm, rv, training=True)
mean, invstd = fwd[1], fwd[2]

def layer(m):
    def f():
        torch.autograd.backward(m(x), g)
    return f

def nograd(m):
    def f():
        with torch.no_grad():
            m(x)
    return f

cells = {
    "torch layer fwd+bwd": layer(ref),
    "fastopt layer fwd+bwd": layer(mine),
    "torch fwd (no grad)": nograd(ref),
    "fastopt fwd (no grad)": nograd(mine),
    "fastopt kernel fwd": lambda: fastopt.batch_norm_forward(xa, w, b, rm, rv, training=True),
    "fastopt kernel bwd": lambda: fastopt.batch_norm_backward(ga, xa, w, mean, invstd),
    "torch native_batch_norm_backward": lambda: torch.ops.aten.native_batch_norm_backward(
        g, x.detach(), ref.weight.detach(), None, None, torch.from_numpy(mean), torch.from_numpy(invstd),
        True, 1e-5, [True, True, True]),
    "x.grad accumulate (add_ 2 MB)": lambda: x.grad.add_(g),
}
for f in cells.values():
    f()
res = {k: [] for k in cells}
for _ in range(11):
    for k, f in cells.items():
        n = 50
        t0 = time.process_time()
        for _ in range(n): f()
        res[k].append((time.process_time() - t0) / n * 1e6)
for k, v in res.items():
    print(f"{k:34s} {statistics.median(v):8.1f} us")
