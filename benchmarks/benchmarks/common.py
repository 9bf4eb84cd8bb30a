"""The shared asv benchmark class: inputs built in setup from fresh random data
through fastopt.bench; unavailable backends or kernels raise
NotImplementedError in setup, which asv reports as skipped (n/a)."""
import math
import os
import time

import numpy as np

from fastopt import bench

SUBSET = os.environ.get("FASTOPT_ASV_SUBSET", "") not in ("", "0")
SIZES = [10 ** 5] if SUBSET else [10 ** 5, 10 ** 7]          # in cache, out of cache
DTYPES = ["float32"] if SUBSET else ["float32", "float64"]
RUNNERS = (["cpp", "numpy-plain", "twin"] if SUBSET else
           ["cpp", "numba", "numpy", "cuda", "numpy-plain", "numpy-out", "torch", "torch-raw",
            "twin"])

FASTOPT_BACKENDS = ("cpp", "numba", "numpy", "cuda")  # the rest of RUNNERS are baselines


def kernel_names(family, subset=None):
    names = [k.name for k in bench.by_family(family)]
    if SUBSET and subset is not None:
        names = [n for n in names if n in subset]
    return names


class _FamilyBenchmark:
    """Subclasses set ``params = [kernels, RUNNERS, SIZES, DTYPES]``."""
    param_names = ["kernel", "backend", "size", "dtype"]
    timeout = 300
    # time_step: asv's own repeats; a 1e7 NumPy baseline call is slow, keep it bounded
    repeat = (1, 5, 10.0)
    rounds = 2

    def setup(self, kernel, backend, size, dtype):
        k = bench.get(kernel)
        why = k.unavailable(backend)
        if why is not None:
            raise NotImplementedError(why)
        rng = np.random.default_rng([size, np.dtype(dtype).itemsize])
        self.arrays = k.setup(size, np.dtype(dtype), rng)
        self.step = k.make(backend, self.arrays)  # GPU runners synchronize inside
        self.step()  # warm-up: numba compilation, first-touch page faults
        n = self.arrays["x"].size if k.family == "batchnorm" else size
        self.bytes = k.bytes_per_element(dtype) * n

    def teardown(self, *params):
        self.arrays = self.step = None

    def time_step(self, kernel, backend, size, dtype):
        self.step()

    def track_gbps(self, kernel, backend, size, dtype):
        """Effective bandwidth: bytes the kernel must move / median time per call."""
        # setup already made the warm-up call
        t = bench.interleaved({backend: self.step}, repeat=3, min_time=0.01, warmup=0)[backend]
        return self.bytes / t.median / 1e9

    track_gbps.unit = "GB/s"

    def track_twin_ratio(self, kernel, backend, size, dtype):
        """CPU time per call / the same-traffic twin's (1.0 = the twin's speed; larger is
        slower, as asv reads it): the gate of asv_compare.sh, which runs it on one thread.
        The two are timed interleaved in one window, and by CPU time (process_time), which
        leaves out the time a process waits descheduled, most of a wall-clock sample on a
        loaded machine; what load still adds (cache and memory contention) only adds, so
        the ratio is of the minima. fastopt's backends only: a baseline's ratio (NaN, n/a
        in asv) says nothing about a fastopt commit."""
        if backend not in FASTOPT_BACKENDS:
            return math.nan
        # built here, not in setup: a change to setup would change every benchmark's
        # asv version and hide the history recorded before it
        twin = bench.get(kernel).make("twin", self.arrays)
        t = bench.interleaved({"k": self.step, "twin": twin}, repeat=15, min_time=0.01,
                              clock=time.process_time)
        return t["k"].min / t["twin"].min

    track_twin_ratio.unit = "x twin"
