"""The drop-in step of `fastopt bench multi-tensor` in phases, alone: best of 7, ms."""
import time, torch
from fastopt.bench import multi_tensor as mt
v = mt.variants()["variants"]
d = v["dropin"]
opt = d.__self__
d()
plan = opt._fo_plans[0]
g = opt.param_groups[0]
hp = opt._hyper(g)
def best(fn, k=7):
    b=1e9
    for _ in range(k):
        t0=time.perf_counter(); fn(); b=min(b,time.perf_counter()-t0)
    return b*1e3
print("step", best(d))
print("hyper", best(lambda: opt._hyper(g)))
print("plan_grads", best(lambda: opt._plan_grads(plan, g)))
grads = opt._plan_grads(plan, g)
print("run_plan", best(lambda: opt._run_plan(plan, hp, grads)))
print("step", best(d))
print("fastopt class", best(v["fastopt"]))
