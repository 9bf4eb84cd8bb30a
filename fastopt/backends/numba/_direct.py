"""The numba fast path's calls below ``_serial.SERIAL_BELOW`` elements: one
njit call per public call, entered through its compiled overload.

Calling a numba dispatcher types every argument on each call (about 1 us
for ten arguments here) and the scalars had to be cast to the arrays' dtype
first (about 0.4 us each); the optimizers also made a second njit call to
fill their address table. For a call on 10^3 elements that was more than
one NumPy operation costs (benchmarks/RESULTS.md, "Issue 17, session 6").
So each single-tensor kernel here is one njit function that fills the
table (with its overlap check) and runs the serial build of the backend's
own body, and :class:`Direct` calls it through the entry point of the
overload the dispatcher compiled for the call's types: the first call with
a given key goes through the dispatcher (scalars cast to the dtype, so it
compiles and types them as the backend wrappers do) and records that
overload's entry point; later calls with the same key pass Python floats
straight to it, which numba's unboxing converts to the dtype with the one
correctly rounded conversion ``dtype.type(x)`` makes. Same compiled bodies,
same scalars: the same bits as the backend wrappers.

A key must determine every argument's numba type: the dtype, the arrays'
ndim and writeability, which optional arrays are None. The entry point does
no type checks, so callers pass only arrays of the types their key names
(fastopt/backends/numba/_fast.py checks them first).

numba's on-disk cache (``cache=True``) of a function here is checked against
this file only: after editing a body in optim.py, averaging.py, dropout.py or
clipping.py, delete this module's cache files (``__pycache__/_direct.*.nbi``/
``.nbc``) or touch this file, or these functions keep running the old body.
"""
import math

import numba
import numpy as np
from numba import njit

from fastopt.backends.numba import averaging as _averaging, clipping as _clipping
from fastopt.backends.numba import dropout as _dropout, optim as _optim


class Direct:
    """``dispatcher`` (a numba ``njit`` function) called with the entry point of the
    overload compiled for each key's types."""

    __slots__ = ("dispatcher", "entries")

    def __init__(self, dispatcher):
        self.dispatcher, self.entries = dispatcher, {}

    def __call__(self, key, *args):
        """Runs the kernel on ``args`` (the first an array of the call's dtype)."""
        entry = self.entries.get(key)
        if entry is not None:
            return entry(*args)
        t = args[0].dtype.type
        typed = tuple(t(a) if type(a) is float else a for a in args)
        result = self.dispatcher(*typed)
        compiled = self.dispatcher.overloads.get(tuple(numba.typeof(a) for a in typed))
        if compiled is not None:
            self.entries[key] = compiled.entry_point
        return result


@njit(inline="always")
def _address(a):
    return 0 if a is None else a.ctypes.data


@njit(cache=True)
def fill(addresses, starts, a0, a1, a2, a3, a4):
    """The list form's table for one tensor per role (``addresses`` has a row per
    role, absent roles are None and get address 0): True, or False when two
    present arrays overlap (they all have a0's size: spans overlap iff two
    starts are closer than one span). Reading a data address here costs a
    fraction of ``__array_interface__`` in Python (1.5 us per array)."""
    addresses[0, 0] = _address(a0)
    addresses[1, 0] = _address(a1)
    if addresses.shape[0] > 2:
        addresses[2, 0] = _address(a2)
    if addresses.shape[0] > 3:
        addresses[3, 0] = _address(a3)
        addresses[4, 0] = _address(a4)
    starts[0] = 0
    starts[1] = a0.size
    span = a0.nbytes
    if span == 0:
        return True
    k = addresses.shape[0]
    for i in range(k):
        for j in range(i + 1, k):
            ai, aj = addresses[i, 0], addresses[j, 0]
            if ai != 0 and aj != 0 and abs(ai - aj) < span:
                return False
    return True


# the serial builds as module globals: njit code calls dispatchers it finds there
_sgd_serial, _rmsprop_serial = _optim._sgd[1], _optim._rmsprop[1]
_adam_serial, _adagrad_serial = _optim._adam[1], _optim._adagrad[1]
_ema_serial, _backward_serial = _averaging._ema[1], _dropout._backward_ser
_forward_serial, _partials_serial = _dropout._forward_ser, _clipping._block_partials[1]
_scale_serial = _clipping._scale[1]


@njit(cache=True)
def sgd(p, g, buf, lr, momentum, omd, wd, sign, mode, first):
    addresses, starts = np.empty((3, 1), np.int64), np.empty(2, np.int64)
    if not fill(addresses, starts, p, g, buf, None, None):
        return False
    _sgd_serial(addresses, starts, p, lr, momentum, omd, wd, sign, mode, first)
    return True


