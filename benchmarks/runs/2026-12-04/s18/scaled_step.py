"""fastopt.torch.Adam.step() as torch.amp.GradScaler calls it (``opt.grad_scale`` and
``opt.found_inf`` set, nothing found), 200 tensors x 5000 elements, against torch's fused
Adam under the same attributes. Best of 5 blocks of 20 steps, ms per step.
Run: PYTHONPATH=. python benchmarks/runs/2026-12-04/s18/scaled_step.py
"""
import time

import torch

import fastopt.torch as fot

torch.set_num_threads(2)


def case(cls, dtype, **kw):
    g = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(5000, generator=g).to(dtype)) for _ in range(200)]
    for p in ps:
        p.grad = torch.randn(5000, generator=g).to(dtype) * 1024
    opt = cls(ps, lr=1e-3, **kw)
    scale, found = torch.tensor(1024.0), torch.tensor(0.0)

    def step():
        opt.grad_scale, opt.found_inf = scale, found   # what scaler.step(opt) sets
        opt.step()
        del opt.grad_scale, opt.found_inf
    return step


def best(fn):
    fn()
    out = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(20):
            fn()
        out.append((time.perf_counter() - t0) / 20 * 1e3)
    return min(out)


for name, fn in {"torch fused f32": case(torch.optim.Adam, torch.float32, fused=True),
                 "fastopt.torch f32": case(fot.Adam, torch.float32),
                 "torch fused bf16": case(torch.optim.Adam, torch.bfloat16, fused=True),
                 "fastopt.torch bf16": case(fot.Adam, torch.bfloat16)}.items():
    print(f"{name:20s} {best(fn):7.3f} ms/step")
