"""The Numba backend: the NumPy reference's maths as ``@njit(parallel=True, cache=True)``
loops, the CPU fallback when the C++ extension is missing. Scalars are passed in
the array's dtype (a Python float would promote a float32 loop to float64).

Threading: numba's default ``omp`` layer loads the system libgomp; next to
torch's own libgomp that makes two spinning OpenMP pools on the same cores and
every parallel call stalls for milliseconds (BENCHMARKING.md, "Pitfalls").
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
