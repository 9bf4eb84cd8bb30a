"""The numba backend's fast path: plainly valid single-array calls go straight
to the kernels, as the cpp backend's native fast path does for cpp.

A small numba call spent most of its time in Python before reaching its
kernel: the shared validator (``fastopt._validate.call``), the backend
wrapper's address table and the dispatch (benchmarks/RESULTS.md, "Issue 17,
session 5"). ``fastopt._entry`` puts in front of each entry point a
generated pre-check that every hyper-parameter is plainly valid; when the
call then selects the numba backend it calls the function of this module
registered under the kernel's name, with the native fast path's arguments
(or the entry point's own). Each function accepts only calls that the
validator would accept unchanged: single C-contiguous NumPy arrays (exact
``np.ndarray``) of one float32/float64 dtype and one shape, outputs writeable,
no two overlapping, no array passed that its option leaves unused. It returns
False (None for kernels that return a result) for anything else, which then
takes the validated path and gets its precise error. The kernels, their
arguments and the serial/parallel choice are the backend wrappers' own, so
results are the same bits.
"""
import threading

import numpy as np

from fastopt import _scalars, _validate
from fastopt.backends.numba import _direct
from fastopt.backends.numba import averaging as _averaging, batchnorm as _nb_bn
from fastopt.backends.numba import clipping as _nb_clipping, dropout as _dropout
from fastopt.backends.numba import optim as _optim
from fastopt.functional import clipping as _clipping
from fastopt.backends.numba._serial import SERIAL_BELOW

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_ndarray = np.ndarray
_local = threading.local()


def _plain(outs, ins):
    """The call's key (dtype number, ndim, True when every read array is writeable)
    when every array of ``outs`` (written) and ``ins`` (read) is plainly valid
    (exact, C-contiguous, aligned ndarrays of one float dtype and shape, outputs
    writeable), else None. Overlaps are checked in njit code (``_direct.fill``).
    ``flags.carray`` is C-contiguous, aligned and writeable in one attribute."""
    a0 = (outs or ins)[0]
    if type(a0) is not _ndarray:
        return None
    dtype, shape = a0.dtype, a0.shape
    if dtype is not _F32 and dtype is not _F64:
        return None
    for a in outs:
        if (type(a) is not _ndarray or a.dtype is not dtype or a.shape != shape
                or not a.flags.carray):
            return None
    writeable = True
    for a in ins:
        if type(a) is not _ndarray or a.dtype is not dtype or a.shape != shape:
            return None
        if not a.flags.carray:
            f = a.flags
            if not (f.c_contiguous and f.aligned):
                return None
            writeable = writeable and f.writeable
    return dtype.num, a0.ndim, writeable


def _table(k):
    """(addresses, starts) of a k-role table, one per thread and reused: the kernel
    reads them only during the call."""
    cache = _local.__dict__
    t = cache.get(k)
    if t is None:
        t = cache[k] = (np.zeros((k, 1), np.int64), np.zeros(2, np.int64))
    return t


def _run(kernel, direct, roles, outs, ins, key, scalars):
    """Runs ``kernel``'s build for the size on ``roles`` (param, grad, the states;
    None where absent) when every array of ``outs`` (written) and ``ins`` (read)
    is plainly valid, with ``scalars`` (Python floats, then the options): below
    ``SERIAL_BELOW`` elements the serial build through ``direct`` (one njit call,
    fastopt/backends/numba/_direct.py), else the parallel build. ``key`` names
    the options that change the compiled types (which states are None...)."""
    plain = _plain(outs, ins)
    if plain is None:
        return False
    if roles[0].size < SERIAL_BELOW:
        key = plain, key
        entry = direct.entries.get(key)   # Direct's own first step, without its call
        return entry(*roles, *scalars) if entry is not None else direct(key, *roles, *scalars)
    return _parallel(kernel, roles, scalars)


def _parallel(kernel, roles, scalars):
    """Runs the parallel build of ``kernel`` on plainly valid ``roles`` (False when
    two of them overlap)."""
    addresses, starts = _table(len(roles))
    if not _direct.fill(addresses, starts, *roles, *(None,) * (5 - len(roles))):
        return False
    d = roles[0].dtype.type
    kernel[0](addresses, starts, roles[0], *[d(x) if type(x) is float else x for x in scalars])
    return True


