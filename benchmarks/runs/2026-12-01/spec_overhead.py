"""Per-call cost of fastopt.adam_step / sgd_step (1000 float32 elements, cpp fast path)
before and after the validation tables (issue 12): the functional module as of a git
revision (default c491690) is loaded beside the current one and both are timed
interleaved (fastopt.bench.timer), median of many rounds.

    PYTHONPATH=. python benchmarks/runs/2026-12-01/spec_overhead.py [REV]
"""
import subprocess
import sys
import types

import numpy as np

import fastopt
from fastopt.bench.timer import interleaved

rev = sys.argv[1] if len(sys.argv) > 1 else "c491690"
src = subprocess.run(["git", "show", f"{rev}:fastopt/functional/optim.py"], check=True,
                     capture_output=True, text=True).stdout
before = types.ModuleType("optim_before")
before.__dict__["__name__"] = "fastopt.functional.optim_before"   # relative imports resolve
exec(compile(src, f"{rev}:fastopt/functional/optim.py", "exec"), before.__dict__)

rng = np.random.default_rng(0)
p, g, m = (rng.standard_normal(1000).astype(np.float32) * 1e-3 for _ in range(3))
v = np.abs(rng.standard_normal(1000)).astype(np.float32)
cases = {}
for name, mod in (("before", before), ("after", fastopt.functional.optim)):
    cases[f"adam {name}"] = (lambda f=mod.adam_step: f(p, g, m, v, step=10, lr=1e-3, backend="cpp"))
    cases[f"sgd {name}"] = (lambda f=mod.sgd_step: f(p, g, m, lr=1e-3, momentum=0.9, backend="cpp"))
res = interleaved(cases, repeat=201, min_time=0.002)
print(f"fastopt {rev} vs working tree, 1000 float32 elements, cpp, median of "
      f"{len(res['adam before'].samples)} interleaved samples")
for kernel in ("adam", "sgd"):
    b, a = res[f"{kernel} before"].median, res[f"{kernel} after"].median
    print(f"{kernel}_step  before {b * 1e9:7.0f} ns  after {a * 1e9:7.0f} ns  after/before {a / b:.3f}")
