"""What a benchmarked kernel is: its traffic, its inputs and its runners.

A :class:`Kernel` knows

* the bytes it must move per element (docs/notes-bench.md: bytes per element) as the passes
  over memory of its fused implementation, each a :class:`Traffic` (arrays
  read, read and written, written; bit masks read or written). The same
  description gives the GB/s figures and drives the same-traffic twin;
* ``setup(n, dtype, rng)``: fresh random inputs (never zeros) for about ``n``
  elements, as a dict of NumPy arrays;
* a runner factory per variant: ``"cpp"``, ``"numba"``, ``"numpy"``,
  ``"cuda"`` (fastopt's backends) and the baselines ``"numpy-plain"``
  (lecture-notes NumPy, temporaries), ``"numpy-out"`` (NumPy with ``out=``
  buffers), ``"torch"`` (torch CPU: fused/foreach optimizers, functional ops),
  ``"torch-raw"`` (torch's raw fused op, no ``step()`` wrapper) and ``"twin"``.
  A factory takes the arrays and returns a zero-argument callable that runs
  one step; GPU callables synchronize before returning.

Output policy. A kernel that returns new arrays (batch norm, dropout) is
timed under one policy for every runner of a cell: ``"cached"``, outputs
written into buffers that are reused call after call (fastopt's buffer
cache; ``out=`` for NumPy and torch; preallocated outputs for the twin), or
``"fresh"``, new never-touched outputs on every call (fastopt with
``FASTOPT_BUFFER_CACHE_MB=0``; NumPy and torch allocating; the twin
allocating). Fresh outputs cost a page fault per 4 KiB written. Baseline
factories of such kernels take ``(arrays, fresh)``; ``numpy-plain`` is the
lecture notes as written and always allocates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from fastopt import backends as _backends

BACKENDS = ("cpp", "numba", "numpy", "cuda")
BASELINES = ("numpy-plain", "numpy-out", "torch", "torch-raw", "twin")
RUNNERS = BACKENDS + BASELINES
OUTPUT_POLICIES = ("cached", "fresh")


@dataclass(frozen=True)
class Traffic:
    """One pass over memory: arrays read only, read and written, written only."""
    ro: Tuple[str, ...] = ()
    rw: Tuple[str, ...] = ()
    wo: Tuple[str, ...] = ()
    mask_in: Optional[str] = None    # a bit mask read (1/8 byte per element)
    mask_out: Optional[str] = None   # a bit mask written

    def bytes_per_element(self, itemsize: int) -> float:
        arrays = len(self.ro) + 2 * len(self.rw) + len(self.wo)
        return arrays * itemsize + (self.mask_in is not None) / 8 + (self.mask_out is not None) / 8


@dataclass
class Kernel:
    name: str
    family: str                      # optim, batchnorm, dropout, utils
    api: str                         # the fastopt function it times
    doc: str
    passes: Tuple[Traffic, ...]      # the minimum traffic of its fused implementation
    setup: Callable[[int, np.dtype, np.random.Generator], dict]
    fastopt: Callable[[dict, str], Callable[[], object]]
    baselines: Dict[str, Callable[..., Callable[[], object]]] = field(default_factory=dict)
    allocates: bool = False          # returns new arrays: the output policy applies

    def bytes_per_element(self, dtype) -> float:
        itemsize = np.dtype(dtype).itemsize
        return sum(p.bytes_per_element(itemsize) for p in self.passes)

    def runner_names(self) -> List[str]:
        return list(BACKENDS) + [b for b in BASELINES if b in self.baselines or b == "twin"]

    def unavailable(self, runner: str) -> Optional[str]:
        """None when ``runner`` can run this kernel here, else why not."""
        if runner in BACKENDS:
            return _backends.unavailable_reason(runner)
        if runner == "twin":
            return None
        if runner not in self.baselines:
            return f"no {runner} baseline for {self.name}"
        if runner.startswith("torch"):
            return torch_unavailable()
        return None

    def make(self, runner: str, arrays: dict, outputs: str = "cached") -> Callable[[], object]:
        """A callable running one step of ``runner`` on ``arrays`` (from :meth:`setup`)
        under the output policy ``outputs`` (``"cached"`` or ``"fresh"``)."""
        if outputs not in OUTPUT_POLICIES:
            raise ValueError(f"outputs is one of {OUTPUT_POLICIES}, got {outputs!r}")
        why = self.unavailable(runner)
        if why is not None:
            raise NotImplementedError(why)
        fresh = self.allocates and outputs == "fresh"
        if runner == "twin":
            from fastopt.bench.twin import make_twin
            return make_twin(self.passes, arrays, fresh=fresh)
        if runner in BACKENDS:
            if runner == "cuda":
                return on_gpu(self.fastopt, arrays)
            return self.fastopt(arrays, runner)
        factory = self.baselines[runner]
        return factory(arrays, fresh) if self.allocates else factory(arrays)


_torch_state: Dict[str, object] = {}


def torch_unavailable() -> Optional[str]:
    if "why" not in _torch_state:
        try:
            import torch  # noqa: F401
            _torch_state["why"] = None
        except Exception as exc:
            _torch_state["why"] = f"torch not installed ({type(exc).__name__}: {exc})"
    return _torch_state["why"]


def rand(rng, shape, dtype, positive=False):
    """Fresh standard-normal values (|x| + 0.1 when ``positive``), drawn in ``dtype``."""
    a = rng.standard_normal(shape, dtype=np.dtype(dtype).type)
    if positive:
        np.abs(a, out=a)
        a += 0.1
    return a


def as_torch(a):
    import torch
    return torch.from_numpy(a)


def on_gpu(factory, arrays):
    import cupy
    gpu = {k: (cupy.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}
    call = factory(gpu, "cuda")
    sync = cupy.cuda.get_current_stream().synchronize

    def run():
        call()
        sync()
    return run


def buffer(like: np.ndarray, fresh: bool, shape=None, dtype=None):
    """A zero-argument callable giving an output array like ``like``: the same
    preallocated one every call (cached), or a new one (fresh)."""
    shape = like.shape if shape is None else shape
    dtype = like.dtype if dtype is None else dtype
    if fresh:
        return lambda: np.empty(shape, dtype)
    out = np.empty(shape, dtype)
    return lambda: out


def fastopt_fresh_outputs() -> bool:
    """True when fastopt's buffer cache is off in this process (fresh outputs)."""
    import os
    return os.environ.get("FASTOPT_BUFFER_CACHE_MB", "").strip() == "0"
