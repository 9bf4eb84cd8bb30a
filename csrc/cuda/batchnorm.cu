// CUDA kernels of batch normalization (docs/reference.md s.3). The maths is
// fastopt/batchnorm.h, the header the CPU loops include; this file only says
// how to loop and reduce. Compiled at first use by cupy.RawModule
// (fastopt/backends/cuda/loader.py) and by nvcc/NVRTC in tests/test_cuda_compile.py.
//
// x is (N, C, S) in memory (S = prod(spatial), 1 for (N, C) input). Channel c's
// M = N * S values are numbered j = n * S + s and cut into pieces of
// kPiece values; block (piece, channel) handles one piece. The cut depends on
// the shape alone (never on the device), so results are deterministic and the
// same on every GPU, and a few channels with many values still give many
// blocks (C = 1, M = 10^8: 12k blocks).
//
// Forward (training): stats (Welford per thread in double, merged across the
// warp by shuffles and across warps through shared memory, Chan's formula,
// in a fixed order) -> per-piece partials; finalize (one block per channel
// merges its pieces in a fixed order; writes save_mean/save_invstd, updates
// the running statistics, keeps mean/scale/beta in double); normalize (y =
// (x - mean) * T(scale) + T(beta), the mean split in two T values). Backward: sums of dy and dy*(x-mean) per piece in
// double; finalize (dgamma, dbeta, the per-channel constants); dx.
//
// 16-bit x/dy (bf16, f16; fastopt/storage.h): X is the storage type of x, y, dy
// and dx, T = compute_t<X> (float) that of gamma, beta and the statistics;
// values are widened on load, results rounded once to nearest even on store.
//
// One extern "C" entry point per kernel and dtype: fastopt_bn_<kernel>_<f32|f64|bf16|f16>.
#if !defined(__CUDACC_RTC__)
#include <cstdint>
#endif
#include "fastopt/storage.h"  // first: NVRTC's integer types
#include "fastopt/batchnorm.h"

