// CUDA kernels of the 8-bit optimizer steps (docs/quantized-state.md): the
// maths is fastopt/optim.h (the element update), fastopt/quantize.h (codes,
// absmax, reciprocal) and fastopt/mixed.h (16-bit params), the headers the
// CPU loops (csrc/cpu/quantized_loops.h) include, so a GPU step computes the
// CPU's bits. Compiled like optim.cu (NVRTC through
// fastopt/backends/cuda/loader.py, nvcc in tests/test_cuda_compile.py).
//
// One CUDA block of kQuantBlock (256) threads per quantization block of one
// tensor, one element per thread: dequantize, update in float32, the block's
// new absmax (a shared-memory max over the magnitude bits, NaN counting as
// 0), then the code of x = value * (1 / absmax) from the bucket table. Entry
// points fastopt_<kernel>_8bit_<P><G> (P, G: f float32, b bfloat16 bits, h
// float16), arguments: param, grad, n, then per state role codes and absmax,
// the signed and unsigned maps and code tables, the optim.h scalars (float)
// and the options (int).
// fixed-width integer types: fastopt/common.h (NVRTC has no <cstdint>)
#include "fastopt/mixed.h"
#include "fastopt/optim.h"
#include "fastopt/quantize.h"

namespace fastopt {
namespace cuda {

struct QState {
  unsigned char* codes;
  float* absmax;
};

struct QMap {
  const float* values;
  const int* lut;
};

// This thread's element of block blockIdx.x, or -1 past the tensor's end.
__device__ __forceinline__ long long element(long long n) {
  const long long i = (long long)blockIdx.x * kQuantBlock + threadIdx.x;
  return i < n ? i : -1;
}

__device__ __forceinline__ float load_state(QState q, long long i, const QMap& map) {
  return i < 0 ? 0.0f : dequantize_code(q.codes[i], q.absmax[blockIdx.x], map.values);
}

// The block's absmax of x (every thread calls it; past-the-end threads pass 0),
// then this element's code. red: kQuantBlock ints of shared memory.
template <bool Signed>
__device__ void store_state(QState q, long long i, float x, const QMap& map, int* red) {
  red[threadIdx.x] = magnitude_max(0, x);
  __syncthreads();
  for (unsigned half = kQuantBlock / 2; half != 0; half >>= 1) {
    if (threadIdx.x < half) {
      const int other = red[threadIdx.x + half];
      red[threadIdx.x] = other > red[threadIdx.x] ? other : red[threadIdx.x];
    }
    __syncthreads();
  }
  const float am = float_of(static_cast<uint32_t>(red[0]));
  __syncthreads();   // red is reused by the next state
  if (threadIdx.x == 0) q.absmax[blockIdx.x] = am;
  if (i < 0) return;
  q.codes[i] = am == 0.0f ? quantize_nearest(0.0f, map.values)
                          : quantize_code<Signed>(quant_ratio(x, am, 1.0f / am), map.lut);
}

template <int WD, typename P, typename G>
__device__ void adam_q(P* p, const G* g, long long n, QState m, QState v, QMap sm, QMap um,
                       const AdamScalars<float>& s) {
  __shared__ int red[kQuantBlock];
  const long long i = element(n);
  float mv = load_state(m, i, sm), vv = load_state(v, i, um), unused = 0.0f;
  if (i >= 0) {
    float pv = widen(p[i]);
    adam_element<WD, false>(pv, widen(g[i]), mv, vv, unused, s);
    p[i] = Narrow<P>::rne(pv);
  }
  store_state<true>(m, i, mv, sm, red);
  store_state<false>(v, i, vv, um, red);
}

template <int WD, int MOM, bool FIRST, typename P, typename G>
__device__ void sgd_q(P* p, const G* g, long long n, QState buf, QMap sm,
                      const SgdScalars<float>& s) {
  __shared__ int red[kQuantBlock];
  const long long i = element(n);
  float bv = FIRST ? 0.0f : load_state(buf, i, sm);
  if (i >= 0) {
    float pv = widen(p[i]);
    sgd_element<WD, MOM, FIRST>(pv, widen(g[i]), bv, s);
    p[i] = Narrow<P>::rne(pv);
  }
  store_state<true>(buf, i, bv, sm, red);
}

template <int WD, bool CEN, bool MOM, typename P, typename G>
__device__ void rmsprop_q(P* p, const G* g, long long n, QState sq, QState ga, QState bf,
                          QMap sm, QMap um, const RmspropScalars<float>& s) {
  __shared__ int red[kQuantBlock];
  const long long i = element(n);
  float sv = load_state(sq, i, um);
  float av = CEN ? load_state(ga, i, sm) : 0.0f, bv = MOM ? load_state(bf, i, sm) : 0.0f;
  if (i >= 0) {
    float pv = widen(p[i]);
    rmsprop_element<WD, CEN, MOM>(pv, widen(g[i]), sv, av, bv, s);
    p[i] = Narrow<P>::rne(pv);
  }
  store_state<false>(sq, i, sv, um, red);
  if (CEN) store_state<true>(ga, i, av, sm, red);
  if (MOM) store_state<true>(bf, i, bv, sm, red);
}

}  // namespace cuda
}  // namespace fastopt

