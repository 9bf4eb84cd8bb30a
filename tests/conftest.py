"""Shared test settings: which backends run, sizes, tolerances, random data."""
import zlib

import numpy as np
import pytest

import fastopt

CPU_BACKENDS = [b for b in ("numpy", "numba", "cpp") if b in fastopt.available_backends()]
# The backends compared with the NumPy reference: the reference itself is
# checked against closed forms (tests/test_numpy_reference.py), never against itself.
COMPILED_BACKENDS = [b for b in CPU_BACKENDS if b != "numpy"]
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


# Unit roundoff of each dtype: one correctly rounded operation is off by at most u relative.
UNIT_ROUNDOFF = {np.dtype(np.float32): 2.0 ** -24, np.dtype(np.float64): 2.0 ** -53}
# An optimizer step rounds each stored value at most 14 times (the longest chain is centered
# RMSprop with momentum: g*g, alpha*sq, (1-alpha)*g*g, +, grad_avg**2, -, sqrt, +eps, g/avg,
# momentum*buf, +, lr*buf, -, plus weight decay), and the subtraction square_avg - grad_avg**2
# loses at most another factor ~2 on the test data (grad_avg**2 <= 0.81 square_avg). So 32
# units of roundoff of the element's scale bound an exact formula (measured worst: 14.7, in
# that case; 1-6 elsewhere), while a misplaced eps or coefficient moves results by 1e-4 or
# more (scripts/mutation-check.sh).
OPTIM_ULPS = 32


def assert_close_to_reference(got, want, scale, dtype, ulps=OPTIM_ULPS, err_msg=""):
    """Elementwise ``|got - want| <= ulps * u * scale``: ``want`` is the float64 reference
    and ``scale`` the largest magnitude among the element's inputs and results, so the
    bound is relative to what the element's arithmetic handled."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    bound = ulps * UNIT_ROUNDOFF[np.dtype(dtype)] * np.asarray(scale, dtype=np.float64)
    err = np.abs(got - want)
    bad = ~(err <= bound) & ~(np.isnan(got) & np.isnan(want))
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        raise AssertionError(
            f"{err_msg}: {int(bad.sum())} of {bad.size} elements off by more than {ulps} units of "
            f"roundoff of their scale; first at flat index {i}: got {got.reshape(-1)[i]!r}, "
            f"reference {want.reshape(-1)[i]!r}, scale {np.asarray(scale).reshape(-1)[i]!r}")


def element_scale(*arrays):
    """The elementwise largest magnitude over ``arrays`` (before and after a step)."""
    return np.max([np.abs(np.asarray(a, dtype=np.float64)) for a in arrays], axis=0)


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


def count_validated_steps(monkeypatch, opt):
    """Records each validated (unplanned) update a ``fastopt.torch`` optimizer makes: its
    checker's ``_update``, which calls the public functional step. The list holds each
    call's ``grad_scale``; ``raising=True`` makes such an update fail instead."""
    base = type(opt)._checker

    class Counting(base):
        def _update(self, *a, **k):
            calls.append(k.get("grad_scale"))
            if calls.raising:
                raise AssertionError("a planned step took the validated path")
            return base._update(self, *a, **k)

    calls = _Calls()
    monkeypatch.setattr(opt, "_checker", Counting, raising=False)
    return calls


class _Calls(list):
    raising = False
