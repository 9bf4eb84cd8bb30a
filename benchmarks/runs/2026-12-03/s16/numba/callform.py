"""The bench runner forms against a call written out: lambda with **kw, functools.partial, direct."""
from _rounds import medians
import time, numpy as np, fastopt
from fastopt.bench import optim as BO
from fastopt.bench import kernels as K
k=K.get("sgd"); a=k.setup(100,np.dtype("float32"),np.random.default_rng(0))
f_bench=k.make("numba",a,"cached"); f_np=k.make("numpy-plain",a,"cached")
p,g=a["param"],a["grad"]; fn=fastopt.sgd_step
def f_direct(): fn(p,g,lr=1e-3,backend="numba")
args=[p,g]; kw={"lr":1e-3}
f_lam=lambda: fn(*args, **kw, backend="numba")
fs=[("np",f_np),("bench",f_bench),("direct",f_direct),("lam",f_lam)]
print(" ".join(f"{k}={v:.3f}" for k, v in medians(fs, rounds=11).items()))
import functools
f_part=functools.partial(fn,*args,**kw,backend="numba")
src="lambda: fn(a0, a1, lr=lr, backend=backend)"
f_gen=eval(src,{"fn":fn,"a0":p,"a1":g,"lr":1e-3,"backend":"numba"})
fs=[("np",f_np),("direct",f_direct),("lam",f_lam),("partial",f_part),("gen",f_gen)]
print(" ".join(f"{k}={v:.3f}" for k, v in medians(fs, rounds=11).items()))
