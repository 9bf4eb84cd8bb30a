"""Shared test settings: which backends run, sizes, tolerances, random data."""
import zlib

import numpy as np
import pytest

import fastopt

CPU_BACKENDS = [b for b in ("numpy", "numba", "cpp") if b in fastopt.available_backends()]
# Sizes: empty, single, SIMD tails (AVX-512 holds 16 floats / 8 doubles), and
# one over a million elements, which crosses the thread split.
SIZES = [0, 1, 7, 15, 17, 1023, 4097, 1_000_003]
DTYPES = [np.float32, np.float64]
# Tolerances per dtype against the float64 reference (rtol, atol): a float32
# kernel rounds each of its ~10 operations once.
TOL = {np.dtype(np.float32): (2e-5, 2e-6), np.dtype(np.float64): (1e-12, 1e-14)}


def tol(dtype):
    rtol, atol = TOL[np.dtype(dtype)]
    return dict(rtol=rtol, atol=atol)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name: fresh data per test, reproducible."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


def pytest_report_header(config):
    info = fastopt.info()
    lines = [f"fastopt backends: {', '.join(fastopt.available_backends())}"]
    for name, state in info["backends"].items():
        if state != "available":
            lines.append(f"  {name} unavailable: {state}")
    if "cpp" in info:
        lines.append(f"  cpp SIMD path: {info['cpp']['isa']}, threads: {info['cpp']['threads']}")
    return lines
