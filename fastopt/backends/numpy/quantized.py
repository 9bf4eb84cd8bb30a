"""The reference of the 8-bit optimizer steps (docs/quantized-state.md).

Unlike the float64 reference of fastopt/backends/numpy/optim.py, this one
computes in float32 with the exact operation order of
csrc/include/fastopt/quantize.h and optim.h (float32 scalars from
fastopt/_scalars.py, no fused multiply-add), so the compiled backends equal it
bit for bit. Per block of 256: dequantize, update, new absmax, re-quantize.
bfloat16 / float16 params (and grads) are widened to float32, updated alike and
rounded back once to nearest even (``sixteen_bit``).
"""
import numpy as np

from fastopt import _rounding, _scalars
from fastopt._rounding import fma_f32
from fastopt.quantized import BLOCK, qmap

F = np.float32


def dequantize(q):
    n = q.codes.size
    scale = np.repeat(q.absmax, BLOCK)[:n]
    return (qmap(q.signed)[q.codes.reshape(-1)] * scale).reshape(q.codes.shape)


def nearest(x, table):
    """The code nearest to each float32 ``x`` in sorted ``table``; ties to the lower code.

    ``i`` = the last index with ``table[i] <= x`` (0 if none), found by 8 halving
    steps, then clamped to 254 and moved up when ``table[i+1] - x < x - table[i]``.
    """
    i = np.zeros(x.shape, dtype=np.int64)
    for step in (128, 64, 32, 16, 8, 4, 2, 1):
        i = np.where(table[np.minimum(i + step, 255)] <= x, i + step, i)
    i = np.minimum(i, 254)
    up = (table[i + 1] - x) < (x - table[i])
    return (i + up).astype(np.uint8)


def _absmax(values):
    """Per block: the largest |value| (0 for a block of zeros); NaN is skipped (fmax)."""
    n = values.size
    pad = np.zeros(-n % BLOCK, dtype=F)
    return np.fmax.reduce(np.abs(np.concatenate([values, pad])).reshape(-1, BLOCK), axis=1,
                          initial=F(0)).astype(F)


RECIPROCAL_RANGE = (F(2.0 ** -126), F(2.0 ** 126))   # 1 / absmax is a normal float32


def ratios(values, absmax):
    """What each value is quantized as: ``x = value * fl(1 / absmax)``, the float32
    reciprocal of its block's absmax rounded once per block (as bitsandbytes' kernels
    do; a product in place of a division per element), or ``value / absmax`` where
    absmax lies outside ``RECIPROCAL_RANGE``; 0 in a block of absmax 0."""
    n = values.size
    lo, hi = RECIPROCAL_RANGE
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        recip = np.float32(1) / absmax
        scale = np.repeat(absmax, BLOCK)[:n]
        by_recip = np.repeat((absmax >= lo) & (absmax <= hi), BLOCK)[:n]
        safe = np.where(scale == 0, F(1), scale)
        x = np.where(by_recip, values * np.repeat(recip, BLOCK)[:n], values / safe)
    return np.where(scale == 0, F(0), x).astype(F)


def quantize_into(values, q):
    """Writes flat float32 ``values`` into ``q``: new absmax per block, nearest codes."""
    absmax = _absmax(values)
    q.codes.reshape(-1)[...] = nearest(ratios(values, absmax), qmap(q.signed))
    q.absmax[...] = absmax


def widened(arrays):
    """float32 copies of the params or grads (16-bit values widen exactly)."""
    return [a if a.dtype == F else a.astype(F) for a in arrays]


def narrow_into(params, values):
    """Writes float32 ``values`` into ``params``, each rounded once to nearest even to a
    16-bit param's type (the bit-level rounding of fastopt._rounding, as half.h)."""
    for param, x in zip(params, values):
        if param is x:
            continue
        u = np.ascontiguousarray(x, F).reshape(-1).view(np.uint32).astype(np.uint64)
        rne = _rounding.f32_to_f16_rne if param.dtype == np.float16 else _rounding.f32_to_bf16_rne
        param.reshape(-1).view(np.uint16)[...] = rne(u).astype(np.uint16)


