"""The list bindings alone: 4 roles x 200 arrays of 100 elements, best of 5 x 300 calls, us per call.
Run: PYTHONPATH=. python benchmarks/runs/2026-12-04/s18/list_binding_probe.py"""
from _timing import best_us
import time, numpy as np, ml_dtypes
from fastopt import _core, _scalars
from fastopt.backends.cpp import optim as co
rng=np.random.default_rng(0)
def lists(dt, n=100, k=200):
    return [[rng.standard_normal(n).astype(dt) for _ in range(k)] for _ in range(4)]
s=_scalars.adam(step=3, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False, maximize=False)
f=lists(np.float32); b=lists(ml_dtypes.bfloat16)
for v in f[3]+b[3]: np.abs(v, out=v)
def t(fn, k=300):
    return best_us(fn, k)
print("f32 adam_step lists", t(lambda: _core.adam_step(f[0],f[1],f[2],f[3],None,*s,0)))
ty=_core.MixedTypes(2,2,2)
print("bf16 adam_step_mixed lists", t(lambda: _core.adam_step_mixed(b[0],b[1],b[2],b[3],None,None,ty,*s,0,1.0,False,0,1)))
ty0=_core.MixedTypes(0,0,0)
print("f32 adam_step_mixed lists", t(lambda: _core.adam_step_mixed(f[0],f[1],f[2],f[3],None,None,ty0,*s,0,1.0,False,0,1)))
print("f32 adam_step_fast lists", t(lambda: _core.adam_step_fast(f[0],f[1],f[2],f[3],None,*s,0,False,"cpp")))
print("bf16 adam_step_fast lists", t(lambda: _core.adam_step_fast(b[0],b[1],b[2],b[3],None,*s,0,False,"cpp")))
