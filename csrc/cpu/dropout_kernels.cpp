// Dropout loops. The hot path handles blocks of 128 elements (16 mask bytes,
// 32 Philox counters): Philox runs on 32 lanes at once (philox4x32_10_lanes
// in fastopt/philox.h), the 128 keep bits are packed into four 32-bit words
// that are stored as the 16 mask bytes, and the same words drive a
// branch-free select-and-scale over the 128 values (Apply*: zero-masking
// vmulps/vmulpd with AVX-512, AND with compare-built lane masks with AVX2 and
// SSE2), while the lines of a block a few blocks ahead are prefetched. The
// backward reuses that select-and-scale on 32 bits of mask at a time. Bytes outside whole blocks go through the
// per-byte functions of fastopt/dropout.h; both paths use the same integer
// maths and the same single multiply, so they agree bit for bit.
//
// Instruction sets: like FASTOPT_CLONES (isa.h), one version per x86-64 level
// chosen at load time (GCC function multiversioning, ifunc), but written as
// separate target("...") versions because they differ in one place: GCC 12
// vectorizes the 32x32->64 multiply of Philox with vpmullq on AVX-512 (3 uops)
// instead of vpmuludq, so the AVX-512 and AVX2 versions pass a lane multiply
// written with vpmuludq on even/odd lanes (MulAvx512, MulAvx2). `flatten`
// inlines everything into each version so the whole block is compiled for
// that version's instruction set.
#include "dropout_kernels.h"

// Keep the lane loops as loops: GCC would otherwise turn the copies and
// zero-fills of 16-lane arrays (c1 = lo1, c2 = 0, ...) into memcpy/memset calls.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#include "isa.h"
#include "parallel.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FASTOPT_DROPOUT_FMV 1
#define FASTOPT_DROPOUT_TARGET(isa) __attribute__((target(isa)))
#include <immintrin.h>
#else
#define FASTOPT_DROPOUT_FMV 0
#define FASTOPT_DROPOUT_TARGET(isa)
#endif

#define FASTOPT_LOOP inline __attribute__((always_inline))

namespace fastopt {
namespace {

using std::size_t;
using std::uint8_t;
using std::uint32_t;
using std::uint64_t;

constexpr int kLanes = 32;                                      // Philox counters per block
constexpr int kBlockElems = kLanes * kDropoutWordsPerCall;     // 128 elements
constexpr int kBlockBytes = kBlockElems / kDropoutBitsPerByte; // 16 mask bytes
constexpr int kBlockWords = kBlockElems / 32;                  // 4 words of 32 keep bits

#if FASTOPT_DROPOUT_FMV
// lo/hi words of m * a[l]: vpmuludq multiplies the even 32-bit lanes into
// 64-bit products; the odd lanes are shifted down and multiplied likewise;
// blends put each product's halves back into the 32-bit lanes.
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
struct MulAvx512 {
  template <int L>
  static inline void lanes(uint32_t m, const uint32_t* a, uint32_t* lo, uint32_t* hi) {
    static_assert(L % 16 == 0, "16 lanes per zmm");
    const __m512i vm = _mm512_set1_epi32(static_cast<int>(m));
    for (int l = 0; l < L; l += 16) {
      const __m512i va = _mm512_loadu_si512(a + l);
      const __m512i even = _mm512_mul_epu32(va, vm);
      const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(va, 32), vm);
      _mm512_storeu_si512(hi + l, _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd));
      _mm512_storeu_si512(lo + l, _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32)));
    }
  }
};
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
struct MulAvx2 {
  template <int L>
  static inline void lanes(uint32_t m, const uint32_t* a, uint32_t* lo, uint32_t* hi) {
    static_assert(L % 8 == 0, "8 lanes per ymm");
    const __m256i vm = _mm256_set1_epi32(static_cast<int>(m));
    for (int l = 0; l < L; l += 8) {
      const __m256i va = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + l));
      const __m256i even = _mm256_mul_epu32(va, vm);
      const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(va, 32), vm);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + l),
                          _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + l),
                          _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA));
    }
  }
};
#pragma GCC pop_options
#endif