def sgd(param, grad, buf, lr, momentum, omd, wd, sign, nesterov, first_step, backend):
    """SGD checks its two or three arrays inline, not through ``_run``: it is the
    cheapest kernel, so below 10^4 elements Python is most of a call, and ``_run``'s
    lists, loops and nested key cost about 0.6 us more than this (benchmarks/RESULTS.md,
    "Session 16"). The same checks as ``_plain`` (a 1-D array's size stands for its
    shape, which is cheaper to compare), the same builds, the same bits."""
    if type(param) is not _ndarray or type(grad) is not _ndarray:
        return False
    dtype, ndim, n = param.dtype, param.ndim, param.size
    if ((dtype is not _F32 and dtype is not _F64) or grad.dtype is not dtype
            or grad.ndim != ndim or grad.size != n or ndim != 1 and grad.shape != param.shape
            or not param.flags.carray):
        return False
    flags = grad.flags
    writeable = flags.carray
    if not writeable and not (flags.c_contiguous and flags.aligned):
        return False
    if buf is None:
        if momentum != 0.0:
            return False
        if n < SERIAL_BELOW:
            key = (dtype is _F32, ndim, writeable)
            direct = _direct.SGD_PLAIN
            entry = direct.entries.get(key)
            if entry is None:
                return direct(key, param, grad, lr, wd, sign)
            return entry(param, grad, lr, wd, sign)
        mode = 0
    elif (momentum == 0.0 or type(buf) is not _ndarray or buf.dtype is not dtype
          or buf.ndim != ndim or buf.size != n or ndim != 1 and buf.shape != param.shape
          or not buf.flags.carray):
        return False
    else:
        mode = 2 if nesterov else 1
    if n >= SERIAL_BELOW:
        return _parallel(_optim._sgd, (param, grad, buf),
                         (lr, momentum, omd, wd, sign, mode, first_step))
    direct = _direct.SGD
    key = (dtype is _F32, ndim, writeable, mode)   # determines every argument's numba type
    entry = direct.entries.get(key)
    if entry is None:
        return direct(key, param, grad, buf, lr, momentum, omd, wd, sign, mode, first_step)
    return entry(param, grad, buf, lr, momentum, omd, wd, sign, mode, first_step)


def rmsprop(param, grad, square_avg, grad_avg, buf, lr, alpha, oma, eps, wd, momentum, sign,
            centered, backend):
    if centered != (grad_avg is not None) or (momentum == 0.0) != (buf is None):
        return False
    # None, not False, for an unused state: see backends/numba/optim.py rmsprop
    c, m = centered or None, buf is not None or None
    outs = [x for x in (param, square_avg, grad_avg, buf) if x is not None]
    return _run(_optim._rmsprop, _direct.RMSPROP, (param, grad, square_avg, grad_avg, buf), outs,
                [grad], (c, m), (lr, alpha, oma, eps, wd, momentum, sign, c, m))


def adam(param, grad, m, v, vmax, beta1, omb1, beta2, omb2, eps, wd, sign, step_size, bc2_sqrt,
         decay_factor, wd_mode, amsgrad, backend):
    if amsgrad != (vmax is not None):
        return False
    outs = [param, m, v] if vmax is None else [param, m, v, vmax]
    a = amsgrad or None
    return _run(_optim._adam, _direct.ADAM, (param, grad, m, v, vmax), outs, [grad], a,
                (beta1, omb1, beta2, omb2, eps, wd, sign, step_size, bc2_sqrt, decay_factor,
                 wd_mode, a))


def adagrad(param, grad, state_sum, clr, eps, wd, sign, backend):
    return _run(_optim._adagrad, _direct.ADAGRAD, (param, grad, state_sum), [param, state_sum],
                [grad], None, (clr, eps, wd, sign))


def ema_update(avg, param, decay, backend):
    plain = _plain([avg], [param])
    if plain is None:
        return False
    if avg.size < SERIAL_BELOW:
        return _direct.EMA(plain, avg, param, decay, 1.0 - decay)
    if not _direct.fill(*_table(2), avg, param, None, None, None):
        return False
    _averaging.ema([avg], [param], decay=decay)
    return True


