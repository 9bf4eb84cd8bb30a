// CUDA kernels of inverted dropout with counter-based bit-packed masks
// (docs/reference.md s.4). The generator and the keep test are fastopt/philox.h and
// fastopt/dropout.h, the headers the CPU loops include, so a seed gives the
// CPU's mask bit for bit. Compiled at first use by cupy.RawModule
// (fastopt/backends/cuda/loader.py) and by nvcc/NVRTC in tests/test_cuda_compile.py.
//
// One thread per mask byte (8 elements, two Philox calls) in a grid-stride
// loop. x/y 16-byte aligned: the thread writes the byte and moves its 8
// values with 16-byte loads and stores (all loads first); the last partial
// byte goes through the header's byte functions. Not aligned (a slice at an
// odd offset): blocks take tiles of 256 bytes (2048 values); lane l of a warp
// makes byte l of the warp's 32, then loads values 32k + l of the warp's 256
// (coalesced 4- or 8-byte accesses whatever the alignment, all 8 loads before
// any store) and takes each value's bit from the lane that made its byte (a
// shuffle). Every value goes through the same dropout_store either way.
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

// The unaligned path: byte_of(b) gives mask byte b (b < bytes), for the whole
// block's tile at once; every thread of the block runs the same iterations
// (the shuffles need the whole warp).
template <typename T, typename ByteOf>
__device__ __forceinline__ void apply_coalesced(const T* __restrict__ src, T* __restrict__ dst,
                                                long long n, compute_t<T> scale,
                                                const ByteOf& byte_of) {
  const long long bytes = (n + 7) / 8;
  const int lane = threadIdx.x % 32;
  const long long warp_bytes = 32 * (threadIdx.x / 32);
  for (long long tile = blockIdx.x; tile * blockDim.x < bytes; tile += gridDim.x) {
    const long long first = tile * blockDim.x + warp_bytes;   // the warp's first byte
    const long long b = first + lane;
    const uint32_t byte = b < bytes ? byte_of(b) : 0u;
    const long long base = 8 * first;                         // the warp's first value
    T v[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const long long e = base + 32 * k + lane;
      v[k] = e < n ? src[e] : T{};
    }
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const long long e = base + 32 * k + lane;
      const uint32_t from = __shfl_sync(0xffffffffu, byte, 4 * k + lane / 8);
      if (e < n) dst[e] = dropout_store(v[k], ((from >> (lane % 8)) & 1u) != 0u, scale);
    }
  }
}

template <typename T>
__device__ __forceinline__ void forward(const T* __restrict__ x, T* __restrict__ y,
                                        unsigned char* __restrict__ mask, long long n,
                                        uint64_t seed, uint64_t threshold, compute_t<T> scale,
                                        int vec_ok) {
  const uint32_t k0 = dropout_key0(seed), k1 = dropout_key1(seed);
  const long long bytes = (n + 7) / 8;
  if (!vec_ok) {
    apply_coalesced(x, y, n, scale, [&](long long b) {
      const int count = n - 8 * b < 8 ? int(n - 8 * b) : 8;
      const uint32_t byte = dropout_mask_byte(uint64_t(b), count, k0, k1, threshold);
      mask[b] = static_cast<unsigned char>(byte);
      return byte;
    });
    return;
  }
  for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < bytes;
       b += (long long)gridDim.x * blockDim.x) {
    const long long i = 8 * b;
    const int count = n - i < 8 ? int(n - i) : 8;
    uint32_t byte;
    if (count == 8) {
      byte = dropout_mask_byte(uint64_t(b), 8, k0, k1, threshold);
      apply_byte_vec(x + i, y + i, byte, scale);
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
  if (!vec_ok) {
    apply_coalesced(dy, dx, n, scale, [&](long long b) { return uint32_t(mask[b]); });
    return;
  }
  for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < bytes;
       b += (long long)gridDim.x * blockDim.x) {
    const long long i = 8 * b;
    const int count = n - i < 8 ? int(n - i) : 8;
    const uint32_t byte = mask[b];
    if (count == 8) apply_byte_vec(dy + i, dx + i, byte, scale);
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
