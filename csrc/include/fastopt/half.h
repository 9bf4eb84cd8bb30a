// 16-bit floating-point storage (bfloat16, IEEE binary16): widening to float32,
// round-to-nearest-even and stochastic rounding back. The one C++ statement of
// these conversions, shared by the CPU loops and the CUDA kernels; the
// bit-level reference they are tested against is fastopt/_rounding.py, and
// docs/rounding.md defines every case.
//
// Integer bit operations only (no float arithmetic, no hardware conversion
// instructions): every instruction set, the scalar tail and the device then
// produce identical bits whatever their rounding or flush-to-zero modes, and
// the loops still vectorize (compares, selects, variable shifts).
//
// Values travel as raw bit patterns: uint16_t for the 16-bit types, float for
// float32 (through bits_of/float_of, a memcpy-free union cast both GCC and
// NVCC compile to a register move).
#pragma once
#include "fastopt/common.h"

#if defined(__CUDACC__) && !defined(__CUDACC_RTC__)
#include <cstdint>
#endif
#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
#include <cstring>
#endif

namespace fastopt {

FASTOPT_HD uint32_t bits_of(float x) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

FASTOPT_HD float float_of(uint32_t u) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

// c ? a : b as masks: GCC keeps some ternaries of the float16 rounding as
// branches, which stops the loops from vectorizing.
FASTOPT_HD uint32_t half_select(bool c, uint32_t a, uint32_t b) {
  return b ^ ((a ^ b) & (0u - static_cast<uint32_t>(c)));
}

// ------------------------------------------------------------- widening
// Exact: every bfloat16 is the float32 with the same upper 16 bits.
FASTOPT_HD float bf16_to_f32(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

// Exact for all 65536 patterns. Normals rebias the exponent (15 -> 127),
// inf/NaN keep their payload, subnormals (mantissa m, value m * 2^-24) are
// normalized by shifting the leading bit up to bit 10 in four fixed steps
// (5, 3, 2, 1), each a compare and a select, instead of a count-leading-zeros.
FASTOPT_HD float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t m = h & 0x3FFu;
  const uint32_t normal = sign | ((exp + 112u) << 23) | (m << 13);
  const uint32_t special = sign | 0x7F800000u | (m << 13);
  uint32_t s = 0;
  const bool c5 = m < 0x020u;
  m = c5 ? m << 5 : m;
  s = c5 ? s + 5 : s;
  const bool c3 = m < 0x100u;
  m = c3 ? m << 3 : m;
  s = c3 ? s + 3 : s;
  const bool c2 = m < 0x200u;
  m = c2 ? m << 2 : m;
  s = c2 ? s + 2 : s;
  const bool c1 = m < 0x400u;
  m = c1 ? m << 1 : m;
  s = c1 ? s + 1 : s;
  // leading bit k = 10 - s: value 2^(k - 24) * 1.f, biased exponent 113 - s
  const uint32_t subnormal = sign | ((113u - s) << 23) | ((m & 0x3FFu) << 13);
  const uint32_t zero_or_sub = (h & 0x3FFu) ? subnormal : sign;
  const uint32_t u = exp == 0x1Fu ? special : (exp == 0 ? zero_or_sub : normal);
  return float_of(u);
}

// ------------------------------------------------- round to nearest even
// NaN -> quiet NaN with the same sign and leading payload bits (bit 6 set);
// inf and overflow to inf follow from the integer carry.
FASTOPT_HD uint16_t f32_to_bf16_rne(float x) {
  const uint32_t u = bits_of(x);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
  return static_cast<uint16_t>(nan ? (u >> 16) | 0x0040u : rounded);
}

// The float16 subnormal range, shared by RNE and stochastic rounding: |x| is
// m24 * 2^-shift in units of 2^-24 (the float16 subnormal step), with
// m24 = the float32 significand with its implicit bit and shift = 126 - E
// (E the biased float32 exponent; shift >= 14 below 2^-14). Larger |x| get
// 14 too, so that no lane ever shifts by 32 or more (undefined in C++); their
// result is selected away.
FASTOPT_HD uint32_t f16_sub_shift(uint32_t a) {
  const uint32_t e = a >> 23;
  return half_select(e >= 112u, 14u, 126u - e);
}

// NaN -> quiet NaN (bit 9 set, sign and leading payload kept); |x| >= 65520
// (the midpoint above 65504, a tie that rounds to the even inf) -> inf.
FASTOPT_HD uint16_t f32_to_f16_rne(float x) {
  const uint32_t u = bits_of(x);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t r = a - 0x38000000u;  // rebias 127 -> 15 (only used for normals)
  const uint32_t normal = (r + 0xFFFu + ((r >> 13) & 1u)) >> 13;
  // subnormal: RNE of m24 >> shift; shift capped at 25, where every m24 < 2^24
  // rounds to 0 (f32 subnormals, E = 0, land here too)
  const uint32_t s0 = f16_sub_shift(a);
  const uint32_t shift = half_select(s0 > 25u, 25u, s0);
  const uint32_t m24 = (a & 0x7FFFFFu) | 0x800000u;
  const uint32_t sub = (m24 + ((1u << (shift - 1)) - 1u) + ((m24 >> shift) & 1u)) >> shift;
  uint32_t h = half_select(a >= 0x38800000u, normal, sub);
  h = half_select(a >= 0x477FF000u, 0x7C00u, h);
  h = half_select(a > 0x7F800000u, 0x7E00u | ((a >> 13) & 0x3FFu), h);
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
  const uint32_t d = half_select(shift > 32u, 32u, shift);    // 14 .. 32
  const uint32_t mask = 0xFFFFFFFFu >> (32u - d);             // 2^d - 1
  const uint32_t m24 = (a & 0x7FFFFFu) | 0x800000u;
  const uint32_t rnd = r >> (32u - d);                        // d random bits
  const uint32_t up = rnd > mask - (m24 & mask) ? 1u : 0u;    // rem + rnd >= 2^d
  const uint32_t q = m24 >> half_select(d > 31u, 31u, d);     // 0 once d >= 24
  uint32_t h = half_select(shift > 32u, 0u, q + up);
  h = half_select(a >= 0x38800000u, normal, h);
  h = half_select(a >= 0x47800000u, 0x7C00u, h);
  h = half_select(a > 0x7F800000u, 0x7E00u | ((a >> 13) & 0x3FFu), h);
  return static_cast<uint16_t>(sign | h);
}

}  // namespace fastopt
