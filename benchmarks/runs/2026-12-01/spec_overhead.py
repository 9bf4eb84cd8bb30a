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


def report(title):
    res = interleaved(cases, repeat=1001, min_time=0.0005)
    print(f"{title}: {len(res['adam before'].samples)} interleaved rounds of "
          f"{res['adam before'].calls_per_sample}+ calls")
    for kernel in ("adam", "sgd"):
        _line(kernel, res)


def _line(kernel, res):
    b, a = res[f"{kernel} before"], res[f"{kernel} after"]
    # each round's ratio compares two samples taken moments apart (same machine load)
    ratios = sorted(x / y for x, y in zip(a.samples, b.samples))
    q = lambda f: ratios[int(f * (len(ratios) - 1))]
    print(f"  {kernel}_step  median before {b.median * 1e9:6.0f} ns  after {a.median * 1e9:6.0f} ns  "
          f"per-round after/before: median {q(0.5):.3f} (quartiles {q(0.25):.3f}-{q(0.75):.3f})")


print(f"fastopt {rev} (before) vs working tree (after), 1000 float32 elements, backend='cpp'")
report("whole call (pre-check + scalars + native kernel)")
# The same Python work with the native call replaced by one trivial function in
# both modules: what the generated pre-check itself costs, without the kernel's noise.
_accept = lambda *args: True   # noqa: E731
for mod in (before, fastopt.functional.optim):
    mod._adam_fast = mod._sgd_fast = _accept
report("Python side only (native fast call replaced by a no-op)")
