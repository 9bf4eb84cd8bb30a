import torch, time, statistics
import fastopt, fastopt.torch as ft
from fastopt import _core
torch.set_num_threads(1); _core.set_num_threads(1)
C = 2048
tb = torch.nn.BatchNorm1d(C); fb = ft.convert(torch.nn.BatchNorm1d(C))
x = torch.randn(256, C, requires_grad=True); g = torch.randn(256, C)
xn, gn = x.detach().numpy(), g.numpy()
w, b, rm, rv = (t.detach().numpy() for t in (fb.weight, fb.bias, fb.running_mean, fb.running_var))
def kern():
    y, m, i = fastopt.batch_norm_forward(xn, w, b, rm, rv, training=True)
    fastopt.batch_norm_backward(gn, xn, w, m, i, training=True)
def tfwd():
    with torch.no_grad(): tb(x)
def ffwd():
    with torch.no_grad(): fb(x)
fns = {"torch layer": lambda: tb(x).backward(g), "fo layer": lambda: fb(x).backward(g),
       "fo kernels": kern, "torch fwd nograd": tfwd, "fo fwd nograd": ffwd,
       "x.grad add": lambda: x.grad.add_(g)}
for f in fns.values(): f()
ts = {k: [] for k in fns}
for _ in range(9):
    for k, f in fns.items():
        t = time.process_time()
        for _ in range(20): f()
        ts[k].append((time.process_time()-t)/20)
for k in fns: print(f"{k:18s} {statistics.median(ts[k])*1e6:8.0f} us cpu")