def dropout_forward(x, p, seed, training, backend):
    plain = _plain([], [x])
    if plain is None:
        return None
    if not training:
        return x, None
    if x.size < SERIAL_BELOW:
        s = _scalars.dropout(p)
        y, mask = np.empty_like(x), np.empty((x.size + 7) // 8, np.uint8)
        _direct.DROP_FORWARD(plain, x, y, mask, seed & 0xFFFFFFFF, seed >> 32, s.threshold,
                             s.scale)
        return y, mask
    return _dropout.forward(x, p, seed)


def dropout_backward(dy, mask, p, backend):
    """Checks inline, as :func:`sgd` does: NumPy's own dropout backward is one multiply,
    so Python is the whole cost of a small call (benchmarks/RESULTS.md, "Session 16",
    "Session 19"). The njit function checks the mask's size and computes the scale."""
    if type(dy) is not _ndarray or type(mask) is not _ndarray:
        return None
    dtype = dy.dtype
    if (dtype is not _F32 and dtype is not _F64) or mask.dtype is not _U8 or mask.ndim != 1:
        return None
    flags = dy.flags
    dy_writeable = flags.carray   # else read-only or not plain: the flags one by one
    if not dy_writeable and not (flags.c_contiguous and flags.aligned):
        return None
    flags = mask.flags
    mask_writeable = flags.carray
    if not mask_writeable and not (flags.c_contiguous and flags.aligned):
        return None
    if dy.size >= SERIAL_BELOW:
        return _dropout.backward(dy, mask, p) if mask.size == (dy.size + 7) // 8 else None
    dx = _empty(dy.shape, dtype)   # np.empty_like costs 0.08 us more
    direct = _direct.DROP_BACKWARD
    key = (dtype is _F32, dy.ndim, dy_writeable, mask_writeable)   # the arguments' numba types
    entry = direct.entries.get(key)
    if entry is None:   # p stays float64 (Direct casts Python floats to the dtype)
        ok = direct(key, dy, mask, dx, np.float64(p))
    else:
        ok = entry(dy, mask, dx, p)
    return dx if ok else None


_empty = np.empty
_U8 = np.dtype(np.uint8)


def _plain_grads(grads):
    """``grads`` (one array or a list) as a list when every member is plainly valid
    and written (clipping), else None."""
    gs = [grads] if type(grads) is _ndarray else grads if type(grads) is list else None
    if not gs or _plain(gs[:1], []) is None:
        return None
    d = gs[0].dtype
    for g in gs:
        if (type(g) is not _ndarray or g.dtype is not d or not g.flags.c_contiguous
                or not g.flags.writeable):
            return None
    return gs if len(gs) == 1 or _validate.first_overlap(gs) is None else None


def clip_grad_norm(grads, max_norm, norm_type, error_if_nonfinite, backend, sync):
    g = grads[0] if type(grads) is list and len(grads) == 1 else grads
    if (type(g) is _ndarray and norm_type == 2.0 and not error_if_nonfinite
            and g.size < SERIAL_BELOW):
        key = _plain([g], [])
        if key is not None:   # one array, L2: clipping.clip in one direct call
            return _direct.CLIP_L2(key, g, max_norm)
    gs = _plain_grads(grads)
    return None if gs is None else _clipping.clip(_nb_clipping, gs, max_norm, norm_type,
                                                  error_if_nonfinite)


def grad_norm(grads, norm_type, backend):
    gs = _plain_grads(grads)
    return None if gs is None else float(_nb_clipping.grad_norm(gs, norm_type=norm_type))


def _stat(a, dtype, C, written):
    return (type(a) is _ndarray and a.dtype is dtype and a.shape == (C,) and a.flags.c_contiguous
            and (not written or a.flags.writeable))


def _channels(x):
    """(C, M) of a plainly valid x, else None."""
    if type(x) is not _ndarray or x.ndim < 2 or (x.dtype is not _F32 and x.dtype is not _F64) \
            or not x.flags.c_contiguous:
        return None
    return x.shape[1], x.size // x.shape[1] if x.shape[1] else 0


def batch_norm_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps,
                       backend):
    cm = _channels(x)
    if cm is None or (training and cm[1] < 2):
        return None
    C, d = cm[0], x.dtype
    stats = [a for a in (running_mean, running_var) if a is not None]
    if not (_stat(gamma, d, C, False) and _stat(beta, d, C, False)
            and all(_stat(a, d, C, training) for a in stats)
            and _validate.first_overlap([x, gamma, beta, *stats]) is None):
        return None
    y, sm, si = _validate.empty_like(x), _validate.empty_like(x, (C,)), _validate.empty_like(x, (C,))
    _nb_bn.batch_norm_forward(x, y, gamma, beta, running_mean, running_var, sm, si,
                              training=training, momentum=momentum, eps=eps)
    return y, sm, si


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, training, backend):
    cm = _channels(x)
    if cm is None:
        return None
    C, d = cm[0], x.dtype
    if not (type(dy) is _ndarray and dy.dtype is d and dy.shape == x.shape
            and dy.flags.c_contiguous and all(_stat(a, d, C, False)
                                              for a in (gamma, save_mean, save_invstd))
            and _validate.first_overlap([x, dy, gamma, save_mean, save_invstd]) is None):
        return None
    dx, dg, db = _validate.empty_like(x), _validate.empty_like(x, (C,)), _validate.empty_like(x, (C,))
    _nb_bn.batch_norm_backward(dy, x, gamma, save_mean, save_invstd, dx, dg, db,
                               training=training)
    return dx, dg, db


# kernel name -> fast function (fastopt._entry resolves them on the first numba call)
FAST = {"sgd_step": sgd, "rmsprop_step": rmsprop, "adam_step": adam, "adagrad_step": adagrad,
        "ema_update": ema_update, "dropout_forward": dropout_forward,
        "dropout_backward": dropout_backward, "clip_grad_norm": clip_grad_norm,
        "grad_norm": grad_norm, "batch_norm_forward": batch_norm_forward,
        "batch_norm_backward": batch_norm_backward}