// Philox on the kLanes counters j0, j0+1, ... of one block, then the
// block's keep bits as 32-bit words: bit e of bits[w] is element 32w + e, so
// the words, stored little-endian, are the block's mask bytes. Requires
// t32 = t < 2^32.
template <typename Mul>
FASTOPT_LOOP void block_bits(uint64_t j0, uint32_t k0, uint32_t k1, uint32_t t32,
                             uint32_t* __restrict bits) {
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  FASTOPT_LANE_LOOP
  for (int l = 0; l < kLanes; ++l) {
    c0[l] = dropout_ctr0(j0 + l);
    c1[l] = dropout_ctr1(j0 + l);
    c2[l] = 0;
    c3[l] = 0;
  }
  philox4x32_10_lanes<kLanes, Mul>(c0, c1, c2, c3, k0, k1);
  // Lane l holds elements 4l .. 4l+3: one nibble of keep bits per lane, one
  // byte per nibble here.
  uint8_t nib[kLanes];
  FASTOPT_LANE_LOOP
  for (int l = 0; l < kLanes; ++l)
    nib[l] = static_cast<uint8_t>(static_cast<uint32_t>(dropout_keep32(c0[l], t32)) |
                                  static_cast<uint32_t>(dropout_keep32(c1[l], t32)) << 1 |
                                  static_cast<uint32_t>(dropout_keep32(c2[l], t32)) << 2 |
                                  static_cast<uint32_t>(dropout_keep32(c3[l], t32)) << 3);
  // Eight nibble-bytes (one little-endian 64-bit word) -> 32 bits: fold each
  // odd byte's nibble into the even byte below it, then squeeze out the gaps.
  for (int w = 0; w < kBlockWords; ++w) {
    uint64_t x = 0;
    for (int q = 0; q < 8; ++q) x |= static_cast<uint64_t>(nib[8 * w + q]) << (8 * q);
    x = (x | (x >> 4)) & 0x00FF00FF00FF00FFull;
    x = (x | (x >> 8)) & 0x0000FFFF0000FFFFull;
    x = (x | (x >> 16)) & 0x00000000FFFFFFFFull;
    bits[w] = static_cast<uint32_t>(x);
  }
}

FASTOPT_LOOP void store_bits(uint8_t* m, const uint32_t* bits) {
  for (int w = 0; w < kBlockWords; ++w)
    for (int q = 0; q < 4; ++q) m[4 * w + q] = static_cast<uint8_t>(bits[w] >> (8 * q));
}

FASTOPT_LOOP uint32_t load_bits(const uint8_t* m) {
  return static_cast<uint32_t>(m[0]) | static_cast<uint32_t>(m[1]) << 8 |
         static_cast<uint32_t>(m[2]) << 16 | static_cast<uint32_t>(m[3]) << 24;
}

// out[e] = in[e] * scale where bit e of bits is set, else +0 (32 elements):
// Apply::bits(in, out, bits, scale). Written per instruction set because GCC
// compiles the plain loop (dropout_value per element) to a branch per element,
// mispredicted on a random mask (10x slower than a copy). Each version does
// the same single multiply and then selects: the kept lanes hold in * scale,
// the dropped ones +0 (a mask register zeroing the lane, or an AND with an
// all-zero lane mask), so every version gives the bits of dropout_value.
struct ApplyPortable {
  template <typename T>
  static FASTOPT_LOOP void bits(const T* __restrict in, T* __restrict out, uint32_t bits,
                                T scale) {
    for (int e = 0; e < 32; ++e) out[e] = dropout_value(in[e], ((bits >> e) & 1u) != 0u, scale);
  }
};

