// Loops of the norm and scale kernels; one instruction-set clone per range
// function, the norm kind resolved to a template before the loop.
#include "clipping_kernels.h"

#include <cstddef>
#include <vector>

#include "isa.h"

#define FASTOPT_LOOP inline __attribute__((always_inline))

namespace fastopt {
namespace {

using std::size_t;

// Independent double accumulators (vectorizes, fixed order). 32, not 8: with
// 8 lanes (two ymm accumulators) the norm pass ran at 65-72% of the read twin
// at 10^7, with 32 lanes (eight ymm) at 76-89% (benchmarks/RESULTS.md, issue 17
// session 5).
constexpr int kLanes = 32;

template <int KIND, typename T>
FASTOPT_LOOP double norm_loop(const T* __restrict g, size_t n, double p) {
  double acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = 0.0;
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] = norm_accumulate<KIND>(acc[j], g[i + j], p);
  for (int j = 0; i < n; ++i, ++j) acc[j] = norm_accumulate<KIND>(acc[j], g[i], p);
  // Fixed pairwise merge of the lanes.
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] = norm_combine<KIND>(acc[j], acc[j + w]);
  return acc[0];
}

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
    for (size_t k = b; k < e; ++k)
      partial[k] = norm_range(static_cast<const T*>(blocks[k].ptr), blocks[k].n, kind, p);
  };
  // Threads only decide who computes which block, never how a block is summed.
  if (total < 2 * kElementwiseGrain) reduce(0, blocks.size());
  else parallel_for(blocks.size(), 1, reduce);
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