@njit(cache=True)
def sgd_plain(p, g, lr, wd, sign):
    """:func:`sgd` without momentum, in five arguments: for SGD on small arrays numba's
    unboxing of each argument is a visible share of the call (benchmarks/RESULTS.md,
    "Session 19"). The same serial build with the same argument types."""
    addresses, starts = np.empty((3, 1), np.int64), np.empty(2, np.int64)
    if not fill(addresses, starts, p, g, None, None, None):
        return False
    zero = p.dtype.type(0.0)
    _sgd_serial(addresses, starts, p, lr, zero, zero, wd, sign, 0, False)
    return True


@njit(cache=True)
def rmsprop(p, g, sq, ga, buf, lr, alpha, oma, eps, wd, momentum, sign, centered, use_momentum):
    addresses, starts = np.empty((5, 1), np.int64), np.empty(2, np.int64)
    if not fill(addresses, starts, p, g, sq, ga, buf):
        return False
    _rmsprop_serial(addresses, starts, p, lr, alpha, oma, eps, wd, momentum, sign, centered,
                    use_momentum)
    return True


@njit(cache=True)
def adam(p, g, m, v, vmax, beta1, omb1, beta2, omb2, eps, wd, sign, step_size, bc2_sqrt,
         decay_factor, wd_mode, amsgrad):
    addresses, starts = np.empty((5, 1), np.int64), np.empty(2, np.int64)
    if not fill(addresses, starts, p, g, m, v, vmax):
        return False
    _adam_serial(addresses, starts, p, beta1, omb1, beta2, omb2, eps, wd, sign, step_size,
                 bc2_sqrt, decay_factor, wd_mode, amsgrad)
    return True


@njit(cache=True)
def adagrad(p, g, s, clr, eps, wd, sign):
    addresses, starts = np.empty((3, 1), np.int64), np.empty(2, np.int64)
    if not fill(addresses, starts, p, g, s, None, None):
        return False
    _adagrad_serial(addresses, starts, p, clr, eps, wd, sign)
    return True


@njit(cache=True)
def ema(avg, param, decay, one_minus_decay):
    addresses, starts = np.empty((2, 1), np.int64), np.empty(2, np.int64)
    if not fill(addresses, starts, avg, param, None, None, None):
        return False
    if avg.size:
        _ema_serial(avg.reshape(avg.size), param.reshape(param.size), decay, one_minus_decay)
    return True


# Outputs are allocated by the caller: an array numba allocates and returns
# has its own dtype instance (not ``np.dtype(np.float32)`` itself), which the
# fast path's ``dtype is`` checks would then decline on the next call.
@njit(cache=True)
def dropout_backward(dy, mask, dx, p):
    """False when the mask's size is not ``dy``'s in bits; else ``dx`` with the scale
    of ``_scalars.dropout_scale(p)`` (computed here from the float64 ``p``, then
    rounded once to the dtype, as the caller's cast did: checking and computing here
    took 0.1 us off a small call, benchmarks/RESULTS.md, "Session 19")."""
    if mask.size != (dy.size + 7) // 8:
        return False
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    _backward_serial(dy.reshape(dy.size), mask, dx.reshape(dx.size), dy.dtype.type(scale))
    return True


@njit(cache=True)
def dropout_forward(x, y, mask, k0, k1, threshold, scale):
    _forward_serial(x.reshape(x.size), y.reshape(y.size), mask, np.uint64(k0), np.uint64(k1),
                    np.uint64(threshold), scale)


@njit(cache=True, error_model="numpy")
def clip_l2(g, max_norm):
    """``functional.clipping.clip`` on one array with the L2 norm, in one call: the
    block partials added in order (as ``clipping.grad_norm`` adds them), the same
    coefficient, the scaling when it is below 1 (or NaN). Returns the norm."""
    acc = 0.0
    if g.size:
        for part in _partials_serial(g.reshape(g.size), _clipping.L2, 2.0):
            acc += part
    norm = math.sqrt(acc)
    coef = max_norm / (norm + 1e-6)
    if not coef >= 1.0 and g.size:
        _scale_serial(g.reshape(g.size), g.dtype.type(coef))
    return norm


SGD, RMSPROP, ADAM, ADAGRAD = Direct(sgd), Direct(rmsprop), Direct(adam), Direct(adagrad)
SGD_PLAIN = Direct(sgd_plain)
EMA, DROP_BACKWARD, DROP_FORWARD = Direct(ema), Direct(dropout_backward), Direct(dropout_forward)
CLIP_L2 = Direct(clip_l2)
