"""Mixed-precision optimizer steps in Numba (issue 18, docs/rounding.md): 16-bit
params, gradients and states, float32 masters, stochastic rounding and the
in-kernel gradient unscale, bit-identical to the C++ loops.

numba has no 16-bit float type, so 16-bit arrays travel as integer views and
every conversion is fastopt/_rounding.py's integer code (``_half``):
bfloat16 as ``uint16``, float16 as ``int16``, so that numba's dispatch on the
array type picks the conversion at compile time. The maths is
fastopt/backends/numba/optim.py's float32 loop body, in the same order as
csrc/include/fastopt/optim.h, with widening on load and one rounding per store.
The chunk walk is written out in each kernel, as in optim.py (a shared walker
taking the body as a function did not inline).
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from fastopt.backends.numba import _half
from fastopt.backends.numba._fma import adam_first_moment
from fastopt.backends.numba._lists import CHUNK
from fastopt.backends.numba._serial import compile_pair
from fastopt.backends.numba.dropout import _philox4x32_10
from fastopt.backends.numba.optim import _view


@intrinsic
def _f32_from_bits(typingctx, u):
    """The float32 whose pattern is the low 32 bits of the integer ``u``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], ir.IntType(32)), ir.FloatType())
    return types.float32(u), codegen


@intrinsic
def _bits_of_f32(typingctx, x):
    """The pattern of the float32 ``x`` as a uint64."""
    def codegen(context, builder, signature, args):
        return builder.zext(builder.bitcast(args[0], ir.IntType(32)), ir.IntType(64))
    return types.uint64(types.float32), codegen


def widen(x):
    """A stored element in its compute type (float32; float64 stays float64)."""


def narrow(x, like):
    """``x`` rounded to nearest even to the element type of the array ``like``."""


def narrow_sr(x, r, like):
    """``x`` rounded stochastically with the word ``r`` (16-bit ``like`` only)."""


@overload(widen, inline="always")
def _widen(x):
    if x == types.uint16:
        return lambda x: _f32_from_bits(_half.bf16_to_f32(np.uint64(x)))
    if x == types.int16:
        return lambda x: _f32_from_bits(_half.f16_to_f32(np.uint64(np.uint16(x))))
    return lambda x: x


@overload(narrow, inline="always")
def _narrow(x, like):
    if like.dtype == types.uint16:
        return lambda x, like: np.uint16(_half.f32_to_bf16_rne(_bits_of_f32(x)))
    if like.dtype == types.int16:
        return lambda x, like: np.int16(np.uint16(_half.f32_to_f16_rne(_bits_of_f32(x))))
    return lambda x, like: x


@overload(narrow_sr, inline="always")
def _narrow_sr(x, r, like):
    if like.dtype == types.uint16:
        return lambda x, r, like: np.uint16(_half.f32_to_bf16_sr(_bits_of_f32(x), r))
    if like.dtype == types.int16:
        return lambda x, r, like: np.int16(np.uint16(_half.f32_to_f16_sr(_bits_of_f32(x), r)))
    return lambda x, r, like: x


