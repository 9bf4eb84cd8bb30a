"""Adam over 200 tensors of 5000 elements: the per-step cost of 16-bit groups.

fastopt.torch.Adam and fastopt.Adam on bfloat16 parameters (states in bfloat16) against
the same classes in float32 and torch.optim.Adam(fused=True). Prints the best of 5 blocks
of 20 steps, in ms per step. Run: PYTHONPATH=. python benchmarks/runs/2026-12-04/s18/mixed_plan.py [elements per tensor]
"""
import sys
import time

import ml_dtypes
import numpy as np
import torch

import fastopt
import fastopt.torch as fot

N_TENSORS, STEPS, BLOCKS = 200, 20, 5
SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
torch.set_num_threads(2)


def best(fn):
    fn()
    out = []
    for _ in range(BLOCKS):
        t0 = time.perf_counter()
        for _ in range(STEPS):
            fn()
        out.append((time.perf_counter() - t0) / STEPS * 1e3)
    return min(out)


def torch_case(cls, dtype, **kw):
    g = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(SIZE, generator=g).to(dtype)) for _ in range(N_TENSORS)]
    for p in ps:
        p.grad = torch.randn(SIZE, generator=g).to(dtype)
    opt = cls(ps, lr=1e-3, **kw)
    return opt.step


def class_case(dtype):
    rng = np.random.default_rng(0)
    ps = [rng.standard_normal(SIZE).astype(dtype) for _ in range(N_TENSORS)]
    gs = [rng.standard_normal(SIZE).astype(dtype) for _ in range(N_TENSORS)]
    kw = {"state_dtype": dtype} if dtype != np.float32 else {}
    opt = fastopt.Adam(ps, lr=1e-3, **kw)
    return lambda: opt.step(gs)


cases = {
    "torch.optim.Adam(fused) f32": torch_case(torch.optim.Adam, torch.float32, fused=True),
    "torch.optim.Adam(fused) bf16": torch_case(torch.optim.Adam, torch.bfloat16, fused=True),
    "fastopt.torch.Adam f32": torch_case(fot.Adam, torch.float32),
    "fastopt.torch.Adam bf16": torch_case(fot.Adam, torch.bfloat16),
    "fastopt.torch.Adam bf16 master": torch_case(fot.Adam, torch.bfloat16, master_weights=True,
                                                  state_dtype=torch.float32),
    "fastopt.Adam f32": class_case(np.float32),
    "fastopt.Adam bf16": class_case(ml_dtypes.bfloat16),
}
for name, fn in cases.items():
    print(f"{name:34s} {best(fn):7.3f} ms/step")
