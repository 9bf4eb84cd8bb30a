// CUDA kernels of inverted dropout with counter-based bit-packed masks
// (docs/reference.md s.4). The generator and the keep test are fastopt/philox.h and
// fastopt/dropout.h, the headers the CPU loops include, so a seed gives the
// CPU's mask bit for bit. Compiled at first use by cupy.RawModule
// (fastopt/backends/cuda/loader.py) and by nvcc/NVRTC in tests/test_cuda_compile.py.
//
// One thread per mask byte (8 elements, two Philox calls) in a grid-stride
// loop: it writes the byte and, where the byte is whole, moves its 8 values
// with 16-byte vector loads and stores (x/y 16-byte aligned) or 8 scalar
// loads then 8 stores (unaligned); the last partial byte goes through the
// header's byte functions.
//
// 16-bit arrays (bf16, f16; fastopt/storage.h) compute in float: each value
// widened, multiplied by the float scale, rounded once to nearest even.
//
// Entry points: fastopt_dropout_forward_<f32|f64|bf16|f16>,
// fastopt_dropout_backward_<f32|f64|bf16|f16>, fastopt_dropout_mask.
#if !defined(__CUDACC_RTC__)
#include <cstdint>
#endif
#include "fastopt/dropout.h"  // NVRTC's integer types: fastopt/storage.h

namespace fastopt {
namespace cuda {

constexpr int kDropoutThreads = 256;

template <typename T>
struct alignas(16) DropPack {
  T v[16 / sizeof(T)];
};

// Moves 8 values from src to dst through 16-byte packs, applying the byte.
// Every pack is loaded before any is stored: the loads are independent and
// in flight together (a store between them would make the next load wait,
// since the compiler cannot prove the casted pointers disjoint).
template <typename T>
__device__ __forceinline__ void apply_byte_vec(const T* __restrict__ src, T* __restrict__ dst,
                                               uint32_t byte, compute_t<T> scale) {
  constexpr int W = 16 / sizeof(T);
  constexpr int Q = 8 / W;
  const DropPack<T>* __restrict__ s = reinterpret_cast<const DropPack<T>*>(src);
  DropPack<T>* __restrict__ d = reinterpret_cast<DropPack<T>*>(dst);
  DropPack<T> a[Q];
#pragma unroll
  for (int q = 0; q < Q; ++q) a[q] = s[q];
#pragma unroll
  for (int q = 0; q < Q; ++q) {
#pragma unroll
    for (int k = 0; k < W; ++k)
      a[q].v[k] = dropout_store(a[q].v[k], ((byte >> (q * W + k)) & 1u) != 0u, scale);
  }
#pragma unroll
  for (int q = 0; q < Q; ++q) d[q] = a[q];
}

// The same for arrays that are not 16-byte aligned: 8 scalar loads, all
// issued before the first store (the header's byte loop stores each value
// before loading the next, and the compiler must keep that order unless the
// pointers are known disjoint).
template <typename T>
__device__ __forceinline__ void apply_byte_scalar(const T* __restrict__ src, T* __restrict__ dst,
                                                  uint32_t byte, compute_t<T> scale) {
  T a[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) a[k] = src[k];
#pragma unroll
  for (int k = 0; k < 8; ++k) dst[k] = dropout_store(a[k], ((byte >> k) & 1u) != 0u, scale);
}

template <typename T>
__device__ __forceinline__ void forward(const T* __restrict__ x, T* __restrict__ y,
                                        unsigned char* __restrict__ mask, long long n,
                                        uint64_t seed, uint64_t threshold, compute_t<T> scale,
                                        int vec_ok) {
  const uint32_t k0 = dropout_key0(seed), k1 = dropout_key1(seed);
  const long long bytes = (n + 7) / 8;
  for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < bytes;
       b += (long long)gridDim.x * blockDim.x) {
    const long long i = 8 * b;
    const int count = n - i < 8 ? int(n - i) : 8;
    uint32_t byte;
    if (count == 8) {
      byte = dropout_mask_byte(uint64_t(b), 8, k0, k1, threshold);
      if (vec_ok) apply_byte_vec(x + i, y + i, byte, scale);
      else apply_byte_scalar(x + i, y + i, byte, scale);
    } else {
      byte = dropout_forward_byte(x + i, y + i, uint64_t(b), count, k0, k1, threshold, scale);
    }
    mask[b] = static_cast<unsigned char>(byte);
  }
}

template <typename T>
__device__ __forceinline__ void backward(const T* __restrict__ dy,
                                         const unsigned char* __restrict__ mask,
                                         T* __restrict__ dx, long long n, compute_t<T> scale,
                                         int vec_ok) {
  const long long bytes = (n + 7) / 8;
  for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < bytes;
       b += (long long)gridDim.x * blockDim.x) {
    const long long i = 8 * b;
    const int count = n - i < 8 ? int(n - i) : 8;
    const uint32_t byte = mask[b];
    if (count == 8 && vec_ok) apply_byte_vec(dy + i, dx + i, byte, scale);
    else if (count == 8) apply_byte_scalar(dy + i, dx + i, byte, scale);
    else dropout_backward_byte(dy + i, dx + i, byte, count, scale);
  }
}

}  // namespace cuda
}  // namespace fastopt

// Argument lists are mirrored in fastopt/backends/cuda/dropout.py (KERNELS).
#define FASTOPT_DROPOUT_ENTRY_POINTS(T, SUFFIX)                                                  \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kDropoutThreads)                   \
      fastopt_dropout_forward_##SUFFIX(const T* x, T* y, unsigned char* mask, long long n,        \
                                       unsigned long long seed, unsigned long long threshold,     \
                                       fastopt::compute_t<T> scale, int vec_ok) {                 \
    fastopt::cuda::forward<T>(x, y, mask, n, seed, threshold, scale, vec_ok);                    \
  }                                                                                              \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kDropoutThreads)                   \
      fastopt_dropout_backward_##SUFFIX(const T* dy, const unsigned char* mask, T* dx,            \
                                        long long n, fastopt::compute_t<T> scale, int vec_ok) {  \
    fastopt::cuda::backward<T>(dy, mask, dx, n, scale, vec_ok);                                  \
  }

FASTOPT_DROPOUT_ENTRY_POINTS(float, f32)
FASTOPT_DROPOUT_ENTRY_POINTS(double, f64)
FASTOPT_DROPOUT_ENTRY_POINTS(fastopt::Bf16, bf16)
FASTOPT_DROPOUT_ENTRY_POINTS(fastopt::F16, f16)

// The mask alone (dropout_mask): no values read or written.
extern "C" __global__ void __launch_bounds__(fastopt::cuda::kDropoutThreads)
    fastopt_dropout_mask(unsigned char* mask, long long n, unsigned long long seed,
                         unsigned long long threshold) {
  using namespace fastopt;
  const uint32_t k0 = dropout_key0(seed), k1 = dropout_key1(seed);
  const long long bytes = (n + 7) / 8;
  for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < bytes;
       b += (long long)gridDim.x * blockDim.x) {
    const int count = n - 8 * b < 8 ? int(n - 8 * b) : 8;
    mask[b] = static_cast<unsigned char>(dropout_mask_byte(uint64_t(b), count, k0, k1, threshold));
  }
}
