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
// Each thread walks its values of a piece incrementally (one division per
// thread and piece, none per value) and loads kBnBatch of them before using
// any, so several loads are in flight; the values are used in the same order
// as one at a time, so results do not depend on the batching.
//
// (N, C) input with C >= 32 (S == 1, bn_rows_layout) is read the other way:
// a block takes 32 adjacent channels, one per lane, and pieces of rows, the
// warps taking interleaved rows, so every warp load is 32 adjacent values
// (coalesced) instead of one value per C. Grid (pieces, channel tiles of 32).
// The per-thread split differs from the general walk's, so its statistics
// round differently (deterministic: the shape alone decides).
//
// Forward (training): stats (Welford per thread in double, 1/count from a
// shared table of reciprocals instead of a division per value, merged across the
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
constexpr int kBnBatch = 4;     // values loaded per thread before any is used
constexpr int kBnRcp = 128;     // reciprocals 1/1 .. 1/128 in the stats kernel's table
constexpr int kBnLanes = 32;    // channels per block in the (N, C) rows layout

__device__ __forceinline__ bool bn_rows_layout(long long C, long long S) {
  return S == 1 && C >= kBnLanes;
}

// Calls use(i, load(i)) for every value i of piece `piece` of channel c, in
// order of j, thread t taking j = begin + t, begin + t + blockDim, ...; the
// kBnBatch loads of a batch are issued before its uses.
template <typename Load, typename Use>
__device__ __forceinline__ void for_piece(long long c, long long piece, long long piece_len,
                                          long long M, long long C, long long S,
                                          const Load& load, const Use& use) {
  const long long begin = piece * piece_len;
  const long long end = begin + piece_len < M ? begin + piece_len : M;
  const long long step = blockDim.x;
  long long j = begin + threadIdx.x;
  if (j >= end) return;
  // j = n * S + s, advanced by step = dn * S + ds (ds < S): one carry at most
  long long n = j / S, s = j - n * S;
  const long long dn = step / S, ds = step - dn * S;
  using V = decltype(load(0LL));
  for (; j < end; j += kBnBatch * step) {
    long long idx[kBnBatch];
#pragma unroll
    for (int k = 0; k < kBnBatch; ++k) {
      idx[k] = (n * C + c) * S + s;
      n += dn;
      s += ds;
      if (s >= S) {
        s -= S;
        ++n;
      }
    }
    V v[kBnBatch];
#pragma unroll
    for (int k = 0; k < kBnBatch; ++k)
      if (j + k * step < end) v[k] = load(idx[k]);
#pragma unroll
    for (int k = 0; k < kBnBatch; ++k)
      if (j + k * step < end) use(idx[k], v[k]);
  }
}

// The rows layout: use(i, load(i)) for rows n = begin + warp, + warps, ... of
// piece `piece` (rows [piece * piece_len, ...)), i = n * C + c; kBnBatch rows
// loaded before any is used.
template <typename Load, typename Use>
__device__ __forceinline__ void for_rows(long long c, long long piece, long long piece_len,
                                         long long N, long long C, const Load& load,
                                         const Use& use) {
  const long long begin = piece * piece_len;
  const long long end = begin + piece_len < N ? begin + piece_len : N;
  const long long step = blockDim.x / kBnLanes;
  using V = decltype(load(0LL));
  for (long long n = begin + threadIdx.x / kBnLanes; n < end; n += kBnBatch * step) {
    V v[kBnBatch];
#pragma unroll
    for (int k = 0; k < kBnBatch; ++k)
      if (n + k * step < end) v[k] = load((n + k * step) * C + c);
#pragma unroll
    for (int k = 0; k < kBnBatch; ++k)
      if (n + k * step < end) use((n + k * step) * C + c, v[k]);
  }
}

