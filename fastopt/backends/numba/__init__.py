"""The Numba backend: the NumPy reference's maths as ``@njit(parallel=True, cache=True)``
loops, the CPU fallback when the C++ extension is missing. Scalars are passed in
the array's dtype (a Python float would promote a float32 loop to float64).

Threading: numba's default ``omp`` layer loads the system libgomp; next to
torch's own libgomp that makes two spinning OpenMP pools on the same cores and
every parallel call stalls for milliseconds (docs/notes-bench.md; two OpenMP runtimes).
Unless the user chose a layer (NUMBA_THREADING_LAYER or
NUMBA_THREADING_LAYER_PRIORITY), fastopt asks numba for its ``workqueue``
layer, whose idle workers sleep. It must be set before numba starts its
threads, so it takes effect only if no parallel numba code ran before.
"""
import os

import numba

THREADING_LAYER_CHOSEN_BY_USER = bool(
    os.environ.get("NUMBA_THREADING_LAYER") or os.environ.get("NUMBA_THREADING_LAYER_PRIORITY"))
if not THREADING_LAYER_CHOSEN_BY_USER:
    numba.config.THREADING_LAYER = "workqueue"

# ---- one parallel region at a time
# The workqueue layer is not thread-safe: two Python threads inside parallel
# kernels at once abort the process ("Concurrent access has been detected").
# So every parallel kernel goes through ParallelKernel: one runs at a time,
# and a call that finds the layer busy runs its serial build (same maths, same
# bits: results never depend on the threads) or waits when it has none.
import threading  # noqa: E402

from numba import njit  # noqa: E402

_layer = threading.Lock()


class ParallelKernel:
    """``parallel`` (an ``njit(parallel=True)`` dispatcher) callable from any thread."""

    __slots__ = ("parallel", "serial", "__wrapped__")

    def __init__(self, parallel, serial=None):
        self.parallel, self.serial, self.__wrapped__ = parallel, serial, parallel

    def __call__(self, *args):
        if _layer.acquire(blocking=self.serial is None):
            try:
                return self.parallel(*args)
            finally:
                _layer.release()
        return self.serial(*args)


def parallel_njit(fn=None, **options):
    """``@njit(parallel=True, cache=True, **options)`` made safe for concurrent calls."""
    def wrap(f):
        return ParallelKernel(njit(parallel=True, cache=True, **options)(f))
    return wrap(fn) if fn is not None else wrap
