// AVX2 loops for the 8-bit block loops (quantized_kernels.cpp): the code of
// each element through one vpgatherdd of the bucket table; each state through
// eight scalar loads of the map, inserted into one vector (on this Zen 3 host
// faster than vgatherdps: 0.98 against 1.39 ns per element for two states,
// benchmarks/RESULTS.md, issue 16 session 5). GCC's vectorizer, tuned
// generically, emulates gathers element by element with extracts, so these
// loops are written with intrinsics; they compute exactly quantize_code /
// dequantize_code of csrc/include/fastopt/quantize.h (the scalar tail calls
// them), bit for bit. Called once per block of 256.
#include "quantized_simd.h"

#if FASTOPT_HAVE_SIMD_LOOKUPS
#include <immintrin.h>

#include "fastopt/quantize.h"

namespace fastopt {

// Eight map values for the eight codes packed in w (lowest byte first).
__attribute__((target("avx2"))) static inline __m256 map_values(std::uint64_t w, const float* qmap) {
  const auto at = [&](int k) { return _mm_load_ss(qmap + ((w >> (8 * k)) & 255)); };
  __m128 lo = at(0), hi = at(4);
  lo = _mm_insert_ps(lo, at(1), 0x10);
  hi = _mm_insert_ps(hi, at(5), 0x10);
  lo = _mm_insert_ps(lo, at(2), 0x20);
  hi = _mm_insert_ps(hi, at(6), 0x20);
  lo = _mm_insert_ps(lo, at(3), 0x30);
  hi = _mm_insert_ps(hi, at(7), 0x30);
  return _mm256_set_m128(hi, lo);
}

__attribute__((target("avx2"))) void dequantize_block_avx2(const std::uint8_t* c, float am,
                                                           const float* qmap, float* out,
                                                           std::size_t len) {
  const __m256 scale = _mm256_set1_ps(am);
  std::size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    std::uint64_t w;
    __builtin_memcpy(&w, c + i, sizeof w);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(map_values(w, qmap), scale));
  }
  for (; i < len; ++i) out[i] = dequantize_code(c[i], am, qmap);
}

template <bool Signed>
__attribute__((target("avx2"))) static void codes_avx2(const float* x, float recip, const int* lut,
                                                       std::uint8_t* c, std::size_t len) {
  constexpr int bits = kLutBits<Signed>, shift = 23 - bits, half = kLutBinades << bits;
  const __m256 scale = _mm256_set1_ps(recip);
  const __m256i zero = _mm256_setzero_si256();
  std::size_t j = 0;
  for (; j + 8 <= len; j += 8) {
    const __m256 xv = _mm256_mul_ps(_mm256_loadu_ps(x + j), scale);
    const __m256i u = _mm256_castps_si256(xv);
    const __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    const __m256i neg = _mm256_srai_epi32(u, 31);   // all ones where x < 0
    __m256i b = _mm256_sub_epi32(_mm256_srli_epi32(a, shift), _mm256_set1_epi32(kLutE0 << bits));
    b = _mm256_min_epi32(_mm256_max_epi32(b, zero), _mm256_set1_epi32(half - 1));
    if (Signed) b = _mm256_add_epi32(b, _mm256_and_si256(neg, _mm256_set1_epi32(half)));
    const __m256i e = _mm256_i32gather_epi32(lut, b, 4);
    const __m256i low = _mm256_and_si256(a, _mm256_set1_epi32((1 << shift) - 1));
    const __m256i l = _mm256_sub_epi32(_mm256_xor_si256(low, neg), neg);   // x < 0: -low
    const __m256i up = _mm256_cmpgt_epi32(l, _mm256_srai_epi32(e, 8));     // -1 or 0
    __m256i code = _mm256_sub_epi32(_mm256_and_si256(e, _mm256_set1_epi32(255)), up);
    __m256i keep = _mm256_castps_si256(_mm256_cmp_ps(xv, xv, _CMP_ORD_Q));   // NaN: code 0
    if (!Signed) keep = _mm256_andnot_si256(neg, keep);                     // x < 0: code 0
    code = _mm256_and_si256(code, keep);
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(code),
                                       _mm256_extracti128_si256(code, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(c + j), _mm_packus_epi16(w, w));
  }
  for (; j < len; ++j) c[j] = quantize_code<Signed>(x[j] * recip, lut);
}

void quantize_block_avx2(const float* x, float recip, const int* lut, std::uint8_t* c,
                         std::size_t len, bool is_signed) {
  is_signed ? codes_avx2<true>(x, recip, lut, c, len) : codes_avx2<false>(x, recip, lut, c, len);
}

}  // namespace fastopt
#endif