@njit(inline="always")
def _word(i, k0, k1, c2, c3):
    """Word i % 4 of Philox4x32-10 at counter (i // 4, c2, c3) (docs/rounding.md)."""
    j = np.uint64(i // 4)
    w = _philox4x32_10(j & np.uint64(0xFFFFFFFF), j >> np.uint64(32), c2, c3, k0, k1)
    return w[i % 4]


@njit(inline="always")
def _store_param(p, mp, i, pi, index, master, sr, k0, k1, c2, c3):
    if master:
        mp[i] = pi
        p[i] = narrow(pi, p)
    elif sr:
        p[i] = narrow_sr(pi, _word(index, k0, k1, c2, c3), p)
    else:
        p[i] = narrow(pi, p)


@njit(inline="always")
def _load_param(p, mp, i, master):
    return mp[i] if master else widen(p[i])


def _sgd_body(addresses, starts, wp, wg, ws, wm, lr, momentum, omd, wd, sign, mode, first, scale,
              master, sr, k0, k1, c2, c3):
    total = starts[-1]
    nchunks = (total + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        b = c * CHUNK
        e = min(b + CHUNK, total)
        t = np.searchsorted(starts, b, side="right") - 1
        while b < e:
            n = min(e, starts[t + 1]) - b
            o = b - starts[t]
            if n > 0:
                p = _view(addresses, 0, t, o, n, wp)
                g = _view(addresses, 1, t, o, n, wg)
                buf = _view(addresses, 2, t, o, n if mode != 0 else 0, ws)
                mp = _view(addresses, 5, t, o, n if master else 0, wm)
                for i in range(n):
                    pi = _load_param(p, mp, i, master)
                    gi = sign * (widen(g[i]) / scale)
                    if wd != 0:
                        gi = gi + wd * pi
                    if mode == 0:
                        pi = pi - lr * gi
                    else:
                        bi = gi if first else momentum * widen(buf[i]) + omd * gi
                        buf[i] = narrow(bi, buf)
                        d = gi + momentum * bi if mode == 2 else bi
                        pi = pi - lr * d
                    _store_param(p, mp, i, pi, o + i, master, sr, k0, k1, c2, c3)
            b += n
            t += 1


def _rmsprop_body(addresses, starts, wp, wg, ws, wm, lr, alpha, oma, eps, wd, momentum, sign,
                  centered, use_momentum, scale, master, sr, k0, k1, c2, c3):
    total = starts[-1]
    nchunks = (total + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        b = c * CHUNK
        e = min(b + CHUNK, total)
        t = np.searchsorted(starts, b, side="right") - 1
        while b < e:
            n = min(e, starts[t + 1]) - b
            o = b - starts[t]
            if n > 0:
                p = _view(addresses, 0, t, o, n, wp)
                g = _view(addresses, 1, t, o, n, wg)
                sq = _view(addresses, 2, t, o, n, ws)
                ga = _view(addresses, 3, t, o, n if centered else 0, ws)
                buf = _view(addresses, 4, t, o, n if use_momentum else 0, ws)
                mp = _view(addresses, 5, t, o, n if master else 0, wm)
                for i in range(n):
                    pi = _load_param(p, mp, i, master)
                    gi = sign * (widen(g[i]) / scale)
                    if wd != 0:
                        gi = gi + wd * pi
                    s = alpha * widen(sq[i]) + oma * gi * gi
                    sq[i] = narrow(s, sq)
                    if centered:
                        a = alpha * widen(ga[i]) + oma * gi
                        ga[i] = narrow(a, ga)
                        avg = math.sqrt(s - a * a) + eps
                    else:
                        avg = math.sqrt(s) + eps
                    if use_momentum:
                        bi = momentum * widen(buf[i]) + gi / avg
                        buf[i] = narrow(bi, buf)
                        pi = pi - lr * bi
                    else:
                        pi = pi - lr * (gi / avg)
                    _store_param(p, mp, i, pi, o + i, master, sr, k0, k1, c2, c3)
            b += n
            t += 1


def _adam_body(addresses, starts, wp, wg, ws, wm, beta1, omb1, beta2, omb2, eps, wd, sign,
               step_size, bc2_sqrt, decay_factor, wd_mode, amsgrad, scale, master, sr, k0, k1,
               c2, c3):
    total = starts[-1]
    nchunks = (total + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        b = c * CHUNK
        e = min(b + CHUNK, total)
        t = np.searchsorted(starts, b, side="right") - 1
        while b < e:
            n = min(e, starts[t + 1]) - b
            o = b - starts[t]
            if n > 0:
                p = _view(addresses, 0, t, o, n, wp)
                g = _view(addresses, 1, t, o, n, wg)
                m = _view(addresses, 2, t, o, n, ws)
                v = _view(addresses, 3, t, o, n, ws)
                vmax = _view(addresses, 4, t, o, n if amsgrad else 0, ws)
                mp = _view(addresses, 5, t, o, n if master else 0, wm)
                for i in range(n):
                    pi = _load_param(p, mp, i, master)
                    if wd_mode == 2:
                        pi = pi * decay_factor
                    gi = sign * (widen(g[i]) / scale)
                    if wd_mode == 1:
                        gi = gi + wd * pi
                    mi = adam_first_moment(widen(m[i]), gi, omb1)
                    vi = beta2 * widen(v[i]) + omb2 * gi * gi
                    m[i] = narrow(mi, m)
                    v[i] = narrow(vi, v)
                    if amsgrad:
                        vm = widen(vmax[i])
                        if vm > vi:
                            vi = vm
                        vmax[i] = narrow(vi, vmax)
                    pi = pi - step_size * mi / (math.sqrt(vi) / bc2_sqrt + eps)
                    _store_param(p, mp, i, pi, o + i, master, sr, k0, k1, c2, c3)
            b += n
            t += 1


def _adagrad_body(addresses, starts, wp, wg, ws, wm, clr, eps, wd, sign, scale, master, sr, k0,
                  k1, c2, c3):
    total = starts[-1]
    nchunks = (total + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        b = c * CHUNK
        e = min(b + CHUNK, total)
        t = np.searchsorted(starts, b, side="right") - 1
        while b < e:
            n = min(e, starts[t + 1]) - b
            o = b - starts[t]
            if n > 0:
                p = _view(addresses, 0, t, o, n, wp)
                g = _view(addresses, 1, t, o, n, wg)
                s = _view(addresses, 2, t, o, n, ws)
                mp = _view(addresses, 5, t, o, n if master else 0, wm)
                for i in range(n):
                    pi = _load_param(p, mp, i, master)
                    gi = sign * (widen(g[i]) / scale)
                    if wd != 0:
                        gi = gi + wd * pi
                    si = widen(s[i]) + gi * gi
                    s[i] = narrow(si, s)
                    pi = pi - clr * gi / (math.sqrt(si) + eps)
                    _store_param(p, mp, i, pi, o + i, master, sr, k0, k1, c2, c3)
            b += n
            t += 1


sgd = compile_pair(_sgd_body, error_model="numpy")
rmsprop = compile_pair(_rmsprop_body, error_model="numpy")
adam = compile_pair(_adam_body, error_model="numpy")
adagrad = compile_pair(_adagrad_body, error_model="numpy")