template <typename T>
struct BnPair {
  T a, b;
};

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
  __shared__ double rcp[kBnRcp];   // rcp[k] = 1 / (k + 1), as the division rounds it
  for (int k = threadIdx.x; k < kBnRcp; k += blockDim.x) rcp[k] = 1.0 / double(k + 1);
  __syncthreads();
  const auto load = [&](long long i) { return double(widen(x[i])); };
  if (bn_rows_layout(C, S)) {
    __shared__ double sh[3][kBnWarps][kBnLanes];
    const int lane = threadIdx.x % kBnLanes, warp = threadIdx.x / kBnLanes;
    const bool table = piece_len <= kBnRcp * static_cast<long long>(blockDim.x / kBnLanes);
    for (long long ct = blockIdx.y; ct * kBnLanes < C; ct += gridDim.y) {
      const long long c = ct * kBnLanes + lane;
      for (long long p = blockIdx.x; p < P; p += gridDim.x) {
        BnMoments m = bn_moments_empty();
        if (c < C) {
          int count = 0;
          if (table)
            for_rows(c, p, piece_len, M, C, load,
                     [&](long long, double v) { bn_welford_add_rcp(m, v, rcp[count++]); });
          else
            for_rows(c, p, piece_len, M, C, load,
                     [&](long long, double v) { bn_welford_add(m, v); });
        }
        sh[0][warp][lane] = m.n;
        sh[1][warp][lane] = m.mean;
        sh[2][warp][lane] = m.m2;
        __syncthreads();
        if (warp == 0 && c < C) {   // the warps' moments in warp order
          BnMoments r = bn_moments_empty();
          for (int w = 0; w < kBnWarps; ++w)
            bn_merge(r, BnMoments{sh[0][w][lane], sh[1][w][lane], sh[2][w][lane]});
          double* out = part + 3 * (c * P + p);
          out[0] = r.n;
          out[1] = r.mean;
          out[2] = r.m2;
        }
        __syncthreads();
      }
    }
    return;
  }
  for (long long c = blockIdx.y; c < C; c += gridDim.y)
    for (long long p = blockIdx.x; p < P; p += gridDim.x) {
      BnMoments m = bn_moments_empty();
      if (piece_len <= kBnRcp * static_cast<long long>(blockDim.x)) {  // every count in the table
        int count = 0;
        for_piece(c, p, piece_len, M, C, S, load,
                  [&](long long, double v) { bn_welford_add_rcp(m, v, rcp[count++]); });
      } else {
        for_piece(c, p, piece_len, M, C, S, load,
                  [&](long long, double v) { bn_welford_add(m, v); });
      }
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
  if (bn_rows_layout(C, S)) {
    for (long long ct = blockIdx.y; ct * kBnLanes < C; ct += gridDim.y) {
      const long long c = ct * kBnLanes + threadIdx.x % kBnLanes;
      if (c >= C) continue;
      const BnSplitMean<T> mean = bn_split_mean<T>(consts[3 * c]);
      const T scale = T(consts[3 * c + 1]), beta = T(consts[3 * c + 2]);
      for (long long p = blockIdx.x; p < P; p += gridDim.x)
        for_rows(
            c, p, piece_len, M, C, [&](long long i) { return widen(x[i]); },
            [&](long long i, T v) { y[i] = narrow<X>(bn_normalize(v, mean.hi, mean.lo, scale, beta)); });
    }
    return;
  }
  for (long long c = blockIdx.y; c < C; c += gridDim.y) {
    const BnSplitMean<T> mean = bn_split_mean<T>(consts[3 * c]);
    const T scale = T(consts[3 * c + 1]), beta = T(consts[3 * c + 2]);
    for (long long p = blockIdx.x; p < P; p += gridDim.x)
      for_piece(
          c, p, piece_len, M, C, S, [&](long long i) { return widen(x[i]); },
          [&](long long i, T v) { y[i] = narrow<X>(bn_normalize(v, mean.hi, mean.lo, scale, beta)); });
  }
}