// 16-bit storage (fastopt/storage.h), every instruction set: the kept value
// dropout_store(in, true, scale) (widen, multiply in float, round once) ANDed
// with an all-ones or all-zero 16-bit lane mask, which is dropout_store's
// result for a dropped element (+0); integer operations only, so the
// compiler vectorizes it for each target without a branch per element.
struct Apply16 {
  template <typename X>
  static FASTOPT_LOOP void bits(const X* __restrict in, X* __restrict out, uint32_t bits,
                                float scale) {
    for (int e = 0; e < 32; ++e) {
      const uint16_t lane = static_cast<uint16_t>(0u - ((bits >> e) & 1u));
      out[e].bits = static_cast<uint16_t>(dropout_store(in[e], true, scale).bits & lane);
    }
  }
};

#if FASTOPT_DROPOUT_FMV
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
// A 16-bit (float) or 8-bit (double) slice of the bits is the lane mask of a
// zero-masking multiply.
struct ApplyAvx512 {
  static inline void bits(const float* __restrict in, float* __restrict out, uint32_t bits,
                                float scale) {
    const __m512 vs = _mm512_set1_ps(scale);
    for (int h = 0; h < 2; ++h)
      _mm512_storeu_ps(out + 16 * h,
                       _mm512_maskz_mul_ps(static_cast<__mmask16>(bits >> (16 * h)),
                                           _mm512_loadu_ps(in + 16 * h), vs));
  }
  static inline void bits(const double* __restrict in, double* __restrict out,
                                uint32_t bits, double scale) {
    const __m512d vs = _mm512_set1_pd(scale);
    for (int q = 0; q < 4; ++q)
      _mm512_storeu_pd(out + 8 * q,
                       _mm512_maskz_mul_pd(static_cast<__mmask8>(bits >> (8 * q)),
                                           _mm512_loadu_pd(in + 8 * q), vs));
  }
};
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
// Lane l of a group gets all ones iff (slice & (1 << l)) != 0: broadcast the
// slice, AND with the lane's bit, compare with it; the product is ANDed with
// that lane mask.
struct ApplyAvx2 {
  static inline void bits(const float* __restrict in, float* __restrict out, uint32_t bits,
                                float scale) {
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    for (int q = 0; q < 4; ++q) {
      const __m256i b = _mm256_set1_epi32(static_cast<int>(bits >> (8 * q)));
      const __m256i keep = _mm256_cmpeq_epi32(_mm256_and_si256(b, sel), sel);
      _mm256_storeu_ps(out + 8 * q, _mm256_and_ps(_mm256_mul_ps(_mm256_loadu_ps(in + 8 * q), vs),
                                                  _mm256_castsi256_ps(keep)));
    }
  }
  static inline void bits(const double* __restrict in, double* __restrict out,
                                uint32_t bits, double scale) {
    const __m256d vs = _mm256_set1_pd(scale);
    const __m256i sel = _mm256_setr_epi64x(1, 2, 4, 8);
    for (int q = 0; q < 8; ++q) {
      const __m256i b = _mm256_set1_epi64x(static_cast<long long>(bits >> (4 * q)));
      const __m256i keep = _mm256_cmpeq_epi64(_mm256_and_si256(b, sel), sel);
      _mm256_storeu_pd(out + 4 * q, _mm256_and_pd(_mm256_mul_pd(_mm256_loadu_pd(in + 4 * q), vs),
                                                  _mm256_castsi256_pd(keep)));
    }
  }
};
#pragma GCC pop_options

