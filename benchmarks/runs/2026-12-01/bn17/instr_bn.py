"""Instructions per element of batch norm's and clip_grad_norm's passes against
their twins' passes, from ONE callgrind run that dumps a profile after each
native call (one thread, (1024, 32, 64) fp32 = 2^21 elements, the benchmark's
rows layout; clip on 2^21 elements):

FASTOPT_NUM_THREADS=1 PYTHONPATH=. valgrind --tool=callgrind \
    --callgrind-out-file=OUT/cg.%p --dump-after='*batch_norm_*_cpu*' \
    --dump-after='*twin_cpu*' --dump-after='*norm_cpu*' --dump-after='*scale_cpu*' \
    python benchmarks/runs/2026-12-01/bn17/instr_bn.py
then the "summary:" line of each dump, in call order (the order printed below).
"""
import numpy as np

from fastopt import _core
from fastopt.backends.cpp import batchnorm as bn, clipping as clip

N, C, S = 1024, 32, 64
n = N * C * S
rng = np.random.default_rng(0)
x = (rng.standard_normal((N, C, S)) * 2 + 3).astype(np.float32)
dy = rng.standard_normal((N, C, S)).astype(np.float32)
y, dx = np.empty_like(x), np.empty_like(x)
g, b = rng.random(C).astype(np.float32), rng.random(C).astype(np.float32)
rm, rv = rng.random(C).astype(np.float32), rng.random(C).astype(np.float32) + 0.5
sm, si = np.empty(C, np.float32), np.empty(C, np.float32)
dg, db = np.empty(C, np.float32), np.empty(C, np.float32)
grad = rng.standard_normal(n).astype(np.float32)
calls = [
    ("bn forward training", lambda: bn.batch_norm_forward(x, y, g, b, rm, rv, sm, si,
                                                          training=True, momentum=0.1, eps=1e-5)),
    ("bn forward eval (normalize pass)", lambda: bn.batch_norm_forward(
        x, y, g, b, rm, rv, sm, si, training=False, momentum=0.1, eps=1e-5)),
    ("bn backward training", lambda: bn.batch_norm_backward(dy, x, g, sm, si, dx, dg, db,
                                                            training=True)),
    ("bn backward eval (one pass)", lambda: bn.batch_norm_backward(dy, x, g, sm, si, dx, dg, db,
                                                                   training=False)),
    ("twin: read x", lambda: _core.bench_twin([x.reshape(-1)], [], [])),
    ("twin: read x, write y", lambda: _core.bench_twin([x.reshape(-1)], [], [y.reshape(-1)])),
    ("twin: read dy, x", lambda: _core.bench_twin([dy.reshape(-1), x.reshape(-1)], [], [])),
    ("twin: read dy, x, write dx", lambda: _core.bench_twin([dy.reshape(-1), x.reshape(-1)], [],
                                                            [dx.reshape(-1)])),
    ("clip: norm pass", lambda: clip.grad_norm([grad], norm_type=2.0)),
    ("clip: scale pass", lambda: clip.scale([grad], coef=0.5)),
    ("twin: read g", lambda: _core.bench_twin([grad], [], [])),
    ("twin: read-write g", lambda: _core.bench_twin([], [grad], [])),
]
for name, f in calls:   # warm: page faults and buffers out of the counted calls
    f()
for name, f in calls:
    print(name, flush=True)
    f()
