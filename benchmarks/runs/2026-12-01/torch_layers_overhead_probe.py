# Issue 19, session 5 (tl19): per-call overhead of a tiny (4, 8) BatchNorm1d layer, process CPU time.
# PYTHONPATH=. python benchmarks/runs/2026-12-01/torch_layers_overhead_probe.py [prof]
import torch, time, statistics, sys, copy
import numpy as np
import fastopt, fastopt.torch as ft
from fastopt import _core
from fastopt.torch import ops
torch.set_num_threads(1); _core.set_num_threads(1)
shape = (4, 8)
tb = torch.nn.BatchNorm1d(8); fb = ft.convert(copy.deepcopy(tb))
x = torch.randn(*shape, requires_grad=True); g = torch.randn(*shape)
xn, gn = x.detach().numpy(), g.numpy()
w, b, rm, rv = (t.detach().numpy().copy() for t in (fb.weight, fb.bias, fb.running_mean, fb.running_var))
def kfwd(): fastopt.batch_norm_forward(xn, w, b, rm, rv, training=True)
y0, m0, i0 = fastopt.batch_norm_forward(xn, w, b, rm, rv, training=True)
def kbwd(): fastopt.batch_norm_backward(gn, xn, w, m0, i0, training=True)
def tl(): tb(x).backward(g)
def fl(): fb(x).backward(g)
def tf():
    with torch.no_grad(): tb(x)
def ff():
    with torch.no_grad(): fb(x)
def fops():
    ops.DIRECT = False
    try: fb(x).backward(g)
    finally: ops.DIRECT = True
fns = dict(kfwd=kfwd, kbwd=kbwd, tlayer=tl, flayer=fl, tfwd_ng=tf, ffwd_ng=ff, flayer_ops=fops)
for f in fns.values(): f()
ts = {k: [] for k in fns}
for _ in range(11):
    for k, f in fns.items():
        t = time.process_time()
        for _ in range(200): f()
        ts[k].append((time.process_time()-t)/200)
print(" ".join(f"{k} {statistics.median(ts[k])*1e6:5.0f}" for k in fns))
if "prof" in sys.argv:
    import cProfile, pstats
    cProfile.run("for _ in range(2000): fl()", "/tmp/tl19/fl.prof")
    pstats.Stats("/tmp/tl19/fl.prof").sort_stats("tottime").print_stats(25)
if "prof2" in sys.argv:
    import cProfile, pstats
    cProfile.run("for _ in range(2000): tl()", "/tmp/tl19/tl.prof")
    pstats.Stats("/tmp/tl19/tl.prof").sort_stats("tottime").print_stats(8)
    pstats.Stats("/tmp/tl19/fl.prof").print_callers("sym_eq|zeros|_make_grads")