namespace fastopt {
namespace cuda {

constexpr int kBnThreads = 256;
constexpr int kBnWarps = kBnThreads / 32;

// Calls f(index) for every value of piece `piece` of channel c, in order of j,
// thread t taking j = begin + t, begin + t + blockDim, ...
template <typename F>
__device__ __forceinline__ void for_piece(long long c, long long piece, long long piece_len,
                                          long long M, long long C, long long S, const F& f) {
  const long long begin = piece * piece_len;
  const long long end = begin + piece_len < M ? begin + piece_len : M;
  const long long step = blockDim.x;
  long long j = begin + threadIdx.x;
  if (j >= end) return;
  if (S >= step) {  // walk (n, s) incrementally: at most one row change per step
    long long n = j / S, s = j - n * S;
    for (; j < end; j += step) {
      f((n * C + c) * S + s);
      s += step;
      while (s >= S) {
        s -= S;
        ++n;
      }
    }
  } else {
    for (; j < end; j += step) {
      const long long n = j / S;
      f((n * C + c) * S + (j - n * S));
    }
  }
}

__device__ __forceinline__ BnMoments shfl_down(const BnMoments& m, int offset) {
  return BnMoments{__shfl_down_sync(0xffffffffu, m.n, offset),
                   __shfl_down_sync(0xffffffffu, m.mean, offset),
                   __shfl_down_sync(0xffffffffu, m.m2, offset)};
}

// Merges every thread's moments into thread 0's, in a fixed order.
__device__ __forceinline__ BnMoments block_merge(BnMoments m) {
  __shared__ double sh[3][kBnWarps];
  for (int offset = 16; offset > 0; offset >>= 1) {
    const BnMoments other = shfl_down(m, offset);
    bn_merge(m, other);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    sh[0][warp] = m.n;
    sh[1][warp] = m.mean;
    sh[2][warp] = m.m2;
  }
  __syncthreads();
  BnMoments r = bn_moments_empty();
  if (threadIdx.x == 0)
    for (int w = 0; w < kBnWarps; ++w) bn_merge(r, BnMoments{sh[0][w], sh[1][w], sh[2][w]});
  return r;
}

// Sums two doubles over the block into thread 0, in a fixed order.
__device__ __forceinline__ void block_sum2(double& a, double& b) {
  __shared__ double sh[2][kBnWarps];
  for (int offset = 16; offset > 0; offset >>= 1) {
    a += __shfl_down_sync(0xffffffffu, a, offset);
    b += __shfl_down_sync(0xffffffffu, b, offset);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    sh[0][warp] = a;
    sh[1][warp] = b;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    a = 0.0;
    b = 0.0;
    for (int w = 0; w < kBnWarps; ++w) {
      a += sh[0][w];
      b += sh[1][w];
    }
  }
}

// part: C x P x 3 doubles (n, mean, m2) per piece.
template <typename X>
__device__ __forceinline__ void stats(const X* __restrict__ x, double* __restrict__ part,
                                      long long M, long long C, long long S, long long piece_len,
                                      long long P) {
  for (long long c = blockIdx.y; c < C; c += gridDim.y)
    for (long long p = blockIdx.x; p < P; p += gridDim.x) {
      BnMoments m = bn_moments_empty();
      for_piece(c, p, piece_len, M, C, S, [&](long long i) { bn_welford_add(m, double(widen(x[i]))); });
      m = block_merge(m);
      if (threadIdx.x == 0) {
        double* out = part + 3 * (c * P + p);
        out[0] = m.n;
        out[1] = m.mean;
        out[2] = m.m2;
      }
      __syncthreads();  // the shared scratch is reused by the next piece
    }
}

// One block per channel. consts: C x 3 doubles (mean, scale, beta).
template <typename T>
__device__ __forceinline__ void finalize_forward(const double* __restrict__ part, long long P,
                                                 long long C, const T* __restrict__ gamma,
                                                 const T* __restrict__ beta, T* running_mean,
                                                 T* running_var, T* __restrict__ save_mean,
                                                 T* __restrict__ save_invstd,
                                                 double* __restrict__ consts, double momentum,
                                                 double eps, int training) {
  for (long long c = blockIdx.x; c < C; c += gridDim.x) {
    BnChannel ch{};
    if (training) {
      BnMoments m = bn_moments_empty();
      for (long long p = threadIdx.x; p < P; p += blockDim.x) {
        const double* q = part + 3 * (c * P + p);
        bn_merge(m, BnMoments{q[0], q[1], q[2]});
      }
      m = block_merge(m);
      if (threadIdx.x == 0) {
        ch = bn_channel_train(m, double(gamma[c]), double(beta[c]), eps);
        save_mean[c] = T(ch.mean);
        save_invstd[c] = T(ch.invstd);
        if (running_mean) bn_update_running(running_mean[c], running_var[c], m, momentum);
      }
    } else if (threadIdx.x == 0) {
      const double invstd = bn_invstd(double(running_var[c]), eps);
      ch = bn_channel(double(running_mean[c]), invstd, double(gamma[c]), double(beta[c]));
      save_mean[c] = running_mean[c];
      save_invstd[c] = T(invstd);
    }
    if (threadIdx.x == 0) {
      consts[3 * c] = ch.mean;
      consts[3 * c + 1] = ch.scale;
      consts[3 * c + 2] = ch.beta;
    }
    __syncthreads();
  }
}

template <typename X, typename T = compute_t<X>>
__device__ __forceinline__ void normalize(const X* __restrict__ x, X* __restrict__ y,
                                          const double* __restrict__ consts, long long M,
                                          long long C, long long S, long long piece_len,
                                          long long P) {
  for (long long c = blockIdx.y; c < C; c += gridDim.y) {
    const BnSplitMean<T> mean = bn_split_mean<T>(consts[3 * c]);
    const T scale = T(consts[3 * c + 1]), beta = T(consts[3 * c + 2]);
    for (long long p = blockIdx.x; p < P; p += gridDim.x)
      for_piece(c, p, piece_len, M, C, S,
                [&](long long i) {
                  y[i] = narrow<X>(bn_normalize(widen(x[i]), mean.hi, mean.lo, scale, beta));
                });
  }
}

// part: C x P x 2 doubles (sum dy, sum dy * (x - mean)) per piece.
template <typename X, typename T>
__device__ __forceinline__ void backward_sums(const X* __restrict__ dy, const X* __restrict__ x,
                                              const T* __restrict__ save_mean,
                                              double* __restrict__ part, long long M, long long C,
                                              long long S, long long piece_len, long long P) {
  for (long long c = blockIdx.y; c < C; c += gridDim.y) {
    const double mean = double(save_mean[c]);
    for (long long p = blockIdx.x; p < P; p += gridDim.x) {
      double a = 0.0, b = 0.0;
      for_piece(c, p, piece_len, M, C, S, [&](long long i) {
        const double g = double(widen(dy[i]));
        a += g;
        b += g * (double(widen(x[i])) - mean);
      });
      block_sum2(a, b);
      if (threadIdx.x == 0) {
        part[2 * (c * P + p)] = a;
        part[2 * (c * P + p) + 1] = b;
      }
      __syncthreads();
    }
  }
}

// One block per channel. consts: C x 4 doubles (mean, k, proj, mean_dy).
template <typename T>
__device__ __forceinline__ void finalize_backward(const double* __restrict__ part, long long P,
                                                  long long C, const T* __restrict__ gamma,
                                                  const T* __restrict__ save_mean,
                                                  const T* __restrict__ save_invstd,
                                                  T* __restrict__ dgamma, T* __restrict__ dbeta,
                                                  double* __restrict__ consts, double count,
                                                  int training) {
  for (long long c = blockIdx.x; c < C; c += gridDim.x) {
    double a = 0.0, b = 0.0;
    for (long long p = threadIdx.x; p < P; p += blockDim.x) {
      a += part[2 * (c * P + p)];
      b += part[2 * (c * P + p) + 1];
    }
    block_sum2(a, b);
    if (threadIdx.x == 0) {
      const BnBackwardChannel h = bn_backward_channel(
          a, b, double(save_mean[c]), double(save_invstd[c]), double(gamma[c]), count, training != 0);
      dgamma[c] = T(h.dgamma);
      dbeta[c] = T(h.dbeta);
      // the eval dx uses k = gamma * invstd, as the CPU loops do
      consts[4 * c] = h.mean;
      consts[4 * c + 1] = double(gamma[c]) * double(save_invstd[c]);
      consts[4 * c + 2] = h.proj;
      consts[4 * c + 3] = h.mean_dy;
    }
    __syncthreads();
  }
}

template <typename X, typename T = compute_t<X>>
__device__ __forceinline__ void dx_pass(const X* __restrict__ dy, const X* __restrict__ x,
                                        X* __restrict__ dx, const double* __restrict__ consts,
                                        long long M, long long C, long long S, long long piece_len,
                                        long long P, int training) {
  for (long long c = blockIdx.y; c < C; c += gridDim.y) {
    const T mean = T(consts[4 * c]), k = T(consts[4 * c + 1]);
    const T proj = T(consts[4 * c + 2]), mean_dy = T(consts[4 * c + 3]);
    for (long long p = blockIdx.x; p < P; p += gridDim.x) {
      if (training)
        for_piece(c, p, piece_len, M, C, S, [&](long long i) {
          dx[i] = narrow<X>(bn_backward_element(widen(dy[i]), widen(x[i]), mean, k, proj, mean_dy));
        });
      else
        for_piece(c, p, piece_len, M, C, S,
                  [&](long long i) { dx[i] = narrow<X>(bn_backward_eval_element(widen(dy[i]), k)); });
    }
  }
}

}  // namespace cuda
}  // namespace fastopt

