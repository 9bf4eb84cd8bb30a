"""Bytecodes the generated entry point executes for a plain float32 call (deterministic).

Usage: PYTHONPATH=<tree> python benchmarks/mp_fastpath_bytecodes.py <label>"""
import sys, numpy as np
import fastopt
from fastopt.functional import optim as fo
n = 16
r = np.random.default_rng(0)
p, g, m = (r.standard_normal(n).astype(np.float32) for _ in range(3)); v = np.abs(m); buf = m.copy()
count = 0
def tracer(frame, event, arg):
    global count
    if frame.f_code.co_filename.startswith("<fastopt._entry"):
        frame.f_trace_opcodes = True
        if event == "opcode":
            count += 1
        return tracer
    return None
for name, call in (("adam", lambda: fastopt.adam_step(p, g, m, v, step=3, lr=1e-3)),
                   ("sgd", lambda: fastopt.sgd_step(p, g, buf, lr=0.01, momentum=0.9))):
    count = 0
    sys.settrace(tracer); call(); sys.settrace(None)
    print(sys.argv[1], name, "bytecodes in the entry point:", count)
