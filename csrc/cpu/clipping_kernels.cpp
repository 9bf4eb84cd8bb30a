// Loops of the norm and scale kernels; one instruction-set clone per range
// function, the norm kind resolved to a template before the loop.
#include "clipping_kernels.h"

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "isa.h"

#if FASTOPT_X86_GCC
#include <immintrin.h>
#endif

#define FASTOPT_LOOP inline __attribute__((always_inline))

namespace fastopt {
namespace {

using std::size_t;

// Independent double accumulators (vectorizes, fixed order). 32, not 8: with
// 8 lanes (two ymm accumulators) the norm pass ran at 65-72% of the read twin
// at 10^7, with 32 lanes (eight ymm) at 76-89% (benchmarks/RESULTS.md, issue 17
// session 5).
constexpr int kLanes = 32;

// Lane j holds the elements i + j of every whole group of kLanes; the tail
// (fewer than kLanes elements, from i) goes into lanes 0, 1, ...; then the
// lanes merge pairwise in a fixed order.
template <int KIND, typename T>
FASTOPT_LOOP double norm_finish_lanes(double* acc, const T* __restrict g, size_t i, size_t n,
                                      double p) {
  for (int j = 0; i < n; ++i, ++j) acc[j] = norm_accumulate<KIND>(acc[j], g[i], p);
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] = norm_combine<KIND>(acc[j], acc[j + w]);
  return acc[0];
}

template <int KIND, typename T>
FASTOPT_LOOP double norm_loop(const T* __restrict g, size_t n, double p) {
  double acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = 0.0;
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] = norm_accumulate<KIND>(acc[j], g[i + j], p);
  return norm_finish_lanes<KIND>(acc, g, i, n, p);
}

#if FASTOPT_X86_GCC
// norm_loop<kNormL2, float>, bit for bit (the same lanes, the same sums), with
// each group of four floats widened straight from memory, one fused
// multiply-add per four lanes, and a software prefetch. The FMA rounds once
// where norm_accumulate's acc + double(g) * double(g) rounds twice, yet gives
// the same bits: the square of a float's 24-bit significand has at most 48
// bits and a float's exponent range squared stays inside double's normal
// range (2^-298 .. 2^256), so double(g) * double(g) is exact and the only
// rounding left is the addition's. GCC vectorizes the generic loop with
// 256-bit loads, an extract and two conversions per eight floats; at 10^7,
// 2 threads, that work did not hide under the read (1.19 ms without the
// prefetch, 0.99 with it, 0.93 for a float32 sum; issue 17 session 10). On
// the Zen 4 host, in L2, one thread, the multiply and add took 0.68-0.75 ms
// per 10^7 floats, the FMA 0.40-0.48, a float32 sum 0.34-0.39 (session 14,
// benchmarks/runs/2026-12-03/s14/clipnorm/norm_fma.cpp).
constexpr size_t kPrefetchAhead = 1024;  // floats

__attribute__((target("avx2,fma"))) double norm_l2_float_avx2(const float* __restrict g,
                                                              size_t n) {
  static_assert(kLanes == 32, "eight vectors of four double lanes");
  __m256d v[8];
  for (int k = 0; k < 8; ++k) v[k] = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    // Two cache lines, 4 KiB ahead: a hint, which past the array's end faults
    // nothing (the address is formed as an integer, not a pointer past the end).
    const std::uintptr_t ahead = reinterpret_cast<std::uintptr_t>(g + i) + 4 * kPrefetchAhead;
    _mm_prefetch(reinterpret_cast<const char*>(ahead), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(ahead + 64), _MM_HINT_T0);
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m256d d = _mm256_cvtps_pd(_mm_loadu_ps(g + i + 4 * k));
      v[k] = _mm256_fmadd_pd(d, d, v[k]);
    }
  }
  double acc[kLanes];
  for (int k = 0; k < 8; ++k) _mm256_storeu_pd(acc + 4 * k, v[k]);
  return norm_finish_lanes<kNormL2>(acc, g, i, n, 2.0);
}
#endif

#define FASTOPT_CLIPPING_RANGE_FUNCTIONS(T)                                                \
  FASTOPT_CLONES double norm_range(const T* g, size_t n, int kind, double p) {              \
    switch (kind) {                                                                         \
      case kNormL2: return norm_loop<kNormL2>(g, n, p);                                     \
      case kNormL1: return norm_loop<kNormL1>(g, n, p);                                     \
      case kNormInf: return norm_loop<kNormInf>(g, n, p);                                   \
      default: return norm_loop<kNormP>(g, n, p);                                           \
    }                                                                                       \
  }                                                                                         \
  FASTOPT_CLONES void scale_range(T* g, size_t n, T coef) {                                 \
    T* __restrict x = g;                                                                    \
    for (size_t i = 0; i < n; ++i) scale_element(x[i], coef);                               \
  }

FASTOPT_CLIPPING_RANGE_FUNCTIONS(float)
FASTOPT_CLIPPING_RANGE_FUNCTIONS(double)

struct Block {
  const void* ptr;
  size_t n;
};

}  // namespace

template <typename T>
double norm_cpu(const GradList<T>& l, int kind, double p) {
  std::vector<Block> blocks;
  size_t total = 0;
  for (size_t t = 0; t < l.sizes.size(); ++t) {
    const T* base = l.ptrs[t][0];
    for (size_t o = 0; o < l.sizes[t]; o += kNormBlock)
      blocks.push_back({base + o, std::min(kNormBlock, l.sizes[t] - o)});
    total += l.sizes[t];
  }
  std::vector<double> partial(blocks.size(), 0.0);
  auto reduce = [&](size_t b, size_t e) {
    for (size_t k = b; k < e; ++k) {
      const T* g = static_cast<const T*>(blocks[k].ptr);
#if FASTOPT_X86_GCC
      if constexpr (std::is_same_v<T, float>) {
        if (kind == kNormL2 && cpu_has_avx2_fma()) {
          partial[k] = norm_l2_float_avx2(g, blocks[k].n);
          continue;
        }
      }
#endif
      partial[k] = norm_range(g, blocks[k].n, kind, p);
    }
  };
  // Threads only decide who computes which block, never how a block is summed.
  if (total < 2 * kElementwiseGrain) reduce(0, blocks.size());
  else parallel_for_units(blocks.size(), 1, reduce);
  double acc = 0.0;
  for (size_t k = 0; k < partial.size(); ++k) {
    switch (kind) {
      case kNormInf: acc = norm_combine<kNormInf>(acc, partial[k]); break;
      default: acc = norm_combine<kNormL2>(acc, partial[k]); break;
    }
  }
  return acc;
}

template <typename T>
void scale_cpu(const GradList<T>& l, T coef) {
  multi_tensor_apply(l, kElementwiseGrain, [&](const std::array<T*, 1>& t, size_t o, size_t n) {
    scale_range(t[0] + o, n, coef);
  });
}

#define FASTOPT_CLIPPING_INSTANTIATE(T)                          \
  template double norm_cpu<T>(const GradList<T>&, int, double); \
  template void scale_cpu<T>(const GradList<T>&, T);
FASTOPT_CLIPPING_INSTANTIATE(float)
FASTOPT_CLIPPING_INSTANTIATE(double)

}  // namespace fastopt
