// CUDA kernels of the optimizer updates (docs/reference.md s.2). The maths is
// fastopt/optim.h, the same header the CPU loops include; this file only
// says how to loop: one launch per step over a list of tensors
// (multi_tensor.cuh). Compiled at first use by cupy.RawModule (NVRTC, options
// -std=c++17 --fmad=false; fastopt/backends/cuda/loader.py) and by nvcc in
// tests/test_cuda_compile.py.
//
// One extern "C" entry point per kernel and dtype: fastopt_<kernel>_<f32|f64>.
// Their options (weight decay mode, momentum, ...) arrive as int arguments and
// pick a template instantiation once, at the top of the kernel, so the
// per-element loop is branch-free. Scalars are the fields of the structs in
// optim.h, in order, in the element type (fastopt/_scalars.py computes them
// in double; fastopt/backends/cuda/optim.py casts them to the dtype).
#include "fastopt/optim.h"
#include "multi_tensor.cuh"

namespace fastopt {
namespace cuda {

// Role numbers, as in csrc/cpu/optim_kernels.h: param, grad, then state.
constexpr unsigned kP = 1u << 0, kG = 1u << 1, kS2 = 1u << 2, kS3 = 1u << 3, kS4 = 1u << 4;

// ---------------------------------------------------------------- SGD
template <int WD, int MOM, bool FIRST, typename T>
struct SgdOp {
  SgdScalars<T> s;
  __device__ __forceinline__ void operator()(T (&e)[kRoles]) const {
    sgd_element<WD, MOM, FIRST>(e[0], e[1], e[2], s);
  }
};

template <int WD, int MOM, bool FIRST, typename T>
__device__ __forceinline__ void sgd_run(const TensorEntry* t, const ChunkEntry* c, int n,
                                        long long cs, const SgdScalars<T>& s) {
  // The first momentum step writes the buffer without reading it.
  constexpr unsigned READ = kP | kG | ((MOM != 0 && !FIRST) ? kS2 : 0u);
  constexpr unsigned WRITE = kP | (MOM != 0 ? kS2 : 0u);
  apply_chunks<T, READ, WRITE>(t, c, n, cs, SgdOp<WD, MOM, FIRST, T>{s});
}

template <int WD, typename T>
__device__ __forceinline__ void sgd_by_mode(const TensorEntry* t, const ChunkEntry* c, int n,
                                            long long cs, const SgdScalars<T>& s, int mom,
                                            int first) {
  if (mom == 0) sgd_run<WD, 0, false>(t, c, n, cs, s);
  else if (mom == 1) first ? sgd_run<WD, 1, true>(t, c, n, cs, s) : sgd_run<WD, 1, false>(t, c, n, cs, s);
  else first ? sgd_run<WD, 2, true>(t, c, n, cs, s) : sgd_run<WD, 2, false>(t, c, n, cs, s);
}

// ------------------------------------------------------------ RMSprop
template <int WD, bool CEN, bool MOM, typename T>
struct RmspropOp {
  RmspropScalars<T> s;
  __device__ __forceinline__ void operator()(T (&e)[kRoles]) const {
    rmsprop_element<WD, CEN, MOM>(e[0], e[1], e[2], e[3], e[4], s);
  }
};

template <int WD, bool CEN, bool MOM, typename T>
__device__ __forceinline__ void rmsprop_run(const TensorEntry* t, const ChunkEntry* c, int n,
                                            long long cs, const RmspropScalars<T>& s) {
  constexpr unsigned STATE = kS2 | (CEN ? kS3 : 0u) | (MOM ? kS4 : 0u);
  apply_chunks<T, kP | kG | STATE, kP | STATE>(t, c, n, cs, RmspropOp<WD, CEN, MOM, T>{s});
}

template <int WD, typename T>
__device__ __forceinline__ void rmsprop_by_mode(const TensorEntry* t, const ChunkEntry* c, int n,
                                                long long cs, const RmspropScalars<T>& s,
                                                int cen, int mom) {
  if (cen) mom ? rmsprop_run<WD, true, true>(t, c, n, cs, s) : rmsprop_run<WD, true, false>(t, c, n, cs, s);
  else mom ? rmsprop_run<WD, false, true>(t, c, n, cs, s) : rmsprop_run<WD, false, false>(t, c, n, cs, s);
}

// --------------------------------------------------------------- Adam
template <int WD, bool AMS, typename T>
struct AdamOp {
  AdamScalars<T> s;
  __device__ __forceinline__ void operator()(T (&e)[kRoles]) const {
    adam_element<WD, AMS>(e[0], e[1], e[2], e[3], e[4], s);
  }
};

template <int WD, bool AMS, typename T>
__device__ __forceinline__ void adam_run(const TensorEntry* t, const ChunkEntry* c, int n,
                                         long long cs, const AdamScalars<T>& s) {
  constexpr unsigned STATE = kS2 | kS3 | (AMS ? kS4 : 0u);
  apply_chunks<T, kP | kG | STATE, kP | STATE>(t, c, n, cs, AdamOp<WD, AMS, T>{s});
}

template <int WD, typename T>
__device__ __forceinline__ void adam_by_mode(const TensorEntry* t, const ChunkEntry* c, int n,
                                             long long cs, const AdamScalars<T>& s, int ams) {
  ams ? adam_run<WD, true>(t, c, n, cs, s) : adam_run<WD, false>(t, c, n, cs, s);
}

// ------------------------------------------------------------ Adagrad
template <int WD, typename T>
struct AdagradOp {
  AdagradScalars<T> s;
  __device__ __forceinline__ void operator()(T (&e)[kRoles]) const {
    adagrad_element<WD>(e[0], e[1], e[2], s);
  }
};

template <int WD, typename T>
__device__ __forceinline__ void adagrad_run(const TensorEntry* t, const ChunkEntry* c, int n,
                                            long long cs, const AdagradScalars<T>& s) {
  apply_chunks<T, kP | kG | kS2, kP | kS2>(t, c, n, cs, AdagradOp<WD, T>{s});
}

}  // namespace cuda
}  // namespace fastopt

