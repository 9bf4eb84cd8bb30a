"""Per-call parts of dropout_backward(backend="numba") at n elements, CPU time, medians of 15 alternated rounds."""
from _rounds import medians
import sys, time, functools, numpy as np, fastopt
from fastopt.backends.numba import _fast, _direct
n=int(sys.argv[1]); rng=np.random.default_rng(0)
x=rng.standard_normal(n).astype(np.float32)
y,mask=fastopt.dropout_forward(x,0.5,seed=1,backend="numba")
dy=rng.standard_normal(n).astype(np.float32)
u1=(rng.random(n)<0.5).astype(np.float32)/0.5
pub=functools.partial(fastopt.dropout_backward,dy,mask,0.5,backend="numba"); pub(); pub()
fast=functools.partial(_fast.dropout_backward,dy,mask,0.5,"numba")
e=list(_direct.DROP_BACKWARD.entries.values())[0]
def ent(): e(dy,mask,np.empty_like(dy),2.0)
plainf=functools.partial(_fast._plain,[],[dy])
def np_(): dy*u1
fs=[("np",np_),("pub",pub),("fast",fast),("empty+entry",ent),("_plain",plainf)]
print(n, " ".join(f"{k}={v:.3f}" for k, v in medians(fs, rounds=15).items()))
