"""Adam over 200 bfloat16 tensors with stochastic rounding: fastopt.torch.Adam and fastopt.Adam
(bf16 state), against fastopt.torch.Adam rounding to nearest. Best of 5 x 10 steps, ms per step.
Run: PYTHONPATH=. python benchmarks/runs/2026-12-04/s18/sr_plan.py"""
import time, torch, numpy as np, ml_dtypes, fastopt
import fastopt.torch as fot
torch.set_num_threads(2)
def best(fn):
    fn(); out=[]
    for _ in range(5):
        t0=time.perf_counter()
        for _ in range(10): fn()
        out.append((time.perf_counter()-t0)/10*1e3)
    return min(out)
for n in (5000, 100):
    g=torch.Generator().manual_seed(0)
    ps=[torch.nn.Parameter(torch.randn(n,generator=g).bfloat16()) for _ in range(200)]
    for p in ps: p.grad=torch.randn(n,generator=g).bfloat16()
    o=fot.Adam(ps, lr=1e-3, stochastic_rounding=True, seed=1)
    o2=fot.Adam([torch.nn.Parameter(p.detach().clone()) for p in ps], lr=1e-3)
    for p in o2.param_groups[0]["params"]: p.grad=torch.randn(n).bfloat16()
    rng=np.random.default_rng(0)
    ap=[rng.standard_normal(n).astype(ml_dtypes.bfloat16) for _ in range(200)]
    ag=[rng.standard_normal(n).astype(ml_dtypes.bfloat16) for _ in range(200)]
    c=fastopt.Adam(ap, lr=1e-3, stochastic_rounding=True, seed=1, state_dtype=ml_dtypes.bfloat16)
    print(n, "torch SR %.2f ms" % best(o.step), "torch RNE %.2f ms" % best(o2.step), "class SR %.2f ms" % best(lambda: c.step(ag)))
