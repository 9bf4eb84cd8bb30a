// The same-traffic "bandwidth twin" of a kernel (BENCHMARKING.md): a trivial
// fused pass that reads and writes exactly the arrays the kernel does, with the
// same threads and SIMD clones, so a kernel can be reported as a share of it.
// Benchmark-only; no formula lives here.
#include "twin_kernels.h"

#include "isa.h"
#include "parallel.h"

namespace fastopt {
namespace {

template <int R, int W, typename T>
inline __attribute__((always_inline)) void twin_loop(T* const* rw, const T* const* ro, std::size_t b,
                                                     std::size_t e) {
  T* __restrict w0 = rw[0];
  T* __restrict w1 = W > 1 ? rw[1] : nullptr;
  T* __restrict w2 = W > 2 ? rw[2] : nullptr;
  T* __restrict w3 = W > 3 ? rw[3] : nullptr;
  const T* __restrict r0 = R > 0 ? ro[0] : nullptr;
  const T* __restrict r1 = R > 1 ? ro[1] : nullptr;
  for (std::size_t i = b; i < e; ++i) {
    T x = T(1);
    if (R > 0) x = r0[i];
    if (R > 1) x = x + r1[i];
    w0[i] += x;
    if (W > 1) w1[i] += x;
    if (W > 2) w2[i] += x;
    if (W > 3) w3[i] += x;
  }
}

template <int R, typename T>
inline __attribute__((always_inline)) void twin_by_writes(int w, T* const* rw, const T* const* ro,
                                                          std::size_t b, std::size_t e) {
  switch (w) {
    case 1: twin_loop<R, 1>(rw, ro, b, e); break;
    case 2: twin_loop<R, 2>(rw, ro, b, e); break;
    case 3: twin_loop<R, 3>(rw, ro, b, e); break;
    default: twin_loop<R, 4>(rw, ro, b, e); break;
  }
}

#define FASTOPT_TWIN_RANGE(T)                                                                 \
  FASTOPT_CLONES void twin_range(int r, int w, T* const* rw, const T* const* ro, std::size_t b, \
                                 std::size_t e) {                                             \
    if (r == 0) twin_by_writes<0>(w, rw, ro, b, e);                                           \
    else if (r == 1) twin_by_writes<1>(w, rw, ro, b, e);                                      \
    else twin_by_writes<2>(w, rw, ro, b, e);                                                  \
  }
FASTOPT_TWIN_RANGE(float)
FASTOPT_TWIN_RANGE(double)

}  // namespace

template <typename T>
void bandwidth_twin(const std::vector<T*>& read_write, const std::vector<const T*>& read_only,
                    std::size_t n) {
  const int r = static_cast<int>(read_only.size()), w = static_cast<int>(read_write.size());
  parallel_for(n, kElementwiseGrain, [&](std::size_t b, std::size_t e) {
    twin_range(r, w, read_write.data(), read_only.data(), b, e);
  });
}

template void bandwidth_twin<float>(const std::vector<float*>&, const std::vector<const float*>&, std::size_t);
template void bandwidth_twin<double>(const std::vector<double*>&, const std::vector<const double*>&, std::size_t);

}  // namespace fastopt