// ------------------------------------------------------- entry points
// Argument lists (after FASTOPT_TABLE_ARGS, multi_tensor.cuh) are mirrored in
// fastopt/backends/cuda/optim.py (KERNELS); keep the two in step.
#define FASTOPT_OPTIM_ENTRY_POINTS(T, SUFFIX)                                                 \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)                  \
      fastopt_sgd_##SUFFIX(FASTOPT_TABLE_ARGS, T lr, T momentum, T one_minus_dampening,        \
                           T weight_decay, T grad_sign, int weight_decay_on, int momentum_mode, \
                           int first_step) {                                                  \
    using namespace fastopt;                                                                  \
    const SgdScalars<T> s{lr, momentum, one_minus_dampening, weight_decay, grad_sign};        \
    if (weight_decay_on)                                                                      \
      cuda::sgd_by_mode<kL2>(tensors, chunks, n_chunks, chunk_size, s, momentum_mode,         \
                             first_step);                                                     \
    else                                                                                      \
      cuda::sgd_by_mode<kNoDecay>(tensors, chunks, n_chunks, chunk_size, s, momentum_mode,    \
                                  first_step);                                                \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)                  \
      fastopt_rmsprop_##SUFFIX(FASTOPT_TABLE_ARGS, T lr, T alpha, T one_minus_alpha, T eps,    \
                               T weight_decay, T momentum, T grad_sign, int weight_decay_on,   \
                               int centered, int momentum_on) {                               \
    using namespace fastopt;                                                                  \
    const RmspropScalars<T> s{lr, alpha, one_minus_alpha, eps, weight_decay, momentum,        \
                              grad_sign};                                                     \
    if (weight_decay_on)                                                                      \
      cuda::rmsprop_by_mode<kL2>(tensors, chunks, n_chunks, chunk_size, s, centered,          \
                                 momentum_on);                                                \
    else                                                                                      \
      cuda::rmsprop_by_mode<kNoDecay>(tensors, chunks, n_chunks, chunk_size, s, centered,     \
                                      momentum_on);                                           \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)                  \
      fastopt_adam_##SUFFIX(FASTOPT_TABLE_ARGS, T beta1, T one_minus_beta1, T beta2,           \
                            T one_minus_beta2, T eps, T weight_decay, T grad_sign,             \
                            T step_size, T bc2_sqrt, T decay_factor, int weight_decay_mode,    \
                            int amsgrad) {                                                    \
    using namespace fastopt;                                                                  \
    const AdamScalars<T> s{beta1,       one_minus_beta1, beta2,     one_minus_beta2,          \
                           eps,         weight_decay,    grad_sign, step_size,                \
                           bc2_sqrt,    decay_factor};                                        \
    if (weight_decay_mode == kL2)                                                             \
      cuda::adam_by_mode<kL2>(tensors, chunks, n_chunks, chunk_size, s, amsgrad);             \
    else if (weight_decay_mode == kDecoupled)                                                 \
      cuda::adam_by_mode<kDecoupled>(tensors, chunks, n_chunks, chunk_size, s, amsgrad);      \
    else                                                                                      \
      cuda::adam_by_mode<kNoDecay>(tensors, chunks, n_chunks, chunk_size, s, amsgrad);        \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)                  \
      fastopt_adagrad_##SUFFIX(FASTOPT_TABLE_ARGS, T clr, T eps, T weight_decay, T grad_sign,  \
                               int weight_decay_on) {                                         \
    using namespace fastopt;                                                                  \
    const AdagradScalars<T> s{clr, eps, weight_decay, grad_sign};                             \
    if (weight_decay_on)                                                                      \
      cuda::adagrad_run<kL2>(tensors, chunks, n_chunks, chunk_size, s);                       \
    else                                                                                      \
      cuda::adagrad_run<kNoDecay>(tensors, chunks, n_chunks, chunk_size, s);                  \
  }

FASTOPT_OPTIM_ENTRY_POINTS(float, f32)
FASTOPT_OPTIM_ENTRY_POINTS(double, f64)
