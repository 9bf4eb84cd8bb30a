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
// fixed-width integer types: fastopt/common.h (NVRTC has no <cstdint>)
#include "fastopt/mixed.h"
#include "fastopt/optim.h"
#include "fastopt/philox.h"
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

// ------------------------------------------------- mixed precision (issue 18)
// 16-bit params / grads / states, float32 masters, stochastic rounding, the
// gradient unscale (grad_scale: a value, or a 1-element float32 device array
// read by every thread, no host synchronization) and found_inf (a 1-element
// float32 device array: nonzero makes the kernel return before writing
// anything). The element is fastopt/mixed.h's, the same as the CPU loops'.
// Masters travel in a second table (loader.device_table of the masters as
// role 0: same tensor order), so multi_tensor.cuh's layout is unchanged.
// Scalar loads and stores: one element per thread per iteration.
//
// Entry points: fastopt_<kernel>_mixed_<combo>, combo as in FASTOPT_MIXED_COMBOS
// (fastopt/mixed.h); arguments mirrored in fastopt/backends/cuda/optim.py (MIXED).
namespace fastopt {
namespace cuda {

__device__ __forceinline__ uint32_t sr_word(long long i, unsigned long long seed,
                                            unsigned long long step) {
  const unsigned long long j = static_cast<unsigned long long>(i) >> 2;
  const uint32_t ctr[4] = {static_cast<uint32_t>(j), static_cast<uint32_t>(j >> 32),
                           static_cast<uint32_t>(step), sr_counter3(step)};
  const uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  uint32_t out[4];
  philox4x32_10(ctr, key, out);
  const int w = static_cast<int>(i & 3);
  return w == 0 ? out[0] : (w == 1 ? out[1] : (w == 2 ? out[2] : out[3]));
}

struct MixedArgs {
  const TensorEntry* masters;  // null without masters
  const float* grad_scale_ptr; // null: use grad_scale
  double grad_scale;
  int mode;                    // ParamMode
  unsigned long long seed, step;
};

template <typename P, typename G, typename S, int MODE, unsigned USED, typename Elem>
__device__ __forceinline__ void mixed_chunks_mode(const TensorEntry* __restrict__ tensors,
                                                  const ChunkEntry* __restrict__ chunks,
                                                  int n_chunks, long long chunk_size,
                                                  const MixedArgs& m, const Elem& elem) {
  using C = compute_t<P>;
  const C scale = m.grad_scale_ptr ? C(*m.grad_scale_ptr) : C(m.grad_scale);
  for (int c = blockIdx.x; c < n_chunks; c += gridDim.x) {
    const ChunkEntry ch = chunks[c];
    const TensorEntry& te = tensors[ch.tensor];
    const long long begin = static_cast<long long>(ch.chunk) * chunk_size;
    const long long n = min_ll(chunk_size, te.size - begin);
    P* p = reinterpret_cast<P*>(te.ptr[0]);
    const G* g = reinterpret_cast<const G*>(te.ptr[1]);
    S* a = reinterpret_cast<S*>(te.ptr[2]);
    S* b = reinterpret_cast<S*>(te.ptr[3]);
    S* s = reinterpret_cast<S*>(te.ptr[4]);
    float* master = MODE == kFromMaster ? reinterpret_cast<float*>(m.masters[ch.tensor].ptr[0])
                                        : nullptr;
    for (long long k = threadIdx.x; k < n; k += blockDim.x) {
      const long long i = begin + k;
      const uint32_t r = MODE == kStochastic ? sr_word(i, m.seed, m.step) : 0u;
      mixed_element<P, G, S, MODE, USED>(p, g, a, b, s, master, i, r, scale, elem);
    }
  }
}

template <typename P, typename G, typename S, unsigned USED, typename Elem>
__device__ __forceinline__ void mixed_chunks(const TensorEntry* tensors, const ChunkEntry* chunks,
                                             int n_chunks, long long chunk_size,
                                             const MixedArgs& m, const Elem& elem) {
  if (StorageTraits<P>::half && m.mode == kFromMaster)
    mixed_chunks_mode<P, G, S, kFromMaster, USED>(tensors, chunks, n_chunks, chunk_size, m, elem);
  else if (StorageTraits<P>::half && m.mode == kStochastic)
    mixed_chunks_mode<P, G, S, kStochastic, USED>(tensors, chunks, n_chunks, chunk_size, m, elem);
  else
    mixed_chunks_mode<P, G, S, kRoundNearest, USED>(tensors, chunks, n_chunks, chunk_size, m,
                                                    elem);
}

template <typename P, typename G, typename S>
__device__ __forceinline__ void sgd_mixed(const TensorEntry* t, const ChunkEntry* ch, int n,
                                          long long cs, const MixedArgs& m,
                                          const SgdScalars<compute_t<P>>& s, int wd, int mom,
                                          int first) {
  using C = compute_t<P>;
#define FASTOPT_SGD_CASE(W, M, F)                                                      \
  if (wd == (W != 0) && mom == M && (M == 0 || first == F)) {                          \
    mixed_chunks<P, G, S, M ? 1u : 0u>(t, ch, n, cs, m, [&](C& p, C g, C& buf, C&, C&) { \
      sgd_element<W, M, F != 0>(p, g, buf, s);                                         \
    });                                                                                \
    return;                                                                            \
  }
  FASTOPT_SGD_CASE(kNoDecay, 0, 0) FASTOPT_SGD_CASE(kL2, 0, 0)
  FASTOPT_SGD_CASE(kNoDecay, 1, 0) FASTOPT_SGD_CASE(kNoDecay, 1, 1)
  FASTOPT_SGD_CASE(kL2, 1, 0) FASTOPT_SGD_CASE(kL2, 1, 1)
  FASTOPT_SGD_CASE(kNoDecay, 2, 0) FASTOPT_SGD_CASE(kNoDecay, 2, 1)
  FASTOPT_SGD_CASE(kL2, 2, 0) FASTOPT_SGD_CASE(kL2, 2, 1)
#undef FASTOPT_SGD_CASE
}

template <typename P, typename G, typename S>
__device__ __forceinline__ void rmsprop_mixed(const TensorEntry* t, const ChunkEntry* ch, int n,
                                              long long cs, const MixedArgs& m,
                                              const RmspropScalars<compute_t<P>>& s, int wd,
                                              int cen, int mom) {
  using C = compute_t<P>;
#define FASTOPT_RMSPROP_CASE(W, CEN, MOM)                                                  \
  if (wd == (W != 0) && cen == CEN && mom == MOM) {                                        \
    mixed_chunks<P, G, S, 1u | (CEN ? 2u : 0u) | (MOM ? 4u : 0u)>(                         \
        t, ch, n, cs, m, [&](C& p, C g, C& sq, C& gavg, C& buf) {                          \
          rmsprop_element<W, CEN != 0, MOM != 0>(p, g, sq, gavg, buf, s);                  \
        });                                                                                \
    return;                                                                                \
  }
  FASTOPT_RMSPROP_CASE(kNoDecay, 0, 0) FASTOPT_RMSPROP_CASE(kNoDecay, 0, 1)
  FASTOPT_RMSPROP_CASE(kNoDecay, 1, 0) FASTOPT_RMSPROP_CASE(kNoDecay, 1, 1)
  FASTOPT_RMSPROP_CASE(kL2, 0, 0) FASTOPT_RMSPROP_CASE(kL2, 0, 1)
  FASTOPT_RMSPROP_CASE(kL2, 1, 0) FASTOPT_RMSPROP_CASE(kL2, 1, 1)
#undef FASTOPT_RMSPROP_CASE
}

template <typename P, typename G, typename S>
__device__ __forceinline__ void adam_mixed(const TensorEntry* t, const ChunkEntry* ch, int n,
                                           long long cs, const MixedArgs& m,
                                           const AdamScalars<compute_t<P>>& s, int wd, int ams) {
  using C = compute_t<P>;
#define FASTOPT_ADAM_CASE(W, AMS)                                                        \
  if (wd == W && ams == AMS) {                                                           \
    mixed_chunks<P, G, S, AMS ? 7u : 3u>(t, ch, n, cs, m, [&](C& p, C g, C& a, C& b, C& c) { \
      adam_element<W, AMS != 0>(p, g, a, b, c, s);                                       \
    });                                                                                  \
    return;                                                                              \
  }
  FASTOPT_ADAM_CASE(kNoDecay, 0) FASTOPT_ADAM_CASE(kNoDecay, 1)
  FASTOPT_ADAM_CASE(kL2, 0) FASTOPT_ADAM_CASE(kL2, 1)
  FASTOPT_ADAM_CASE(kDecoupled, 0) FASTOPT_ADAM_CASE(kDecoupled, 1)
#undef FASTOPT_ADAM_CASE
}

template <typename P, typename G, typename S>
__device__ __forceinline__ void adagrad_mixed(const TensorEntry* t, const ChunkEntry* ch, int n,
                                              long long cs, const MixedArgs& m,
                                              const AdagradScalars<compute_t<P>>& s, int wd) {
  using C = compute_t<P>;
  if (wd)
    mixed_chunks<P, G, S, 1u>(t, ch, n, cs, m, [&](C& p, C g, C& sum, C&, C&) {
      adagrad_element<kL2>(p, g, sum, s);
    });
  else
    mixed_chunks<P, G, S, 1u>(t, ch, n, cs, m, [&](C& p, C g, C& sum, C&, C&) {
      adagrad_element<kNoDecay>(p, g, sum, s);
    });
}

}  // namespace cuda
}  // namespace fastopt

