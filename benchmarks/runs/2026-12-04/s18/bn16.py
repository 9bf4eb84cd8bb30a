"""Batch norm forward/backward through the public functions (validation included), float32
and 16-bit x/dy with float32 gamma, beta and statistics: best of 5 x 500 calls, us.
Run: PYTHONPATH=. python benchmarks/runs/2026-12-04/s18/bn16.py"""
from _timing import best_us
import time, numpy as np, ml_dtypes, fastopt
rng=np.random.default_rng(0)
def t(fn, k=500):
    return best_us(fn, k)
for shape in [(64,256),(32,64,8,8)]:
    C=shape[1]
    for dt in (np.float32, ml_dtypes.bfloat16, np.float16):
        x=rng.standard_normal(shape).astype(dt); g=np.ones(C,np.float32); b=np.zeros(C,np.float32)
        rm=np.zeros(C,np.float32); rv=np.ones(C,np.float32)
        if dt==np.float32: gg,bb=g,b
        else: gg,bb=g,b
        f=lambda: fastopt.batch_norm_forward(x,gg,bb,rm,rv,training=True)
        y,sm,si=f()
        dy=rng.standard_normal(shape).astype(dt)
        bw=lambda: fastopt.batch_norm_backward(dy,x,gg,sm,si,training=True)
        print(shape, np.dtype(dt).name, "fwd %.1f us" % t(f), "bwd %.1f us" % t(bw))
