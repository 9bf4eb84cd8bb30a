"""Serial builds of the parallel Numba kernels, used below a size threshold.

Waking numba's worker threads costs tens of microseconds per call on a small
VM (measured: benchmarks/RESULTS.md, "Kernels against their twins (issue 17)"),
more than the work of a small array, and a parallel call at 10^5 elements ran
slower than plain NumPy. So every parallel kernel also has a serial build of the
same body (``prange`` runs as ``range``: same operations in the same order per
element, so the same bits), and a call below ``SERIAL_BELOW`` elements runs it.
"""
import types

from numba import njit

from fastopt.backends.numba import ParallelKernel

# Elements below which a call runs the serial build (the crossover measured
# with benchmarks/runs/2026-12-01/perf/numba_threshold.py).
SERIAL_BELOW = 1 << 20


def compile_pair(body, **options):
    """(parallel, serial): ``njit(parallel=True, cache=True)`` and ``njit(cache=True)``
    builds of ``body``; the serial one under its own name (its own cache entry). The
    parallel one is a :class:`ParallelKernel`: one parallel region at a time, and a
    call that finds the layer busy runs the serial build."""
    serial = types.FunctionType(body.__code__, body.__globals__, body.__name__ + "_serial")
    serial.__qualname__ = serial.__name__
    serial = njit(cache=True, **options)(serial)
    return ParallelKernel(njit(parallel=True, cache=True, **options)(body), serial), serial


def by_size(pair, n):
    """The build of ``pair`` (from :func:`compile_pair`) for a call on ``n`` elements."""
    return pair[1] if n < SERIAL_BELOW else pair[0]
