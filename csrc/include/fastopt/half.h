// 16-bit floating-point storage (bfloat16, IEEE binary16): widening to float32,
// round-to-nearest-even and stochastic rounding back. The one C++ statement of
// these conversions, shared by the CPU loops and the CUDA kernels; the
// bit-level reference they are tested against is fastopt/_rounding.py, and
// docs/rounding.md defines every case.
//
// Integer bit operations, plus one exact float difference (float16 subnormals),
// and no hardware conversion instructions: every instruction set, the scalar
// tail and the device then produce identical bits whatever their rounding or
// flush-to-zero modes, and the loops still vectorize (masks, selects, variable
// shifts).
//
// Values travel as raw bit patterns: uint16_t for the 16-bit types, float for
// float32 (through common.h's bits_of/float_of).
#pragma once
#include "fastopt/common.h"

namespace fastopt {

// All ones where x >= k, zero elsewhere (0 < k; x, k < 2^31): a subtraction and
// an arithmetic shift, which vectorize without the bool-to-mask conversions a
// comparison costs GCC in these 16-bit loops.
FASTOPT_HD uint32_t half_ge(uint32_t x, uint32_t k) {
  return static_cast<uint32_t>(static_cast<int32_t>(k - 1u - x) >> 31);
}
FASTOPT_HD uint32_t half_min(uint32_t a, uint32_t b) { return a < b ? a : b; }

// ------------------------------------------------------------- widening
// Exact: every bfloat16 is the float32 with the same upper 16 bits.
FASTOPT_HD float bf16_to_f32(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

// Exact for all 65536 patterns. Normals rebias the exponent (15 -> 127),
// inf/NaN keep their payload, subnormals (mantissa m, value m * 2^-24) are
// 2^-14 (1 + m / 1024) - 2^-14: normal float32 operands and an exact result,
// so no rounding or flush-to-zero mode changes it (the sign of m = 0, which
// rounding downward would make -0, is cleared).
FASTOPT_HD float f16_to_f32(uint16_t h16) {
  const uint32_t h = h16;
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t em = h & 0x7FFFu;
  const uint32_t normal = (em + 0x1C000u) << 13;
  const uint32_t special = 0x7F800000u | (em << 13);
  const uint32_t sub = bits_of(float_of(normal + 0x00800000u) - 0x1p-14f) & 0x7FFFFFFFu;
  return float_of(sign | select_bits(half_ge(em, 0x7C00u), special,
                                     select_bits(half_ge(em, 0x0400u), normal, sub)));
}

// ------------------------------------------------- round to nearest even
// NaN -> quiet NaN with the same sign and leading payload bits (bit 6 set):
// no rounding bias, the quiet bit set; inf and overflow to inf follow from
// the integer carry. All in 32-bit lanes, truncated once; x != x (one vector
// compare, true for NaN alone in every float mode) finds the NaNs.
FASTOPT_HD uint16_t f32_to_bf16_rne(float x) {
  const uint32_t u = bits_of(x);
  const uint32_t nan = x != x ? 0xFFFFFFFFu : 0u;
  const uint32_t bias = ~nan & (0x7FFFu + ((u >> 16) & 1u));
  return static_cast<uint16_t>(((u | (nan & 0x00400000u)) + bias) >> 16);
}

// The float16 subnormal range of stochastic rounding: |x| is
// m24 * 2^-shift in units of 2^-24 (the float16 subnormal step), with
// m24 = the float32 significand with its implicit bit and shift = 126 - E
// (E the biased float32 exponent; shift >= 14 below 2^-14). Larger |x| get
// 14 too, so that no lane ever shifts by 32 or more (undefined in C++); their
// result is selected away.
FASTOPT_HD uint32_t f16_sub_shift(uint32_t a) {
  const uint32_t e = a >> 23;
  return select_bits(half_ge(e, 112u), 14u, 126u - e);
}

// NaN -> quiet NaN (bit 9 set, sign and leading payload kept); |x| >= 65520
// (the midpoint above 65504, a tie that rounds to the even inf) -> inf.
// Normals and subnormals share one rounding of v >> shift: normals drop 13
// bits of the rebiased pattern (a carry out of the mantissa steps the
// exponent, up to inf), subnormals drop shift = 126 - E bits of the
// significand with its implicit bit, capped at 25, where every m24 < 2^24
// rounds to 0 (float32 subnormals, E = 0, land there too).
FASTOPT_HD uint16_t f32_to_f16_rne(float x) {
  const uint32_t u = bits_of(x);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t normal = half_ge(a, 0x38800000u);  // |x| >= 2^-14
  const uint32_t shift = select_bits(normal, 13u, half_min(126u - (a >> 23), 25u));
  const uint32_t v = select_bits(normal, a - 0x38000000u, (a & 0x7FFFFFu) | 0x800000u);
  uint32_t h = (v + ((1u << (shift - 1)) - 1u) + ((v >> shift) & 1u)) >> shift;
  h = half_min(h, 0x7C00u);
  h = select_bits(half_ge(a, 0x7F800001u), 0x7E00u | ((a >> 13) & 0x3FFu), h);
  return static_cast<uint16_t>(sign | h);
}

// --------------------------------------------------- stochastic rounding
// r is a uniform 32-bit word. With d dropped bits, the result is the
// truncation toward zero of |x| + (r >> (32 - d)) units of the dropped
// position: it rounds away from zero with probability (|x| - lo) / (hi - lo),
// exactly representable values stay exact. NaN as in RNE; inf stays inf.

// d = 16 for every finite float32 (bfloat16 keeps float32's exponent range, so
// subnormals drop the same 16 bits); the largest finite values may carry into
// inf, as a value above the largest bfloat16 would with hi = 2^128.
FASTOPT_HD uint16_t f32_to_bf16_sr(float x, uint32_t r) {
  const uint32_t u = bits_of(x);
  const bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
  const uint32_t rounded = (u + (r >> 16)) >> 16;  // inf: zero low bits, no carry
  return static_cast<uint16_t>(nan ? (u >> 16) | 0x0040u : rounded);
}

// Normals (2^-14 <= |x| < 65536): d = 13, values in [65504, 65536) round to
// inf with probability (|x| - 65504) / 32. Subnormal range (|x| < 2^-14):
// d = shift (14 .. 32, see f16_sub_shift) on the significand m24; the carry is
// formed as a compare so no sum overflows 32 bits. |x| < 2^-33 (shift > 32,
// more dropped bits than r has) rounds to zero: the one biased case, by less
// than 2^-33 in absolute value.
FASTOPT_HD uint16_t f32_to_f16_sr(float x, uint32_t r) {
  const uint32_t u = bits_of(x);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t normal = (a - 0x38000000u + (r >> 19)) >> 13;
  const uint32_t shift = f16_sub_shift(a);
  const uint32_t d = half_min(shift, 32u);                    // 14 .. 32
  const uint32_t mask = 0xFFFFFFFFu >> (32u - d);             // 2^d - 1
  const uint32_t m24 = (a & 0x7FFFFFu) | 0x800000u;
  const uint32_t rnd = r >> (32u - d);                        // d random bits
  const uint32_t up = rnd > mask - (m24 & mask) ? 1u : 0u;    // rem + rnd >= 2^d
  const uint32_t q = m24 >> half_min(d, 31u);                 // 0 once d >= 24
  uint32_t h = select_bits(half_ge(shift, 33u), 0u, q + up);
  h = select_bits(half_ge(a, 0x38800000u), normal, h);
  h = select_bits(half_ge(a, 0x47800000u), 0x7C00u, h);
  h = select_bits(half_ge(a, 0x7F800001u), 0x7E00u | ((a >> 13) & 0x3FFu), h);
  return static_cast<uint16_t>(sign | h);
}

}  // namespace fastopt