// ------------------------------------------------------- entry points
// Argument lists are mirrored in fastopt/backends/cuda/batchnorm.py (KERNELS).
#define FASTOPT_BN_SHAPE long long M, long long C, long long S, long long piece_len, long long P

#define FASTOPT_BN_ENTRY_POINTS(X, T, SUFFIX)                                                   \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBnThreads)                       \
      fastopt_bn_stats_##SUFFIX(const X* x, double* part, FASTOPT_BN_SHAPE) {                   \
    fastopt::cuda::stats<X>(x, part, M, C, S, piece_len, P);                                    \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBnThreads)                       \
      fastopt_bn_finalize_forward_##SUFFIX(const double* part, long long P, long long C,         \
                                           const T* gamma, const T* beta, T* running_mean,       \
                                           T* running_var, T* save_mean, T* save_invstd,         \
                                           double* consts, double momentum, double eps,          \
                                           int training) {                                       \
    fastopt::cuda::finalize_forward<T>(part, P, C, gamma, beta, running_mean, running_var,      \
                                       save_mean, save_invstd, consts, momentum, eps, training); \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBnThreads)                       \
      fastopt_bn_normalize_##SUFFIX(const X* x, X* y, const double* consts, FASTOPT_BN_SHAPE) { \
    fastopt::cuda::normalize<X>(x, y, consts, M, C, S, piece_len, P);                           \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBnThreads)                       \
      fastopt_bn_backward_sums_##SUFFIX(const X* dy, const X* x, const T* save_mean,             \
                                        double* part, FASTOPT_BN_SHAPE) {                       \
    fastopt::cuda::backward_sums<X, T>(dy, x, save_mean, part, M, C, S, piece_len, P);          \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBnThreads)                       \
      fastopt_bn_finalize_backward_##SUFFIX(const double* part, long long P, long long C,        \
                                            const T* gamma, const T* save_mean,                  \
                                            const T* save_invstd, T* dgamma, T* dbeta,           \
                                            double* consts, double count, int training) {        \
    fastopt::cuda::finalize_backward<T>(part, P, C, gamma, save_mean, save_invstd, dgamma,      \
                                        dbeta, consts, count, training);                        \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBnThreads)                       \
      fastopt_bn_dx_##SUFFIX(const X* dy, const X* x, X* dx, const double* consts,               \
                             FASTOPT_BN_SHAPE, int training) {                                   \
    fastopt::cuda::dx_pass<X>(dy, x, dx, consts, M, C, S, piece_len, P, training);              \
  }

FASTOPT_BN_ENTRY_POINTS(float, float, f32)
FASTOPT_BN_ENTRY_POINTS(double, double, f64)
FASTOPT_BN_ENTRY_POINTS(fastopt::Bf16, float, bf16)
FASTOPT_BN_ENTRY_POINTS(fastopt::F16, float, f16)