// part: C x P x 2 doubles (sum dy, sum dy * (x - mean)) per piece.
template <typename X, typename T>
__device__ __forceinline__ void backward_sums(const X* __restrict__ dy, const X* __restrict__ x,
                                              const T* __restrict__ save_mean,
                                              double* __restrict__ part, long long M, long long C,
                                              long long S, long long piece_len, long long P) {
  const auto load = [&](long long i) { return BnPair<T>{widen(dy[i]), widen(x[i])}; };
  if (bn_rows_layout(C, S)) {
    __shared__ double sh[2][kBnWarps][kBnLanes];
    const int lane = threadIdx.x % kBnLanes, warp = threadIdx.x / kBnLanes;
    for (long long ct = blockIdx.y; ct * kBnLanes < C; ct += gridDim.y) {
      const long long c = ct * kBnLanes + lane;
      const double mean = c < C ? double(save_mean[c]) : 0.0;
      for (long long p = blockIdx.x; p < P; p += gridDim.x) {
        double a = 0.0, b = 0.0;
        if (c < C)
          for_rows(c, p, piece_len, M, C, load, [&](long long, BnPair<T> v) {
            const double g = double(v.a);
            a += g;
            b += g * (double(v.b) - mean);
          });
        sh[0][warp][lane] = a;
        sh[1][warp][lane] = b;
        __syncthreads();
        if (warp == 0 && c < C) {
          a = 0.0;
          b = 0.0;
          for (int w = 0; w < kBnWarps; ++w) {
            a += sh[0][w][lane];
            b += sh[1][w][lane];
          }
          part[2 * (c * P + p)] = a;
          part[2 * (c * P + p) + 1] = b;
        }
        __syncthreads();
      }
    }
    return;
  }
  for (long long c = blockIdx.y; c < C; c += gridDim.y) {
    const double mean = double(save_mean[c]);
    for (long long p = blockIdx.x; p < P; p += gridDim.x) {
      double a = 0.0, b = 0.0;
      for_piece(c, p, piece_len, M, C, S, load, [&](long long, BnPair<T> v) {
        const double g = double(v.a);
        a += g;
        b += g * (double(v.b) - mean);
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
  const bool rows = bn_rows_layout(C, S);
  const long long c0 = rows ? threadIdx.x % kBnLanes : 0, width = rows ? kBnLanes : 1;
  for (long long ct = blockIdx.y; ct * width < C; ct += gridDim.y) {
    const long long c = ct * width + c0;
    if (c >= C) continue;
    const T mean = T(consts[4 * c]), k = T(consts[4 * c + 1]);
    const T proj = T(consts[4 * c + 2]), mean_dy = T(consts[4 * c + 3]);
    for (long long p = blockIdx.x; p < P; p += gridDim.x) {
      if (rows && training)
        for_rows(
            c, p, piece_len, M, C, [&](long long i) { return BnPair<T>{widen(dy[i]), widen(x[i])}; },
            [&](long long i, BnPair<T> v) {
              dx[i] = narrow<X>(bn_backward_element(v.a, v.b, mean, k, proj, mean_dy));
            });
      else if (rows)
        for_rows(
            c, p, piece_len, M, C, [&](long long i) { return widen(dy[i]); },
            [&](long long i, T v) { dx[i] = narrow<X>(bn_backward_eval_element(v, k)); });
      else if (training)
        for_piece(
            c, p, piece_len, M, C, S, [&](long long i) { return BnPair<T>{widen(dy[i]), widen(x[i])}; },
            [&](long long i, BnPair<T> v) {
              dx[i] = narrow<X>(bn_backward_element(v.a, v.b, mean, k, proj, mean_dy));
            });
      else
        for_piece(
            c, p, piece_len, M, C, S, [&](long long i) { return widen(dy[i]); },
            [&](long long i, T v) { dx[i] = narrow<X>(bn_backward_eval_element(v, k)); });
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
