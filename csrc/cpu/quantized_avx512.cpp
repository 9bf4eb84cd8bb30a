// The AVX-512 VBMI dequantizing loop of the 8-bit block loops (quantized_simd.h).
// The 256 map values are held as four byte planes of 256 bytes, four zmm
// registers each: vpermi2b looks up 64 codes at once in a 128-byte half of a
// plane, the code's top bit picks the half, and two rounds of byte/word
// unpacks reassemble the float bits. Per 64 elements that is 8 permutes, where
// a lookup of 32-bit values (8 scalar loads and inserts per 8 elements, or a
// gather) costs one load or one gather lane per element: on this Zen 4 host the
// two states' dequantizing went from 0.47 to 0.16 ns per element
// (benchmarks/RESULTS.md, issue 16 session 11). The bits are those of
// dequantize_code: the same map value, one float32 multiply by absmax.
#include "quantized_simd.h"

#if FASTOPT_HAVE_SIMD_LOOKUPS
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "fastopt/quantize.h"

namespace fastopt {

void map_byte_planes(const float* qmap, std::uint8_t* planes) {
  for (int c = 0; c < 256; ++c) {
    std::uint32_t u;
    std::memcpy(&u, qmap + c, sizeof u);
    for (int k = 0; k < 4; ++k) planes[256 * k + c] = static_cast<std::uint8_t>(u >> (8 * k));
  }
}

// The unpacks interleave within 128-bit lanes: after them, output vector j's
// lane L, slot s holds the lookup of input byte 16 L + 4 j + s. Permuting the
// codes first (input byte 16 L + 4 j + s = code 16 j + 4 L + s) puts the 64
// values back in their order.
alignas(64) static const std::uint8_t kLaneOrder[64] = {
    0,  1,  2,  3,  16, 17, 18, 19, 32, 33, 34, 35, 48, 49, 50, 51,
    4,  5,  6,  7,  20, 21, 22, 23, 36, 37, 38, 39, 52, 53, 54, 55,
    8,  9,  10, 11, 24, 25, 26, 27, 40, 41, 42, 43, 56, 57, 58, 59,
    12, 13, 14, 15, 28, 29, 30, 31, 44, 45, 46, 47, 60, 61, 62, 63};

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void dequantize_block_vbmi(
    const std::uint8_t* c, float am, const std::uint8_t* planes, float* out, std::size_t len) {
  __m512i plane[4][4];   // plane[k][h]: byte k of codes 64 h .. 64 h + 63
  for (int k = 0; k < 4; ++k)
    for (int h = 0; h < 4; ++h) plane[k][h] = _mm512_loadu_si512(planes + 256 * k + 64 * h);
  const __m512i order = _mm512_load_si512(kLaneOrder);
  const __m512 scale = _mm512_set1_ps(am);
  std::size_t i = 0;
  for (; i + 64 <= len; i += 64) {
    const __m512i idx = _mm512_permutexvar_epi8(order, _mm512_loadu_si512(c + i));
    const __mmask64 upper = _mm512_movepi8_mask(idx);   // code >= 128
    __m512i b[4];
    for (int k = 0; k < 4; ++k)
      b[k] = _mm512_mask_blend_epi8(upper, _mm512_permutex2var_epi8(plane[k][0], idx, plane[k][1]),
                                    _mm512_permutex2var_epi8(plane[k][2], idx, plane[k][3]));
    const __m512i lo01 = _mm512_unpacklo_epi8(b[0], b[1]), hi01 = _mm512_unpackhi_epi8(b[0], b[1]);
    const __m512i lo23 = _mm512_unpacklo_epi8(b[2], b[3]), hi23 = _mm512_unpackhi_epi8(b[2], b[3]);
    const __m512i v[4] = {_mm512_unpacklo_epi16(lo01, lo23), _mm512_unpackhi_epi16(lo01, lo23),
                          _mm512_unpacklo_epi16(hi01, hi23), _mm512_unpackhi_epi16(hi01, hi23)};
    for (int j = 0; j < 4; ++j)
      _mm512_storeu_ps(out + i + 16 * j, _mm512_mul_ps(_mm512_castsi512_ps(v[j]), scale));
  }
  for (; i < len; ++i) {
    std::uint32_t u = 0;
    for (int k = 0; k < 4; ++k) u |= std::uint32_t(planes[256 * k + c[i]]) << (8 * k);
    float q;
    std::memcpy(&q, &u, sizeof q);
    out[i] = q * am;
  }
}


// ---------------------------------------------------------------- coding
// A dynamic map (fastopt/quantized.py dynamic_map) holds 0, 1, and in decade
// d = 0..6 the midpoints of N_d equal intervals of [0.1, 1] * 10^(d-6), mirrored
// for signed maps. Let j(a) be the number of thresholds between 0 and a > 0;
// the code of x is Z + j(|x|) for x >= 0 and max(Z - j(|x|), 0) for x < 0 (Z: the
// code of 0; the negative thresholds mirror the positive ones up to the rounding
// of the midpoints). In region r (decade r, 7 for the value 1, -1 below the
// first value) j = min(floor(y), cap_r), y = a * slope_r - offset_r, which is
// q + 1/2 at the region's value q and an integer at each threshold inside it.
// The rounding of the midpoints, of the map's values and of y moves those
// integers by a few 10^-5 at most; a lane within 2^-10 of an integer, within
// 16 ulps of a region boundary, NaN or beyond 2 in magnitude is coded by
// quantize_code (about 0.2% of a step's lanes). The exhaustive check
// (every float32, both maps: benchmarks/runs/2026-12-02/s11/q8/phases512.cpp)
// found every other lane equal to quantize_code; tests/test_quantized.py checks
// the floats around every threshold through this loop.
bool code_lines_of(const float* qmap, CodeLines* t) {
  int zero = -1;
  for (int c = 0; c < 256 && zero < 0; ++c)
    if (qmap[c] == 0.0f) zero = c;
  if (zero < 0) return false;
  const int count = 255 - zero;                 // positive values v_1 .. v_count
  const float* v = qmap + zero;                 // v[0] = 0
  for (int q = 1; q <= zero; ++q)               // negatives mirror positives
    if (q > count || qmap[zero - q] != -v[q]) return false;
  int first[8], last[8];
  for (int r = 0; r < 8; ++r) first[r] = 256, last[r] = -1;
  for (int q = 1, prev = 0; q <= count; ++q) {
    if (!(v[q] > v[q - 1])) return false;
    const int r = v[q] >= 1.0f ? 7 : static_cast<int>(std::floor(std::log10(double(v[q])))) + 7;
    if (r < prev || r > 7) return false;
    prev = r;
    first[r] = first[r] < q ? first[r] : q;
    last[r] = q;
  }
  double bound[8];                              // lower boundary of region r
  for (int r = 0; r < 8; ++r) {
    if (last[r] < first[r] || (r > 0 && first[r] != last[r - 1] + 1)) return false;
    bound[r] = 0.5 * (double(v[first[r] - 1]) + double(v[first[r]]));
  }
  if (first[0] != 1 || last[7] != count) return false;
  t->slope[0] = 0.0f, t->offset[0] = -0.5f, t->cap[0] = 0;
  for (int r = 0; r < 8; ++r) {
    const int n = last[r] - first[r] + 1;
    float& slope = t->slope[r + 1];
    float& offset = t->offset[r + 1];
    if (r == 7 || n == 1) {
      slope = 0.0f, offset = -(float(first[r]) + 0.5f);
    } else {
      slope = float(n / (0.9 * std::pow(10.0, r - 6)));
      offset = float(0.1 * n / 0.9 - first[r]);
    }
    t->cap[r + 1] = last[r];
    for (int q = first[r]; q <= last[r]; ++q) {   // each value on its line, mid-interval
      const double y = double(v[q]) * slope - offset;
      if (std::fabs(y - (q + 0.5)) > 0.05) return false;
    }
  }
  for (int k = 9; k < 16; ++k) t->slope[k] = 0.0f, t->offset[k] = -0.5f, t->cap[k] = 0;
  t->e0 = std::ilogb(bound[0]) - 1;
  if (t->e0 + 31 < 1 || t->e0 < -125) return false;   // binades 0 .. 31 must hold [.., 2)
  for (int k = 0; k < 32; ++k) {
    const double lo = std::ldexp(1.0, t->e0 + k), hi = 2.0 * lo;
    int r = 0;
    while (r < 8 && bound[r] <= lo) ++r;
    t->region[k] = r;
    t->bound[k] = __builtin_inff();
    for (int b = 0; b < 8; ++b) {
      // a boundary this near a binade's edge would need the next binade's check too
      if (std::fabs(bound[b] / lo - 1.0) < 0x1p-17 || std::fabs(bound[b] / hi - 1.0) < 0x1p-17)
        return false;
      if (bound[b] > lo && bound[b] < hi) {
        if (t->bound[k] != __builtin_inff()) return false;   // two boundaries in a binade
        t->bound[k] = static_cast<float>(bound[b]);
      }
    }
  }
  t->zero = zero;
  return true;
}

template <bool Signed>
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))) static void code_lines(
    const float* x, float recip, const CodeLines& t, const int* lut, std::uint8_t* c,
    std::size_t len) {
  const __m512 bound0 = _mm512_load_ps(t.bound), bound1 = _mm512_load_ps(t.bound + 16);
  const __m512i region0 = _mm512_load_si512(t.region), region1 = _mm512_load_si512(t.region + 16);
  const __m512 slope = _mm512_load_ps(t.slope), offset = _mm512_load_ps(t.offset);
  const __m512i cap = _mm512_load_si512(t.cap);
  const __m512 scale = _mm512_set1_ps(recip), near = _mm512_set1_ps(0x1p-10f);
  const __m512i first_binade = _mm512_set1_epi32(127 + t.e0), zero = _mm512_set1_epi32(t.zero);
  const __m512i none = _mm512_setzero_si512();
  std::size_t j = 0;
  for (; j + 16 <= len; j += 16) {
    const __m512 xv = _mm512_mul_ps(_mm512_loadu_ps(x + j), scale);
    const __m512 a = _mm512_abs_ps(xv);
    const __m512i abits = _mm512_castps_si512(a);
    // the binade, 0 below the first (an unsigned saturating subtraction on the low
    // 16 bits; the high ones are 0); above the last (|x| >= 2^(e0 + 32) > 2) the
    // lane is unsure below, whatever region its low 5 bits pick
    const __m512i binade = _mm512_subs_epu16(_mm512_srli_epi32(abits, 23), first_binade);
    const __m512 b = _mm512_permutex2var_ps(bound0, binade, bound1);
    __m512i r = _mm512_permutex2var_epi32(region0, binade, region1);
    r = _mm512_mask_add_epi32(r, _mm512_cmp_ps_mask(b, a, _CMP_LE_OQ), r, _mm512_set1_epi32(1));
    const __m512 y = _mm512_fmsub_ps(a, _mm512_permutexvar_ps(r, slope),
                                     _mm512_permutexvar_ps(r, offset));
    __m512i n = _mm512_cvt_roundps_epi32(y, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    n = _mm512_min_epi32(n, _mm512_permutexvar_epi32(r, cap));
    const __m512 frac = _mm512_reduce_ps(y, _MM_FROUND_TO_NEAREST_INT);   // y - round(y)
    const __m512i ulps = _mm512_abs_epi32(_mm512_sub_epi32(abits, _mm512_castps_si512(b)));
    // near a threshold or a boundary; |x| >= 2 or NaN (never from a step: |x| <= 1)
    const __mmask16 unsure = _mm512_cmp_ps_mask(_mm512_abs_ps(frac), near, _CMP_LT_OQ) |
                             _mm512_cmple_epi32_mask(ulps, _mm512_set1_epi32(16)) |
                             _mm512_cmp_ps_mask(a, _mm512_set1_ps(2.0f), _CMP_NLT_UQ);
    const __mmask16 neg = _mm512_movepi32_mask(_mm512_castps_si512(xv));
    __m512i code = _mm512_add_epi32(zero, n);
    if (Signed) code = _mm512_mask_max_epi32(code, neg, _mm512_sub_epi32(zero, n), none);
    else code = _mm512_maskz_mov_epi32(static_cast<__mmask16>(~neg), code);   // x < 0: code 0
    __m128i out = _mm512_cvtepi32_epi8(code);
    if (__builtin_expect(unsure != 0, 0)) {
      alignas(16) std::uint8_t o[16];
      alignas(64) float xs[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(o), out);
      _mm512_store_ps(xs, xv);
      for (unsigned m = unsure; m != 0; m &= m - 1) {
        const int k = __builtin_ctz(m);
        o[k] = quantize_code<Signed>(xs[k], lut);
      }
      out = _mm_load_si128(reinterpret_cast<const __m128i*>(o));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c + j), out);
  }
  for (; j < len; ++j) c[j] = quantize_code<Signed>(x[j] * recip, lut);
}

void quantize_block_avx512(const float* x, float recip, const CodeLines& lines, const int* lut,
                           std::uint8_t* c, std::size_t len, bool is_signed) {
  is_signed ? code_lines<true>(x, recip, lines, lut, c, len)
            : code_lines<false>(x, recip, lines, lut, c, len);
}

}  // namespace fastopt
#endif