def sixteen_bit(step):
    """``step`` on float32 params and grads, or on float32 copies of 16-bit ones whose
    results are rounded back (docs/quantized-state.md, 16-bit parameters)."""
    def run(params, grads, *args, **kwargs):
        wide = widened(params)
        step(wide, widened(grads), *args, **kwargs)
        narrow_into(params, wide)
    run.__doc__, run.__name__ = step.__doc__, step.__name__
    return run


def _load(q):
    return None if q is None else dequantize(q).reshape(-1)


def _f32(scalars):
    return [F(s) for s in scalars]


def _grad(g, p, grad_sign, weight_decay, l2):
    g = grad_sign * g
    return g + weight_decay * p if l2 else g


def _adam_first_moment(m, g, w):
    """torch's ``m.lerp_(g, w)``, ``w = 1 - beta1``: one float32 rounding of
    ``m + w (g - m)`` (of ``g - (1 - w) (g - m)`` when ``w >= 1/2``), as the C++ rounds it."""
    if w < 0.5:
        return fma_f32(w, g - m, m)
    return fma_f32(w - F(1), g - m, g)


@sixteen_bit
def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps,
         weight_decay, decoupled, maximize):
    mode = _scalars.adam_weight_decay_mode(weight_decay, decoupled)
    (b1, omb1, b2, omb2, e, wd, gs, step_size, bc2_sqrt, decay) = _f32(_scalars.adam(
        step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
        decoupled=decoupled, maximize=maximize))
    for i, param in enumerate(params):
        p, m, v = param.reshape(-1), _load(exp_avgs[i]), _load(exp_avg_sqs[i])
        if mode == _scalars.DECOUPLED:
            p = p * decay
        g = _grad(grads[i].reshape(-1), p, gs, wd, mode == _scalars.L2)
        m = _adam_first_moment(m, g, omb1)
        v = b2 * v + omb2 * g * g
        param.reshape(-1)[...] = p - step_size * m / (np.sqrt(v) / bc2_sqrt + e)
        quantize_into(m, exp_avgs[i])
        quantize_into(v, exp_avg_sqs[i])


@sixteen_bit
def sgd(params, grads, bufs, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
        first_step):
    lr_, mom, omd, wd, gs = _f32(_scalars.sgd(lr=lr, momentum=momentum, dampening=dampening,
                                              weight_decay=weight_decay, maximize=maximize))
    for i, param in enumerate(params):
        p = param.reshape(-1)
        g = _grad(grads[i].reshape(-1), p, gs, wd, weight_decay != 0.0)
        buf = g if first_step else mom * _load(bufs[i]) + omd * g
        d = g + mom * buf if nesterov else buf
        param.reshape(-1)[...] = p - lr_ * d
        quantize_into(buf, bufs[i])


@sixteen_bit
def rmsprop(params, grads, square_avgs, grad_avgs, bufs, *, lr, alpha, eps, weight_decay,
            momentum, maximize):
    lr_, a, oma, e, wd, mom, gs = _f32(_scalars.rmsprop(
        lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
        maximize=maximize))
    for i, param in enumerate(params):
        p = param.reshape(-1)
        g = _grad(grads[i].reshape(-1), p, gs, wd, weight_decay != 0.0)
        sq = a * _load(square_avgs[i]) + oma * g * g
        if grad_avgs is not None:
            ga = a * _load(grad_avgs[i]) + oma * g
            avg = np.sqrt(sq - ga * ga) + e
            quantize_into(ga, grad_avgs[i])
        else:
            avg = np.sqrt(sq) + e
        if bufs is not None:
            buf = mom * _load(bufs[i]) + g / avg
            param.reshape(-1)[...] = p - lr_ * buf
            quantize_into(buf, bufs[i])
        else:
            param.reshape(-1)[...] = p - lr_ * (g / avg)
        quantize_into(sq, square_avgs[i])