// The baseline (SSE2) version of ApplyAvx2. For doubles both 32-bit halves of
// a lane test the lane's bit (SSE2 has no 64-bit compare).
struct ApplySse2 {
  static inline void bits(const float* __restrict in, float* __restrict out, uint32_t bits,
                                float scale) {
    const __m128 vs = _mm_set1_ps(scale);
    const __m128i sel = _mm_setr_epi32(1, 2, 4, 8);
    for (int q = 0; q < 8; ++q) {
      const __m128i b = _mm_set1_epi32(static_cast<int>(bits >> (4 * q)));
      const __m128i keep = _mm_cmpeq_epi32(_mm_and_si128(b, sel), sel);
      _mm_storeu_ps(out + 4 * q,
                    _mm_and_ps(_mm_mul_ps(_mm_loadu_ps(in + 4 * q), vs), _mm_castsi128_ps(keep)));
    }
  }
  static inline void bits(const double* __restrict in, double* __restrict out,
                                uint32_t bits, double scale) {
    const __m128d vs = _mm_set1_pd(scale);
    const __m128i sel = _mm_setr_epi32(1, 1, 2, 2);
    for (int q = 0; q < 16; ++q) {
      const __m128i b = _mm_set1_epi32(static_cast<int>(bits >> (2 * q)));
      const __m128i keep = _mm_cmpeq_epi32(_mm_and_si128(b, sel), sel);
      _mm_storeu_pd(out + 2 * q,
                    _mm_and_pd(_mm_mul_pd(_mm_loadu_pd(in + 2 * q), vs), _mm_castsi128_pd(keep)));
    }
  }
};
#endif

// Elements ahead of the current block whose lines are prefetched (a hint:
// prefetching past the end of an array is harmless).
constexpr size_t kPrefetchElems = 4 * kBlockElems;

template <typename T>
FASTOPT_LOOP void prefetch_block(const T* x, T* y) {
  constexpr int kLine = 64 / sizeof(T);
  for (int e = 0; e < kBlockElems; e += kLine) {
    __builtin_prefetch(x + e, 0, 3);
    __builtin_prefetch(y + e, 1, 3);
  }
}

template <typename T, typename Mul, typename Apply>
FASTOPT_LOOP void forward_bytes(const T* __restrict x, T* __restrict y, uint8_t* __restrict mask,
                                size_t b0, size_t b1, size_t n, uint32_t k0, uint32_t k1,
                                uint64_t t, compute_t<T> scale) {
  if (t > 0xFFFFFFFFu) {  // p == 1: every element dropped, no word needed
    for (size_t i = 8 * b0, e = (8 * b1 < n ? 8 * b1 : n); i < e; ++i) y[i] = T{};
    for (size_t b = b0; b < b1; ++b) mask[b] = 0;
    return;
  }
  const uint32_t t32 = static_cast<uint32_t>(t);
  size_t b = b0;
  // Full blocks: all kBlockElems elements exist.
  for (; b + kBlockBytes <= b1 && (b + kBlockBytes) * 8 <= n; b += kBlockBytes) {
    // The Philox work leaves the memory system idle for a while per block:
    // ask for the lines of a block a few blocks ahead meanwhile (x to read,
    // y to write) so the loads and stores below do not stall.
    prefetch_block(x + 8 * b + kPrefetchElems, y + 8 * b + kPrefetchElems);
    uint32_t bits[kBlockWords];
    block_bits<Mul>(2 * static_cast<uint64_t>(b), k0, k1, t32, bits);
    store_bits(mask + b, bits);
    for (int w = 0; w < kBlockWords; ++w)
      Apply::bits(x + 8 * b + 32 * w, y + 8 * b + 32 * w, bits[w], scale);
  }
  // Remaining bytes (the end of a part, or the array's last partial byte).
  for (; b < b1; ++b) {
    const size_t first = 8 * b;
    const int count = static_cast<int>(n - first < 8 ? n - first : 8);
    mask[b] = static_cast<uint8_t>(
        dropout_forward_byte(x + first, y + first, b, count, k0, k1, t, scale));
  }
}

template <typename Mul>
FASTOPT_LOOP void mask_bytes(uint8_t* __restrict mask, size_t b0, size_t b1, size_t n, uint32_t k0,
                             uint32_t k1, uint64_t t) {
  if (t > 0xFFFFFFFFu) {
    for (size_t b = b0; b < b1; ++b) mask[b] = 0;
    return;
  }
  const uint32_t t32 = static_cast<uint32_t>(t);
  size_t b = b0;
  for (; b + kBlockBytes <= b1 && (b + kBlockBytes) * 8 <= n; b += kBlockBytes) {
    uint32_t bits[kBlockWords];
    block_bits<Mul>(2 * static_cast<uint64_t>(b), k0, k1, t32, bits);
    store_bits(mask + b, bits);
  }
  for (; b < b1; ++b) {
    const size_t first = 8 * b;
    const int count = static_cast<int>(n - first < 8 ? n - first : 8);
    mask[b] = static_cast<uint8_t>(dropout_mask_byte(b, count, k0, k1, t));
  }
}

