"""8-bit optimizer steps in Numba, mirroring fastopt/backends/numpy/quantized.py
(float32 arithmetic in the same order, so it equals the reference bit for bit).

One ``prange`` over the blocks of 256 of each tensor; per block: dequantize
into local buffers, update, new absmax, nearest codes. Every constant is a
float32 argument: a float64 literal would promote the arithmetic.
"""
import numpy as np
from numba import njit, prange

from fastopt import _scalars
from fastopt.backends.numba import parallel_njit
from fastopt.backends.numba._fma import adam_first_moment
from fastopt.backends.numpy.quantized import RECIPROCAL_RANGE, sixteen_bit
from fastopt.quantized import BLOCK, SIGNED_MAP, UNSIGNED_MAP

F = np.float32


@njit(inline="always")
def _load(codes, absmax, table, b, off, n, out):
    am = absmax[b]
    for i in range(n):
        out[i] = table[codes[off + i]] * am


@njit(inline="always")
def _nearest(x, table):
    i = 0
    step = 128
    while step != 0:
        if table[i + step] <= x:
            i += step
        step >>= 1
    if i > 254:
        i = 254
    if (table[i + 1] - x) < (x - table[i]):
        i += 1
    return i


@njit(inline="always")
def _store(codes, absmax, table, b, off, n, x, zero):
    am = zero
    for i in range(n):
        a = -x[i] if x[i] < zero else x[i]
        if a > am:
            am = a
    absmax[b] = am
    r = np.float32(1.0) / am if am != zero else zero
    by_recip = am >= RECIPROCAL_RANGE[0] and am <= RECIPROCAL_RANGE[1]
    for i in range(n):   # x as fastopt.backends.numpy.quantized.ratios states it
        xn = zero if am == zero else (x[i] * r if by_recip else x[i] / am)
        codes[off + i] = _nearest(xn, table)


@parallel_njit   # one parallel region at a time (fastopt/backends/numba/__init__.py)
def _adam(p, g, mc, ma, vc, va, smap, umap, b1, omb1, b2, omb2, eps, wd, gs, step_size, bc2,
          decay, mode, zero):
    n = p.size
    for b in prange((n + BLOCK - 1) // BLOCK):
        off = b * BLOCK
        ln = min(BLOCK, n - off)
        m = np.empty(BLOCK, np.float32)
        v = np.empty(BLOCK, np.float32)
        _load(mc, ma, smap, b, off, ln, m)
        _load(vc, va, umap, b, off, ln, v)
        for i in range(ln):
            x = p[off + i]
            if mode == 2:
                x = x * decay
            gi = gs * g[off + i]
            if mode == 1:
                gi = gi + wd * x
            m[i] = adam_first_moment(m[i], gi, omb1)
            v[i] = b2 * v[i] + omb2 * gi * gi
            p[off + i] = x - step_size * m[i] / (np.sqrt(v[i]) / bc2 + eps)
        _store(mc, ma, smap, b, off, ln, m, zero)
        _store(vc, va, umap, b, off, ln, v, zero)


@parallel_njit   # one parallel region at a time (fastopt/backends/numba/__init__.py)
def _sgd(p, g, bc, ba, smap, lr, mom, omd, wd, gs, l2, nesterov, first, zero):
    n = p.size
    for b in prange((n + BLOCK - 1) // BLOCK):
        off = b * BLOCK
        ln = min(BLOCK, n - off)
        buf = np.empty(BLOCK, np.float32)
        if not first:
            _load(bc, ba, smap, b, off, ln, buf)
        for i in range(ln):
            x = p[off + i]
            gi = gs * g[off + i]
            if l2:
                gi = gi + wd * x
            buf[i] = gi if first else mom * buf[i] + omd * gi
            d = gi + mom * buf[i] if nesterov else buf[i]
            p[off + i] = x - lr * d
        _store(bc, ba, smap, b, off, ln, buf, zero)


@parallel_njit   # one parallel region at a time (fastopt/backends/numba/__init__.py)
def _rmsprop(p, g, sc, sa, gc, ga, bc, ba, smap, umap, lr, alpha, oma, eps, wd, mom, gs, l2,
             centered, momentum, zero):
    n = p.size
    for b in prange((n + BLOCK - 1) // BLOCK):
        off = b * BLOCK
        ln = min(BLOCK, n - off)
        sq = np.empty(BLOCK, np.float32)
        av = np.empty(BLOCK, np.float32)
        buf = np.empty(BLOCK, np.float32)
        _load(sc, sa, umap, b, off, ln, sq)
        if centered:
            _load(gc, ga, smap, b, off, ln, av)
        if momentum:
            _load(bc, ba, smap, b, off, ln, buf)
        for i in range(ln):
            x = p[off + i]
            gi = gs * g[off + i]
            if l2:
                gi = gi + wd * x
            sq[i] = alpha * sq[i] + oma * gi * gi
            if centered:
                av[i] = alpha * av[i] + oma * gi
                avg = np.sqrt(sq[i] - av[i] * av[i]) + eps
            else:
                avg = np.sqrt(sq[i]) + eps
            if momentum:
                buf[i] = mom * buf[i] + gi / avg
                p[off + i] = x - lr * buf[i]
            else:
                p[off + i] = x - lr * (gi / avg)
        _store(sc, sa, umap, b, off, ln, sq, zero)
        if centered:
            _store(gc, ga, smap, b, off, ln, av, zero)
        if momentum:
            _store(bc, ba, smap, b, off, ln, buf, zero)


def _flat(a):
    return a.reshape(-1)


def _f32(scalars):
    return [F(s) for s in scalars]


@sixteen_bit   # 16-bit params: float32 copies, rounded back as the reference
def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps,
         weight_decay, decoupled, maximize):
    s = _f32(_scalars.adam(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                           weight_decay=weight_decay, decoupled=decoupled, maximize=maximize))
    mode = _scalars.adam_weight_decay_mode(weight_decay, decoupled)
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        _adam(_flat(p), _flat(g), _flat(m.codes), m.absmax, _flat(v.codes), v.absmax, SIGNED_MAP,
              UNSIGNED_MAP, *s, mode, F(0))


@sixteen_bit   # 16-bit params: float32 copies, rounded back as the reference
def sgd(params, grads, bufs, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
        first_step):
    s = _f32(_scalars.sgd(lr=lr, momentum=momentum, dampening=dampening,
                          weight_decay=weight_decay, maximize=maximize))
    for p, g, q in zip(params, grads, bufs):
        _sgd(_flat(p), _flat(g), _flat(q.codes), q.absmax, SIGNED_MAP, *s, weight_decay != 0.0,
             nesterov, first_step, F(0))


@sixteen_bit   # 16-bit params: float32 copies, rounded back as the reference
def rmsprop(params, grads, square_avgs, grad_avgs, bufs, *, lr, alpha, eps, weight_decay,
            momentum, maximize):
    s = _f32(_scalars.rmsprop(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                              momentum=momentum, maximize=maximize))
    for t, (p, g, sq) in enumerate(zip(params, grads, square_avgs)):
        ga = grad_avgs[t] if grad_avgs is not None else sq    # unused when off
        bf = bufs[t] if bufs is not None else sq
        _rmsprop(_flat(p), _flat(g), _flat(sq.codes), sq.absmax, _flat(ga.codes), ga.absmax,
                 _flat(bf.codes), bf.absmax, SIGNED_MAP, UNSIGNED_MAP, *s, weight_decay != 0.0,
                 grad_avgs is not None, bufs is not None, F(0))