// The options pick one instantiation at the top of the kernel (uniform per launch).
#define FASTOPT_Q_ENTRY_POINTS(SUFFIX, P, G)                                                    \
  extern "C" __global__ void __launch_bounds__(256) fastopt_adam_8bit_##SUFFIX(                 \
      P* p, const G* g, long long n, unsigned char* mc, float* ma, unsigned char* vc, float* va, \
      const float* smap, const int* slut, const float* umap, const int* ulut, float beta1,      \
      float omb1, float beta2, float omb2, float eps, float wd, float grad_sign,                \
      float step_size, float bc2_sqrt, float decay, int wd_mode) {                             \
    using namespace fastopt;                                                                    \
    const AdamScalars<float> s{beta1, omb1, beta2, omb2, eps, wd, grad_sign, step_size,         \
                               bc2_sqrt, decay};                                                \
    const cuda::QState m{mc, ma}, v{vc, va};                                                    \
    const cuda::QMap sm{smap, slut}, um{umap, ulut};                                            \
    if (wd_mode == kL2) cuda::adam_q<kL2>(p, g, n, m, v, sm, um, s);                            \
    else if (wd_mode == kDecoupled) cuda::adam_q<kDecoupled>(p, g, n, m, v, sm, um, s);         \
    else cuda::adam_q<kNoDecay>(p, g, n, m, v, sm, um, s);                                      \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(256) fastopt_sgd_8bit_##SUFFIX(                  \
      P* p, const G* g, long long n, unsigned char* bc, float* ba, const float* smap,           \
      const int* slut, float lr, float momentum, float omd, float wd, float grad_sign,          \
      int weight_decay, int nesterov, int first) {                                              \
    using namespace fastopt;                                                                    \
    const SgdScalars<float> s{lr, momentum, omd, wd, grad_sign};                                \
    const cuda::QState b{bc, ba};                                                               \
    const cuda::QMap sm{smap, slut};                                                            \
    if (weight_decay) {                                                                         \
      if (nesterov) first ? cuda::sgd_q<kL2, 2, true>(p, g, n, b, sm, s)                        \
                          : cuda::sgd_q<kL2, 2, false>(p, g, n, b, sm, s);                      \
      else first ? cuda::sgd_q<kL2, 1, true>(p, g, n, b, sm, s)                                 \
                 : cuda::sgd_q<kL2, 1, false>(p, g, n, b, sm, s);                               \
    } else {                                                                                    \
      if (nesterov) first ? cuda::sgd_q<kNoDecay, 2, true>(p, g, n, b, sm, s)                   \
                          : cuda::sgd_q<kNoDecay, 2, false>(p, g, n, b, sm, s);                 \
      else first ? cuda::sgd_q<kNoDecay, 1, true>(p, g, n, b, sm, s)                            \
                 : cuda::sgd_q<kNoDecay, 1, false>(p, g, n, b, sm, s);                          \
    }                                                                                           \
  }                                                                                             \
  extern "C" __global__ void __launch_bounds__(256) fastopt_rmsprop_8bit_##SUFFIX(              \
      P* p, const G* g, long long n, unsigned char* sc, float* sa, unsigned char* gc, float* gam, \
      unsigned char* bc, float* ba, const float* smap, const int* slut, const float* umap,      \
      const int* ulut, float lr, float alpha, float oma, float eps, float wd, float momentum,   \
      float grad_sign, int weight_decay, int centered, int use_momentum) {                      \
    using namespace fastopt;                                                                    \
    const RmspropScalars<float> s{lr, alpha, oma, eps, wd, momentum, grad_sign};                \
    const cuda::QState sq{sc, sa}, ga{gc, gam}, bf{bc, ba};                                     \
    const cuda::QMap sm{smap, slut}, um{umap, ulut};                                            \
    if (weight_decay) {                                                                         \
      if (centered) use_momentum ? cuda::rmsprop_q<kL2, true, true>(p, g, n, sq, ga, bf, sm, um, s) \
                                 : cuda::rmsprop_q<kL2, true, false>(p, g, n, sq, ga, bf, sm, um, s); \
      else use_momentum ? cuda::rmsprop_q<kL2, false, true>(p, g, n, sq, ga, bf, sm, um, s)     \
                        : cuda::rmsprop_q<kL2, false, false>(p, g, n, sq, ga, bf, sm, um, s);   \
    } else {                                                                                    \
      if (centered) use_momentum ? cuda::rmsprop_q<kNoDecay, true, true>(p, g, n, sq, ga, bf, sm, um, s) \
                                 : cuda::rmsprop_q<kNoDecay, true, false>(p, g, n, sq, ga, bf, sm, um, s); \
      else use_momentum ? cuda::rmsprop_q<kNoDecay, false, true>(p, g, n, sq, ga, bf, sm, um, s) \
                        : cuda::rmsprop_q<kNoDecay, false, false>(p, g, n, sq, ga, bf, sm, um, s); \
    }                                                                                           \
  }

FASTOPT_Q_ENTRY_POINTS(ff, float, float)
FASTOPT_Q_ENTRY_POINTS(bb, fastopt::Bf16, fastopt::Bf16)
FASTOPT_Q_ENTRY_POINTS(bf, fastopt::Bf16, float)
FASTOPT_Q_ENTRY_POINTS(hh, fastopt::F16, fastopt::F16)
FASTOPT_Q_ENTRY_POINTS(hf, fastopt::F16, float)
