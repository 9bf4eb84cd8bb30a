# Issue 19, session 5 (tl19): the BN1d family with fastopt outputs allocated by torch instead of fastopt's buffer cache.
# PYTHONPATH=. python benchmarks/runs/2026-12-01/torch_layers_bn1d_alloc_probe.py
import sys, torch, time, statistics, copy
sys.path.insert(0, "benchmarks")
import bench_torch_layers as B
import fastopt.torch as ft
from fastopt.torch import _lean
from fastopt import _core
torch.set_num_threads(1); _core.set_num_threads(1)
fams = B.families("mlp", False)
real_b, real_f = _lean._backward_fast, _lean._forward_fast
def bwd_torch_alloc(dy, x, g, sm, si, training, backend):
    dx = torch.empty(x.shape); dg = torch.empty(x.shape[1]); db = torch.empty(x.shape[1])
    _core.batch_norm_backward(dy, x, g, sm, si, dx.numpy(), dg.numpy(), db.numpy(), training)
    return dx.numpy(), dg.numpy(), db.numpy()
def fwd_torch_alloc(x, g, b, rm, rv, training, momentum, eps, backend):
    y = torch.empty(x.shape); sm = torch.empty(x.shape[1]); si = torch.empty(x.shape[1])
    _core.batch_norm_forward(x, y.numpy(), g, b, rm, rv, sm.numpy(), si.numpy(), training, momentum, eps)
    return y.numpy(), sm.numpy(), si.numpy()
m, xs, gs = fams["batch norm"]["torch"]
m2, xs2, gs2 = fams["batch norm"]["fastopt"]
def with_alloc(fn):
    def run():
        _lean._backward_fast, _lean._forward_fast = bwd_torch_alloc, fwd_torch_alloc
        try: fn()
        finally: _lean._backward_fast, _lean._forward_fast = real_b, real_f
    return run
fns = {"torch": lambda: B.family_step(m, xs, gs), "fo": lambda: B.family_step(m2, xs2, gs2),
       "fo torch-alloc": with_alloc(lambda: B.family_step(m2, xs2, gs2))}
for f in fns.values(): f()
ts = {k: [] for k in fns}
for _ in range(11):
    for k, f in fns.items():
        t = time.process_time()
        for _ in range(10): f()
        ts[k].append((time.process_time()-t)/10)
for k in fns: print(f"{k:22s} {statistics.median(ts[k])*1e6:8.0f} us cpu")
