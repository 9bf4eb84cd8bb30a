"""Profile one compiled CNN training step: torch.nn vs fastopt.torch.convert, by op and inductor kernel.

    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) PYTHONPATH=. python benchmarks/runs/2026-12-02/s8/prof_cnn.py
"""
import copy, sys, time, torch
sys.path.insert(0, "benchmarks")   # run from the repository root
import bench_torch_layers as B
import fastopt.torch as ft
import torch._inductor.config as icfg
icfg.cpp.enable_kernel_profile = True
torch.set_num_threads(1)
torch.manual_seed(0)
compiled = "--eager" not in sys.argv
x = torch.randn(32, 3, 32, 32); tgt = torch.randint(0, 10, (32,))
base = B.cnn()
variants = {}
for name in ("torch", "fastopt"):
    m = copy.deepcopy(base)
    if name == "fastopt":
        ft.convert(m); opt = ft.Adam(m.parameters(), lr=1e-3)
    else:
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, fused=True)
    run = torch.compile(m) if compiled else m
    def step(run=run, opt=opt):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(run(x), tgt)
        loss.backward(); opt.step()
    variants[name] = step
t0 = time.time()
for _ in range(3):
    for s in variants.values(): s()
print("warm-up", time.time() - t0, "s")
for name, s in variants.items():
    ts = []
    for _ in range(5):
        t = time.process_time(); s(); ts.append(time.process_time() - t)
    print(name, "step CPU ms", sorted(ts)[2] * 1e3)
for name, s in variants.items():
    with torch.profiler.profile() as prof:
        for _ in range(5): s()
    print("=====", name)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40))
