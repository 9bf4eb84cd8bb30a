"""Digest of every cpp batch norm output on shapes of the row layout (S < 256)
and a few plane shapes: run under two builds and diff the printed lines.

    PYTHONPATH=BUILD python benchmarks/runs/2026-12-01/bnrows/bitident.py > FILE
    FASTOPT_NUM_THREADS=1 ... (results must not depend on the thread count)
"""
import hashlib

import ml_dtypes
import numpy as np

import fastopt

SHAPES = [(2, 7), (5, 3), (33, 17), (300, 1000), (257, 4097), (64, 32, 64), (97, 32, 64),
          (1000, 8, 7), (40, 33, 15), (6, 5, 300), (8, 3, 16, 16), (2000, 2048), (129, 4096, 1),
          (4883, 32, 64)]


def digest(*arrays):
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).view(np.uint8).tobytes())
    return h.hexdigest()[:16]


rng = np.random.default_rng(7)
for shape in SHAPES:
    C = shape[1]
    for dt in (np.float32, np.float64, ml_dtypes.bfloat16, np.float16):
        pdt = np.float64 if dt == np.float64 else np.float32
        x = (rng.standard_normal(shape) * 3 + 5).astype(dt)
        dy = rng.standard_normal(shape).astype(dt)
        g = rng.random(C).astype(pdt) + 0.5
        b = rng.standard_normal(C).astype(pdt)
        rm, rv = rng.standard_normal(C).astype(pdt), rng.random(C).astype(pdt) + 0.5
        line = []
        for training in (True, False):
            rm2, rv2 = rm.copy(), rv.copy()
            y, sm, si = fastopt.batch_norm_forward(x, g, b, rm2, rv2, training=training,
                                                   backend="cpp")
            dx, dg, db = fastopt.batch_norm_backward(dy, x, g, sm, si, training=training,
                                                     backend="cpp")
            line.append(digest(y, sm, si, rm2, rv2, dx, dg, db))
        print(shape, np.dtype(dt).name, *line, flush=True)
