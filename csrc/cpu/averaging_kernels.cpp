// Loop of the EMA kernel: one instruction-set clone per range function,
// spread over the tensors of a list by multi_tensor_apply.
#include "averaging_kernels.h"

#include <cstddef>

#include "isa.h"

namespace fastopt {
namespace {

using std::size_t;

#define FASTOPT_EMA_RANGE_FUNCTIONS(T)                                                     \
  FASTOPT_CLONES void ema_range(T* avg, const T* param, size_t n, const EmaScalars<T>& s) { \
    T* __restrict a = avg;                                                                  \
    const T* __restrict x = param;                                                          \
    for (size_t i = 0; i < n; ++i) ema_element(a[i], x[i], s);                              \
  }

FASTOPT_EMA_RANGE_FUNCTIONS(float)
FASTOPT_EMA_RANGE_FUNCTIONS(double)

}  // namespace

template <typename T>
void ema_cpu(const EmaList<T>& l, const EmaScalars<T>& s) {
  multi_tensor_apply(l, kElementwiseGrain, [&](const std::array<T*, 2>& t, size_t o, size_t n) {
    ema_range(t[0] + o, t[1] + o, n, s);
  });
}

template void ema_cpu<float>(const EmaList<float>&, const EmaScalars<float>&);
template void ema_cpu<double>(const EmaList<double>&, const EmaScalars<double>&);

}  // namespace fastopt
