"""The one fused multiply-add of the optimizer maths (csrc/include/fastopt/common.h
``fo_fma``, optim.h ``adam_first_moment``), compiled by numba as LLVM's ``llvm.fma``:
one rounding of ``a * b + c``, so numba's bits equal the C++ loops'.
"""
from numba import njit
from numba.core import types
from numba.extending import intrinsic


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once, in ``c``'s float type (a and b are converted first)."""
    if not isinstance(c, types.Float):
        return None

    def codegen(context, builder, signature, args):
        x, y, z = (context.cast(builder, v, t, c) for v, t in zip(args, signature.args))
        return builder.fma(x, y, z)
    return c(a, b, c), codegen


@njit(inline="always")
def adam_first_moment(m, g, w):
    """torch's ``m.lerp_(g, w)`` with ``w = 1 - beta1``: one fma from the nearer end."""
    if w < 0.5:
        return fma(w, g - m, m)
    return fma(w - 1.0, g - m, g)