template <typename T, typename Apply>
FASTOPT_LOOP void backward_bytes(const T* __restrict dy, const uint8_t* __restrict mask,
                                 T* __restrict dx, size_t b0, size_t b1, size_t n,
                                 compute_t<T> scale) {
  size_t b = b0;
  for (; b + 4 <= b1 && (b + 4) * 8 <= n; b += 4)
    Apply::bits(dy + 8 * b, dx + 8 * b, load_bits(mask + b), scale);
  for (; b < b1; ++b) {
    const size_t first = 8 * b;
    const int count = static_cast<int>(n - first < 8 ? n - first : 8);
    dropout_backward_byte(dy + first, dx + first, mask[b], count, scale);
  }
}

}  // namespace

// One version per instruction set of each range function (external linkage:
// GCC's multiversioning dispatcher is an ifunc).
namespace dropout_isa {

#define FASTOPT_DROPOUT_RANGES(TARGET, MUL, APPLY)                                                    \
  FASTOPT_DROPOUT_TARGET(TARGET) __attribute__((flatten)) void forward_range(                                   \
      const float* x, float* y, uint8_t* mask, size_t b0, size_t b1, size_t n, uint32_t k0,      \
      uint32_t k1, uint64_t t, float scale) {                                                    \
    forward_bytes<float, MUL, APPLY>(x, y, mask, b0, b1, n, k0, k1, t, scale);                          \
  }                                                                                              \
  FASTOPT_DROPOUT_TARGET(TARGET) __attribute__((flatten)) void forward_range(                                   \
      const double* x, double* y, uint8_t* mask, size_t b0, size_t b1, size_t n, uint32_t k0,    \
      uint32_t k1, uint64_t t, double scale) {                                                   \
    forward_bytes<double, MUL, APPLY>(x, y, mask, b0, b1, n, k0, k1, t, scale);                         \
  }                                                                                              \
  FASTOPT_DROPOUT_TARGET(TARGET) __attribute__((flatten)) void mask_range(uint8_t* mask, size_t b0, size_t b1,  \
                                                           size_t n, uint32_t k0, uint32_t k1,   \
                                                           uint64_t t) {                         \
    mask_bytes<MUL>(mask, b0, b1, n, k0, k1, t);                                                 \
  }                                                                                              \
  FASTOPT_DROPOUT_TARGET(TARGET) __attribute__((flatten)) void backward_range(                                  \
      const float* dy, const uint8_t* mask, float* dx, size_t b0, size_t b1, size_t n,           \
      float scale) {                                                                             \
    backward_bytes<float, APPLY>(dy, mask, dx, b0, b1, n, scale);                                       \
  }                                                                                              \
  FASTOPT_DROPOUT_TARGET(TARGET) __attribute__((flatten)) void backward_range(                                  \
      const double* dy, const uint8_t* mask, double* dx, size_t b0, size_t b1, size_t n,         \
      double scale) {                                                                            \
    backward_bytes<double, APPLY>(dy, mask, dx, b0, b1, n, scale);                                      \
  }                                                                                              \
  FASTOPT_DROPOUT_RANGES_16(TARGET, MUL, Bf16)                                                   \
  FASTOPT_DROPOUT_RANGES_16(TARGET, MUL, F16)

// The 16-bit versions (Apply16 on every instruction set).
#define FASTOPT_DROPOUT_RANGES_16(TARGET, MUL, X)                                                \
  FASTOPT_DROPOUT_TARGET(TARGET) __attribute__((flatten)) void forward_range(                    \
      const X* x, X* y, uint8_t* mask, size_t b0, size_t b1, size_t n, uint32_t k0, uint32_t k1, \
      uint64_t t, float scale) {                                                                 \
    forward_bytes<X, MUL, Apply16>(x, y, mask, b0, b1, n, k0, k1, t, scale);                     \
  }                                                                                              \
  FASTOPT_DROPOUT_TARGET(TARGET) __attribute__((flatten)) void backward_range(                   \
      const X* dy, const uint8_t* mask, X* dx, size_t b0, size_t b1, size_t n, float scale) {    \
    backward_bytes<X, Apply16>(dy, mask, dx, b0, b1, n, scale);                                  \
  }

#if FASTOPT_DROPOUT_FMV
FASTOPT_DROPOUT_RANGES("arch=x86-64-v4", MulAvx512, ApplyAvx512)
FASTOPT_DROPOUT_RANGES("arch=x86-64-v3", MulAvx2, ApplyAvx2)
FASTOPT_DROPOUT_RANGES("default", PhiloxMulPortable, ApplySse2)
#else
FASTOPT_DROPOUT_RANGES("", PhiloxMulPortable, ApplyPortable)
#endif

}  // namespace dropout_isa

