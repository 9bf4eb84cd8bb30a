"""fastopt/_rounding.py compiled by numba: the same functions (the bit-level
reference the tests check the C++ against), so numba's 16-bit results equal
the C++ bit for bit.

_rounding.py does not import numba (``import fastopt`` stays light), so its
functions call each other as plain Python globals. Here each one is rebuilt
over one shared globals table in which every name is its ``njit`` version,
so the calls between them resolve to compiled code and inline.
"""
import types

from numba import njit

from fastopt import _rounding

NAMES = ("select", "bf16_to_f32", "f16_to_f32", "_quiet_bf16", "f32_to_bf16_rne",
         "_f16_sub_shift", "_f16_special", "f32_to_f16_rne", "f32_to_bf16_sr", "f32_to_f16_sr")

_globals = dict(vars(_rounding))
for _name in NAMES:
    _f = getattr(_rounding, _name)
    _globals[_name] = njit(inline="always")(
        types.FunctionType(_f.__code__, _globals, _name, _f.__defaults__))

select = _globals["select"]
bf16_to_f32 = _globals["bf16_to_f32"]
f16_to_f32 = _globals["f16_to_f32"]
f32_to_bf16_rne = _globals["f32_to_bf16_rne"]
f32_to_f16_rne = _globals["f32_to_f16_rne"]
f32_to_bf16_sr = _globals["f32_to_bf16_sr"]
f32_to_f16_sr = _globals["f32_to_f16_sr"]
