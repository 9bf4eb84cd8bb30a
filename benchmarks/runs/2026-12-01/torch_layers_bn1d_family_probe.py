# Issue 19, session 5 (tl19): the MLP benchmark's BatchNorm1d(2048) family (3 layers, (256, 2048)) against fresh layers.
# PYTHONPATH=. python benchmarks/runs/2026-12-01/torch_layers_bn1d_family_probe.py
import sys, torch, time, statistics, copy
sys.path.insert(0, "benchmarks")
import bench_torch_layers as B
import fastopt.torch as ft
from fastopt import _core
torch.set_num_threads(1); _core.set_num_threads(1)
fams = B.families("mlp", False)
fns = {}
m, xs, gs = fams["batch norm"]["torch"]; fns["bench torch"] = lambda: B.family_step(m, xs, gs)
m2, xs2, gs2 = fams["batch norm"]["fastopt"]; fns["bench fo"] = lambda: B.family_step(m2, xs2, gs2)
C, N, L = 2048, 256, 3
tbs = B.Family([torch.nn.BatchNorm1d(C) for _ in range(L)])
fbs = B.Family([ft.convert(copy.deepcopy(m)) for m in tbs.layers])
xs3 = [torch.randn(N, C, requires_grad=True) for _ in range(L)]; gs3 = [torch.randn(N, C) for _ in range(L)]
fns["fresh torch"] = lambda: B.family_step(tbs, xs3, gs3)
fns["fresh fo"] = lambda: B.family_step(fbs, xs3, gs3)
fns["bench torch, fresh x"] = lambda: B.family_step(m, xs3, gs3)
print([type(l).__name__ for l in m.layers], [l.training for l in m.layers], [l.momentum for l in m.layers])
for f in fns.values(): f()
ts = {k: [] for k in fns}
for _ in range(11):
    for k, f in fns.items():
        t = time.process_time()
        for _ in range(10): f()
        ts[k].append((time.process_time()-t)/10)
for k in fns: print(f"{k:22s} {statistics.median(ts[k])*1e6:8.0f} us cpu")
