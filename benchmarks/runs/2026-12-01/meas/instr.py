"""One kernel call on 2^22 fp32 elements, one thread, for callgrind:
FASTOPT_NUM_THREADS=1 PYTHONPATH=. valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    python benchmarks/runs/2026-12-01/meas/instr.py WHICH
Instructions per element = (total of WHICH - total of "none") / 2^22. The twins are the
honest twin of today (_core.bench_twin): forward reads x, writes y and the bit mask;
backward reads x and the bit mask, writes y."""
import sys

import numpy as np

from fastopt import _core

n = 1 << 22
x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
y = np.empty_like(x)
m = np.random.default_rng(1).integers(0, 256, n // 8, dtype=np.uint8)
t = round(0.5 * 2**32)
s = 2.0
which = sys.argv[1]
if which == "forward":
    _core.dropout_forward(x, y, m, 1, t, s)
elif which == "mask":
    _core.dropout_mask(m, n, 1, t)
elif which == "backward":
    _core.dropout_backward(x, m, y, s)
elif which == "twin_forward":
    _core.bench_twin([x], [], [y], None, m)
elif which == "twin_backward":
    _core.bench_twin([x], [], [y], m, None)
else:
    assert which == "none", which
