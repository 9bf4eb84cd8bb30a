"""Gradient checking by centered finite differences (lecture notes: "Gradient check").

``gradcheck(f, inputs, grads)`` compares analytic gradients with numerical ones::

    numeric[i] = (f(..., x[i] + h, ...) - f(..., x[i] - h, ...)) / (2 h)
    rel_error  = |analytic - numeric| / max(|analytic|, |numeric|)     (0 when both are 0)

and reports the worst elements. ``f`` maps the inputs (float64 copies, passed
positionally) to a scalar loss; to check a function ``y = g(x)`` with a
backward ``dx = g_backward(dy)``, use the loss ``sum(g(x) * dy)`` for a fixed
random ``dy``, whose gradient is ``g_backward(dy)``. The lecture notes' scale:
a relative error above 1e-2 means the gradient is probably wrong, 1e-7 and
less is a pass for smooth functions in float64; objectives with kinks (ReLU,
max) reach only about 1e-4 near the kinks. An element whose gradient is tiny
compares badly in relative terms for no fault of the code, so an element also
passes when its absolute error is within ``atol``.

>>> x = np.random.randn(5, 3)
>>> r = fastopt.gradcheck(lambda x: np.sum(np.tanh(x) ** 2), [x], [2 * np.tanh(x) / np.cosh(x) ** 2])
>>> r.passed
True
>>> print(r)          # summary, per input, then the worst elements one per line
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["gradcheck", "numerical_gradient", "GradcheckResult", "GradcheckEntry"]


@dataclass(frozen=True)
class GradcheckEntry:
    """One checked element: which input, where, both gradients and the errors."""
    input: int
    name: str
    index: tuple
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float

    def __str__(self):
        return (f"{self.name}{list(self.index)}: analytic {self.analytic:+.10e} numeric "
                f"{self.numeric:+.10e} abs {self.abs_error:.2e} rel {self.rel_error:.2e}")


@dataclass
class GradcheckResult:
    """What :func:`gradcheck` found.

    ``passed``: every checked element has ``rel_error <= rtol`` or
    ``abs_error <= atol``. ``max_rel_error`` / ``max_abs_error``: over all
    checked elements. ``worst``: the elements furthest past the tolerances,
    worst first (``top`` of them). ``per_input``: name -> dict of
    ``checked``, ``failed``, ``max_rel_error``, ``max_abs_error``.
    ``bool(result)`` is ``passed``; ``str(result)`` is a readable report;
    :meth:`assert_passed` raises ``AssertionError`` with that report.
    """
    passed: bool
    max_rel_error: float
    max_abs_error: float
    checked: int
    failed: int
    rtol: float
    atol: float
    h: float
    worst: list = field(default_factory=list)
    per_input: dict = field(default_factory=dict)

    def __bool__(self):
        return self.passed

    def __str__(self):
        head = (f"gradcheck {'PASSED' if self.passed else 'FAILED'}: {self.checked} elements, "
                f"{self.failed} beyond tolerance (rtol {self.rtol:g}, atol {self.atol:g}, "
                f"h {self.h:g}); max rel error {self.max_rel_error:.3e}, max abs error "
                f"{self.max_abs_error:.3e}")
        lines = [head]
        for name, d in self.per_input.items():
            lines.append(f"  {name}: {d['checked']} checked, {d['failed']} failed, max rel "
                         f"{d['max_rel_error']:.3e}, max abs {d['max_abs_error']:.3e}")
        if self.worst:
            lines.append("  worst elements:")
            lines.extend(f"    {e}" for e in self.worst)
        return "\n".join(lines)

    def assert_passed(self):
        if not self.passed:
            raise AssertionError(str(self))
        return self


def _loss(f, xs):
    value = f(*xs)
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"f must return a scalar loss, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def _prepare(inputs):
    if isinstance(inputs, np.ndarray) or not isinstance(inputs, (list, tuple)):
        raise TypeError("inputs must be a list or tuple of arrays (one per argument of f)")
    return [np.array(x, dtype=np.float64, copy=True, order="C") for x in inputs]


def _indices(shape, max_checks, rng):
    size = math.prod(shape)
    if max_checks is None or size <= max_checks:
        return list(np.ndindex(*shape))
    flat = np.sort(rng.choice(size, size=max_checks, replace=False))
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in flat]


def _numeric_at(f, xs, x, idx, h):
    orig = x[idx]
    x[idx] = orig + h
    fp = _loss(f, xs)
    x[idx] = orig - h
    fm = _loss(f, xs)
    x[idx] = orig
    return (fp - fm) / (2.0 * h)


def numerical_gradient(f, inputs, *, h=1e-5, wrt=None):
    """Centered-difference gradient of the scalar ``f(*inputs)``.

    Returns one float64 array per input (``None`` for inputs not in ``wrt``,
    a collection of input positions; all by default). ``f`` is called
    ``2 * size`` times per input; the caller's arrays are never modified.
    """
    h = _step(h)
    xs = _prepare(inputs)
    out = []
    for i, x in enumerate(xs):
        if wrt is not None and i not in wrt:
            out.append(None)
            continue
        g = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            g[idx] = _numeric_at(f, xs, x, idx, h)
        out.append(g)
    return out


def _step(h):
    h = float(h)
    if not (h > 0.0 and math.isfinite(h)):
        raise ValueError(f"Invalid h value: {h} (must be > 0)")
    return h


def gradcheck(f, inputs, grads, *, h=1e-5, rtol=1e-6, atol=1e-8, max_checks=None, seed=0,
              names=None, top=5):
    """Checks analytic gradients of a scalar function against centered differences.

    Parameters
    ----------
    f : callable
        ``f(*inputs) -> scalar``; receives float64 copies of ``inputs``
        (perturbed one element at a time), never the caller's arrays.
    inputs : list of arrays
        The point to check at.
    grads : list
        One entry per input: the analytic gradient ``d f / d input`` (same
        shape), or ``None`` to skip that input.
    h : float
        Finite-difference step (1e-5, as the lecture notes suggest).
    rtol, atol : float
        An element passes if ``rel_error <= rtol`` or ``abs_error <= atol``.
        1e-6 suits smooth float64 functions; loosen ``rtol`` to ~1e-4 for
        functions with kinks, and both for float32 kernels.
    max_checks : int, optional
        Check at most this many elements per input, a random sample drawn with
        ``seed`` (a whole network has too many parameters to check them all).
    names : list of str, optional
        Names of the inputs for the report (default ``input0``, ``input1``...).
    top : int
        How many of the worst elements the result keeps.

    Returns
    -------
    GradcheckResult
    """
    h = _step(h)
    xs = _prepare(inputs)
    if len(grads) != len(xs):
        raise ValueError(f"grads has {len(grads)} entries but inputs has {len(xs)}")
    if names is None:
        names = [f"input{i}" for i in range(len(xs))]
    elif len(names) != len(xs):
        raise ValueError(f"names has {len(names)} entries but inputs has {len(xs)}")
    analytic = []
    for i, (x, g) in enumerate(zip(xs, grads)):
        if g is None:
            analytic.append(None)
            continue
        g = np.asarray(g, dtype=np.float64)
        if g.shape != x.shape:
            raise ValueError(f"grads[{i}] has shape {g.shape} but inputs[{i}] has shape {x.shape}")
        analytic.append(g)

    rng = np.random.default_rng(seed)
    entries, per_input = [], {}
    for i, (x, g) in enumerate(zip(xs, analytic)):
        if g is None:
            continue
        stats = {"checked": 0, "failed": 0, "max_rel_error": 0.0, "max_abs_error": 0.0}
        for idx in _indices(x.shape, max_checks, rng):
            num = _numeric_at(f, xs, x, idx, h)
            ana = float(g[idx])
            abs_err = abs(ana - num)
            denom = max(abs(ana), abs(num))
            rel_err = abs_err / denom if denom > 0.0 else 0.0
            if math.isnan(num) or math.isnan(ana):
                abs_err = rel_err = math.inf
            entry = GradcheckEntry(i, names[i], idx, ana, num, abs_err, rel_err)
            entries.append(entry)
            stats["checked"] += 1
            stats["failed"] += not _ok(entry, rtol, atol)
            stats["max_rel_error"] = max(stats["max_rel_error"], rel_err)
            stats["max_abs_error"] = max(stats["max_abs_error"], abs_err)
        per_input[names[i]] = stats

    def badness(e):  # how far past the more lenient of the two tolerances
        return min(e.rel_error / rtol if rtol > 0 else math.inf,
                   e.abs_error / atol if atol > 0 else math.inf)

    worst = sorted(entries, key=badness, reverse=True)[:top]
    failed = sum(d["failed"] for d in per_input.values())
    return GradcheckResult(
        passed=failed == 0,
        max_rel_error=max((e.rel_error for e in entries), default=0.0),
        max_abs_error=max((e.abs_error for e in entries), default=0.0),
        checked=len(entries), failed=failed, rtol=float(rtol), atol=float(atol), h=h,
        worst=worst, per_input=per_input)


def _ok(e, rtol, atol):
    return e.rel_error <= rtol or e.abs_error <= atol
