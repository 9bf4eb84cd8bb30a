// CUDA kernels of gradient clipping (fastopt/clipping.h, the header the CPU
// loops include). Lists of tensors go through the multi-tensor table
// (multi_tensor.cuh): one launch per call for scaling; the norm is per-chunk
// partials (a function of the sizes alone, so deterministic on every GPU) then
// one block combining them in a fixed order. Compiled at first use by
// cupy.RawModule (fastopt/backends/cuda/loader.py) and by nvcc/NVRTC in
// tests/test_cuda_compile.py.
#include "fastopt/clipping.h"
#include "multi_tensor.cuh"

namespace fastopt {
namespace cuda {

template <typename T>
struct ScaleOp {
  T coef;
  __device__ __forceinline__ void operator()(T (&e)[kRoles]) const { scale_element(e[0], coef); }
};

// Combines every thread's accumulator into thread 0's, in a fixed order.
template <int KIND>
__device__ __forceinline__ double block_combine(double acc) {
  __shared__ double sh[kBlockThreads / 32];
  for (int offset = 16; offset > 0; offset >>= 1)
    acc = norm_combine<KIND>(acc, __shfl_down_sync(0xffffffffu, acc, offset));
  if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    acc = sh[0];
    for (int w = 1; w < kBlockThreads / 32; ++w) acc = norm_combine<KIND>(acc, sh[w]);
  }
  __syncthreads();
  return acc;
}

// partial[c] = the accumulator of chunk c (one per chunk, whatever the grid).
template <int KIND, typename T>
__device__ __forceinline__ void norm_partials(const TensorEntry* __restrict__ tensors,
                                              const ChunkEntry* __restrict__ chunks, int n_chunks,
                                              long long chunk_size, double* __restrict__ partial,
                                              double p) {
  for (int c = blockIdx.x; c < n_chunks; c += gridDim.x) {
    const ChunkEntry ch = chunks[c];
    const TensorEntry& te = tensors[ch.tensor];
    const long long begin = static_cast<long long>(ch.chunk) * chunk_size;
    const long long n = min_ll(chunk_size, te.size - begin);
    const T* g = reinterpret_cast<const T*>(te.ptr[0]) + begin;
    double acc = 0.0;
    // Thread t takes packs q = t, t + blockDim, ... of V consecutive values, two
    // packs loaded before either is accumulated; 16-byte loads where the tensor
    // is aligned, scalar ones where not (or for the last, partial pack). The
    // values are accumulated in the same order either way, so the norm does not
    // depend on the alignment.
    constexpr int V = Pack<T>::kWidth;
    const long long packs = (n + V - 1) / V;
    for (long long q = threadIdx.x; q < packs; q += 2 * blockDim.x) {
      Pack<T> x[2];
      int cnt[2];
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        const long long first = (q + u * static_cast<long long>(blockDim.x)) * V;
        cnt[u] = first >= n ? 0 : (n - first < V ? int(n - first) : V);
        if (cnt[u] == V && te.vec_ok) {
          x[u] = reinterpret_cast<const Pack<T>*>(g)[first / V];
        } else {
#pragma unroll
          for (int k = 0; k < V; ++k) x[u].v[k] = k < cnt[u] ? g[first + k] : T(0);
        }
      }
#pragma unroll
      for (int u = 0; u < 2; ++u)
#pragma unroll
        for (int k = 0; k < V; ++k)
          if (k < cnt[u]) acc = norm_accumulate<KIND>(acc, x[u].v[k], p);
    }
    acc = block_combine<KIND>(acc);
    if (threadIdx.x == 0) partial[c] = acc;
  }
}

template <int KIND>
__device__ __forceinline__ void norm_finish_block(const double* __restrict__ partial, int count,
                                                  double* __restrict__ out, double p) {
  double acc = 0.0;
  for (int c = threadIdx.x; c < count; c += blockDim.x) acc = norm_combine<KIND>(acc, partial[c]);
  acc = block_combine<KIND>(acc);
  if (threadIdx.x == 0) {
    out[0] = acc;
    out[1] = norm_finish(KIND, acc, p);
  }
}

}  // namespace cuda
}  // namespace fastopt

// Argument lists (after FASTOPT_TABLE_ARGS, multi_tensor.cuh) are mirrored in
// fastopt/backends/cuda/clipping.py (KERNELS).
#define FASTOPT_CLIPPING_ENTRY_POINTS(T, SUFFIX)                                               \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)                   \
      fastopt_scale_##SUFFIX(FASTOPT_TABLE_ARGS, T coef) {                                     \
    using namespace fastopt::cuda;                                                             \
    apply_chunks<T, 1u, 1u>(tensors, chunks, n_chunks, chunk_size, ScaleOp<T>{coef});          \
  }                                                                                            \
  /* clip_grad_norm(sync=False): the coefficient from the norm in device memory */             \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)                   \
      fastopt_clip_scale_##SUFFIX(FASTOPT_TABLE_ARGS, const double* norm, double max_norm) {   \
    using namespace fastopt::cuda;                                                             \
    const double coef = max_norm / (norm[1] + 1e-6);                                           \
    if (!(coef >= 1.0))                                                                        \
      apply_chunks<T, 1u, 1u>(tensors, chunks, n_chunks, chunk_size, ScaleOp<T>{static_cast<T>(coef)}); \
  }                                                                                            \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)                   \
      fastopt_norm_partials_##SUFFIX(FASTOPT_TABLE_ARGS, double* partial, int kind, double p) { \
    using namespace fastopt;                                                                   \
    if (kind == kNormL2) cuda::norm_partials<kNormL2, T>(tensors, chunks, n_chunks, chunk_size, partial, p); \
    else if (kind == kNormL1) cuda::norm_partials<kNormL1, T>(tensors, chunks, n_chunks, chunk_size, partial, p); \
    else if (kind == kNormInf) cuda::norm_partials<kNormInf, T>(tensors, chunks, n_chunks, chunk_size, partial, p); \
    else cuda::norm_partials<kNormP, T>(tensors, chunks, n_chunks, chunk_size, partial, p);   \
  }

FASTOPT_CLIPPING_ENTRY_POINTS(float, f32)
FASTOPT_CLIPPING_ENTRY_POINTS(double, f64)

// out[0] = the combined accumulator, out[1] = the norm. One block.
extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)
    fastopt_norm_finish(const double* partial, int count, double* out, int kind, double p) {
  using namespace fastopt;
  if (kind == kNormL2) cuda::norm_finish_block<kNormL2>(partial, count, out, p);
  else if (kind == kNormL1) cuda::norm_finish_block<kNormL1>(partial, count, out, p);
  else if (kind == kNormInf) cuda::norm_finish_block<kNormInf>(partial, count, out, p);
  else cuda::norm_finish_block<kNormP>(partial, count, out, p);
}
