"""One kernel call on 2^22 fp32 elements, one thread, for callgrind:
FASTOPT_NUM_THREADS=1 valgrind --tool=callgrind python instr.py WHICH
(instructions of WHICH minus those of "none", divided by 2^22 = instructions per element)."""
import sys
import numpy as np
from fastopt import _core
n = 1 << 22
x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
y = np.empty_like(x); m = np.empty(n // 8, np.uint8)
t = round(0.3 * 2**32); s = 1 / 0.7
which = sys.argv[1]
if which == "forward": _core.dropout_forward(x, y, m, 1, t, s)
if which == "mask": _core.dropout_mask(m, n, 1, t)
if which == "backward": _core.dropout_backward(x, m, y, s)
if which == "twin_forward": _core.dropout_twin_forward(x, y, m)
