// CUDA kernel of parameter averaging (EMA) (fastopt/averaging.h, the header
// the CPU loops include). Lists of tensors go through the multi-tensor table
// (multi_tensor.cuh): one launch per call. Compiled at first use by
// cupy.RawModule (fastopt/backends/cuda/loader.py) and by nvcc/NVRTC in
// tests/test_cuda_compile.py.
#include "fastopt/averaging.h"
#include "multi_tensor.cuh"

namespace fastopt {
namespace cuda {

template <typename T>
struct EmaOp {
  EmaScalars<T> s;
  __device__ __forceinline__ void operator()(T (&e)[kRoles]) const { ema_element(e[0], e[1], s); }
};

}  // namespace cuda
}  // namespace fastopt

// Argument lists (after FASTOPT_TABLE_ARGS, multi_tensor.cuh) are mirrored in
// fastopt/backends/cuda/averaging.py (KERNELS).
#define FASTOPT_AVERAGING_ENTRY_POINTS(T, SUFFIX)                                              \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)                   \
      fastopt_ema_##SUFFIX(FASTOPT_TABLE_ARGS, T decay, T one_minus_decay) {                   \
    using namespace fastopt::cuda;                                                             \
    apply_chunks<T, 3u, 1u>(tensors, chunks, n_chunks, chunk_size,                             \
                            EmaOp<T>{fastopt::EmaScalars<T>{decay, one_minus_decay}});          \
  }

FASTOPT_AVERAGING_ENTRY_POINTS(float, f32)
FASTOPT_AVERAGING_ENTRY_POINTS(double, f64)