namespace {

// Bytes per thread below which one thread does the whole call. The forward
// costs more per byte than a plain elementwise kernel (two Philox calls), so
// it splits earlier.
constexpr size_t kForwardGrainBytes = (kElementwiseGrain / 8) / 4;
constexpr size_t kBackwardGrainBytes = kElementwiseGrain / 8;

size_t mask_bytes_of(size_t n) { return (n + 7) / 8; }

}  // namespace

template <typename T>
void dropout_forward_cpu(const T* x, T* y, uint8_t* mask, size_t n, uint64_t seed,
                         uint64_t threshold, compute_t<T> scale) {
  const uint32_t k0 = dropout_key0(seed), k1 = dropout_key1(seed);
  parallel_for(mask_bytes_of(n), kForwardGrainBytes, [&](size_t b0, size_t b1) {
    dropout_isa::forward_range(x, y, mask, b0, b1, n, k0, k1, threshold, scale);
  });
}

template <typename T>
void dropout_backward_cpu(const T* dy, const uint8_t* mask, T* dx, size_t n, compute_t<T> scale) {
  parallel_for(mask_bytes_of(n), kBackwardGrainBytes, [&](size_t b0, size_t b1) {
    dropout_isa::backward_range(dy, mask, dx, b0, b1, n, scale);
  });
}

void dropout_mask_cpu(uint8_t* mask, size_t n, uint64_t seed, uint64_t threshold) {
  const uint32_t k0 = dropout_key0(seed), k1 = dropout_key1(seed);
  parallel_for(mask_bytes_of(n), kForwardGrainBytes, [&](size_t b0, size_t b1) {
    dropout_isa::mask_range(mask, b0, b1, n, k0, k1, threshold);
  });
}

template void dropout_forward_cpu<float>(const float*, float*, uint8_t*, size_t, uint64_t, uint64_t, float);
template void dropout_forward_cpu<double>(const double*, double*, uint8_t*, size_t, uint64_t, uint64_t, double);
template void dropout_backward_cpu<float>(const float*, const uint8_t*, float*, size_t, float);
template void dropout_backward_cpu<double>(const double*, const uint8_t*, double*, size_t, double);
template void dropout_forward_cpu<Bf16>(const Bf16*, Bf16*, uint8_t*, size_t, uint64_t, uint64_t, float);
template void dropout_forward_cpu<F16>(const F16*, F16*, uint8_t*, size_t, uint64_t, uint64_t, float);
template void dropout_backward_cpu<Bf16>(const Bf16*, const uint8_t*, Bf16*, size_t, float);
template void dropout_backward_cpu<F16>(const F16*, const uint8_t*, F16*, size_t, float);

}  // namespace fastopt
