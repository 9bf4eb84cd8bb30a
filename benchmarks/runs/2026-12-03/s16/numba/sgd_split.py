"""Per-call parts of sgd_step(backend="numba") at n elements, CPU time, medians of 15 alternated rounds."""
from _rounds import medians
import time, functools, sys, numpy as np, fastopt
from fastopt.backends.numba import _fast, _direct
n=int(sys.argv[1]); rng=np.random.default_rng(0)
p=rng.standard_normal(n).astype(np.float32); g=rng.standard_normal(n).astype(np.float32)
pub=functools.partial(fastopt.sgd_step,p,g,lr=1e-3,backend="numba"); pub(); pub()
fast=functools.partial(_fast.sgd,p,g,None,1e-3,0.0,1.0,0.0,1.0,False,False,"numba")
e=list(_direct.SGD.entries.values())[0]
ent=functools.partial(e,p,g,None,1e-3,0.0,1.0,0.0,1.0,0,False)
t=np.empty_like(p)
def out(): np.multiply(g,1e-3,out=t); np.subtract(p,t,out=p)
def plain(): p[...] += -1e-3*g
fs=[("plain",plain),("out",out),("pub",pub),("fast",fast),("entry",ent)]
print(" ".join(f"{k}={v:.3f}" for k, v in medians(fs, rounds=15).items()))