// Leading arguments of every mixed entry point after the table: the masters'
// table, grad_scale (device pointer or value), found_inf, the parameter mode,
// seed and step; "pppdiQQ" in fastopt/backends/cuda/optim.py.
#define FASTOPT_MIXED_ARGS                                                                   \
  FASTOPT_TABLE_ARGS, const fastopt::cuda::TensorEntry *masters, const float *grad_scale_ptr, \
      const float *found_inf, double grad_scale, int mode, unsigned long long seed,           \
      unsigned long long step
#define FASTOPT_MIXED_PROLOGUE                                                              \
  using namespace fastopt;                                                                  \
  if (found_inf != nullptr && *found_inf != 0.0f) return;                                   \
  const cuda::MixedArgs m{masters, grad_scale_ptr, grad_scale, mode, seed, step};

#define FASTOPT_MIXED_ENTRY_POINTS(COMBO, P, G, S, CP, CG, CS)                                  \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)                   \
      fastopt_sgd_mixed_##COMBO(FASTOPT_MIXED_ARGS, fastopt::compute_t<P> lr,                   \
                                fastopt::compute_t<P> momentum,                                 \
                                fastopt::compute_t<P> one_minus_dampening,                      \
                                fastopt::compute_t<P> weight_decay,                             \
                                fastopt::compute_t<P> grad_sign, int weight_decay_on,           \
                                int momentum_mode, int first_step) {                            \
    FASTOPT_MIXED_PROLOGUE                                                                      \
    const SgdScalars<compute_t<P>> s{lr, momentum, one_minus_dampening, weight_decay, grad_sign}; \
    cuda::sgd_mixed<P, G, S>(tensors, chunks, n_chunks, chunk_size, m, s, weight_decay_on,     \
                             momentum_mode, first_step);                                        \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)                   \
      fastopt_rmsprop_mixed_##COMBO(FASTOPT_MIXED_ARGS, fastopt::compute_t<P> lr,               \
                                    fastopt::compute_t<P> alpha,                                \
                                    fastopt::compute_t<P> one_minus_alpha,                      \
                                    fastopt::compute_t<P> eps, fastopt::compute_t<P> weight_decay, \
                                    fastopt::compute_t<P> momentum,                             \
                                    fastopt::compute_t<P> grad_sign, int weight_decay_on,       \
                                    int centered, int momentum_on) {                            \
    FASTOPT_MIXED_PROLOGUE                                                                      \
    const RmspropScalars<compute_t<P>> s{lr, alpha, one_minus_alpha, eps, weight_decay,         \
                                         momentum, grad_sign};                                  \
    cuda::rmsprop_mixed<P, G, S>(tensors, chunks, n_chunks, chunk_size, m, s, weight_decay_on, \
                                 centered, momentum_on);                                        \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)                   \
      fastopt_adam_mixed_##COMBO(FASTOPT_MIXED_ARGS, fastopt::compute_t<P> beta1,               \
                                 fastopt::compute_t<P> one_minus_beta1,                         \
                                 fastopt::compute_t<P> beta2,                                   \
                                 fastopt::compute_t<P> one_minus_beta2,                         \
                                 fastopt::compute_t<P> eps, fastopt::compute_t<P> weight_decay, \
                                 fastopt::compute_t<P> grad_sign,                               \
                                 fastopt::compute_t<P> step_size,                               \
                                 fastopt::compute_t<P> bc2_sqrt,                                \
                                 fastopt::compute_t<P> decay_factor, int weight_decay_mode,     \
                                 int amsgrad) {                                                 \
    FASTOPT_MIXED_PROLOGUE                                                                      \
    const AdamScalars<compute_t<P>> s{beta1, one_minus_beta1, beta2, one_minus_beta2, eps,      \
                                      weight_decay, grad_sign, step_size, bc2_sqrt,            \
                                      decay_factor};                                            \
    cuda::adam_mixed<P, G, S>(tensors, chunks, n_chunks, chunk_size, m, s, weight_decay_mode,  \
                              amsgrad);                                                         \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(fastopt::cuda::kBlockThreads)                   \
      fastopt_adagrad_mixed_##COMBO(FASTOPT_MIXED_ARGS, fastopt::compute_t<P> clr,              \
                                    fastopt::compute_t<P> eps,                                  \
                                    fastopt::compute_t<P> weight_decay,                         \
                                    fastopt::compute_t<P> grad_sign, int weight_decay_on) {     \
    FASTOPT_MIXED_PROLOGUE                                                                      \
    const AdagradScalars<compute_t<P>> s{clr, eps, weight_decay, grad_sign};                    \
    cuda::adagrad_mixed<P, G, S>(tensors, chunks, n_chunks, chunk_size, m, s, weight_decay_on); \
  }

FASTOPT_MIXED_COMBOS(FASTOPT_MIXED_ENTRY_POINTS)
