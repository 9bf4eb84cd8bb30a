// The same-traffic twin (benchmarks only; no formula lives here).
//
// twin(ro, rw, wo, mask_in, mask_out, scale) streams every array once,
// element by element, all streams concurrently (as the fused kernels do):
//   s_i = sum_k ro[k][i] + bit_i(mask_in)
//   rw[k][i] += scale * s_i ;  wo[k][i] = s_i ;  bit_i(mask_out) = (s_i > 0)
// With nothing written it is a reduction and returns sum_i s_i. scale = 0
// leaves the read-write arrays' values (a twin can share the kernel's arrays).
//
// Every stream kind vectorizes: elements go in chunks of 32, so a mask is
// one 32-bit word per chunk (bit k of the word is element k: the mask's
// little-endian byte order); the word is expanded with a per-lane variable
// shift and packed with a compare and OR-reduction, which GCC turns into
// vector code in each target clone. A reduction keeps 32 partial sums (no
// reassociation needed). The per-element bit extraction that this replaced,
// m[i >> 3] >> (i & 7), compiled to scalar code even in the AVX-512 clone.
#include "twin.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "../cpu/isa.h"
#include "../cpu/parallel.h"

namespace fastopt {
namespace {

constexpr std::size_t kChunk = 32;  // elements per mask word

template <typename T, int R, int W, int O, bool MI, bool MO, bool SUM>
inline __attribute__((always_inline)) double body(const TwinStreams<T>& st, std::size_t b,
                                                  std::size_t e, T scale) {
  const T* r[R > 0 ? R : 1];
  T* w[W > 0 ? W : 1];
  T* o[O > 0 ? O : 1];
  for (int k = 0; k < R; ++k) r[k] = st.ro[k];
  for (int k = 0; k < W; ++k) w[k] = st.rw[k];
  for (int k = 0; k < O; ++k) o[k] = st.wo[k];
  T acc[kChunk] = {};
  std::size_t i0 = b;
  for (; i0 + kChunk <= e; i0 += kChunk) {
    std::uint32_t bits_in = 0, bits_out = 0;
    if (MI) std::memcpy(&bits_in, st.mask_in + i0 / 8, 4);
#pragma GCC ivdep
    for (std::size_t k = 0; k < kChunk; ++k) {
      const std::size_t i = i0 + k;
      T s = T(0);
      for (int q = 0; q < R; ++q) s += r[q][i];
      if (MI) s += T(static_cast<std::int32_t>((bits_in >> k) & 1u));
      for (int q = 0; q < W; ++q) w[q][i] += scale * s;
      for (int q = 0; q < O; ++q) o[q][i] = s;
      if (MO) bits_out |= std::uint32_t(s > T(0)) << k;
      if (SUM) acc[k] += s;
    }
    if (MO) std::memcpy(st.mask_out + i0 / 8, &bits_out, 4);
  }
  // tail (the last part only): fewer than 32 elements, bit by bit
  for (std::size_t i = i0; i < e; ++i) {
    T s = T(0);
    for (int q = 0; q < R; ++q) s += r[q][i];
    if (MI) s += T((st.mask_in[i >> 3] >> (i & 7)) & 1);
    for (int q = 0; q < W; ++q) w[q][i] += scale * s;
    for (int q = 0; q < O; ++q) o[q][i] = s;
    if (MO) {
      std::uint8_t& byte = st.mask_out[i >> 3];
      const std::uint8_t bit = std::uint8_t(1u << (i & 7));
      byte = std::uint8_t(s > T(0) ? (byte | bit) : (byte & ~bit));
    }
    if (SUM) acc[0] += s;
  }
  double total = 0.0;
  if (SUM)
    for (std::size_t k = 0; k < kChunk; ++k) total += double(acc[k]);
  return total;
}

template <typename T>
using BodyFn = double (*)(const TwinStreams<T>&, std::size_t, std::size_t, T);

// One clone set per stream shape the registry uses. R, W, O: read-only,
// read-write and write-only array counts; MI, MO: mask read / written.
#define FASTOPT_TWIN(T, R, W, O, MI, MO)                                                 \
  FASTOPT_CLONES double twin_##T##_##R##W##O##MI##MO(const TwinStreams<T>& st,           \
                                                     std::size_t b, std::size_t e, T c) { \
    return body<T, R, W, O, MI, MO, (W == 0 && O == 0 && !MO)>(st, b, e, c);             \
  }
#define FASTOPT_TWINS(T)                                                        \
  FASTOPT_TWIN(T, 1, 0, 0, 0, 0) /* a norm: read-only reduction */              \
  FASTOPT_TWIN(T, 2, 0, 0, 0, 0)                                                \
  FASTOPT_TWIN(T, 0, 1, 0, 0, 0) /* in-place scaling */                         \
  FASTOPT_TWIN(T, 1, 1, 0, 0, 0) /* sgd */                                      \
  FASTOPT_TWIN(T, 1, 2, 0, 0, 0) /* momentum, rmsprop, adagrad, ema */          \
  FASTOPT_TWIN(T, 1, 3, 0, 0, 0) /* adam, adamw */                              \
  FASTOPT_TWIN(T, 1, 4, 0, 0, 0) /* amsgrad */                                  \
  FASTOPT_TWIN(T, 2, 3, 0, 0, 0) /* 8-bit adam, as float halves (bench/quantized) */ \
  FASTOPT_TWIN(T, 1, 0, 1, 0, 0) /* copy, batch-norm forward */                 \
  FASTOPT_TWIN(T, 2, 0, 1, 0, 0) /* batch-norm backward */                      \
  FASTOPT_TWIN(T, 1, 0, 1, 0, 1) /* dropout forward */                          \
  FASTOPT_TWIN(T, 1, 0, 1, 1, 0) /* dropout backward */
FASTOPT_TWINS(float)
FASTOPT_TWINS(double)
#undef FASTOPT_TWINS
#undef FASTOPT_TWIN

template <typename T>
BodyFn<T> lookup(int R, int W, int O, bool MI, bool MO);

#define FASTOPT_CASE(T, R, W, O, MI, MO) \
  if (R == r && W == w && O == o && MI == mi && MO == mo) return twin_##T##_##R##W##O##MI##MO;
#define FASTOPT_LOOKUP(T)                                                          \
  template <>                                                                      \
  BodyFn<T> lookup<T>(int r, int w, int o, bool mi, bool mo) {                     \
    FASTOPT_CASE(T, 1, 0, 0, 0, 0) FASTOPT_CASE(T, 2, 0, 0, 0, 0)                  \
    FASTOPT_CASE(T, 0, 1, 0, 0, 0) FASTOPT_CASE(T, 1, 1, 0, 0, 0)                  \
    FASTOPT_CASE(T, 1, 2, 0, 0, 0) FASTOPT_CASE(T, 1, 3, 0, 0, 0)                  \
    FASTOPT_CASE(T, 1, 4, 0, 0, 0) FASTOPT_CASE(T, 1, 0, 1, 0, 0)                  \
    FASTOPT_CASE(T, 2, 3, 0, 0, 0)                                                 \
    FASTOPT_CASE(T, 2, 0, 1, 0, 0) FASTOPT_CASE(T, 1, 0, 1, 0, 1)                  \
    FASTOPT_CASE(T, 1, 0, 1, 1, 0)                  \
    return nullptr;                                                                \
  }
FASTOPT_LOOKUP(float)
FASTOPT_LOOKUP(double)
#undef FASTOPT_LOOKUP
#undef FASTOPT_CASE

}  // namespace

bool twin_supported(int r, int w, int o, bool mi, bool mo) {
  return lookup<float>(r, w, o, mi, mo) != nullptr;
}

template <typename T>
double twin_cpu(const TwinStreams<T>& st, std::size_t n, T scale) {
  BodyFn<T> f = lookup<T>(st.n_ro, st.n_rw, st.n_wo, st.mask_in != nullptr,
                          st.mask_out != nullptr);
  double total = 0.0;
  std::mutex lock;
  // parts start at multiples of 64 elements: whole mask words, whole cache lines
  const std::size_t groups = (n + 63) / 64;
  parallel_for(groups, kElementwiseGrain / 64, [&](std::size_t g0, std::size_t g1) {
    const double part = f(st, 64 * g0, std::min(n, 64 * g1), scale);
    std::lock_guard<std::mutex> hold(lock);  // once per part
    total += part;
  });
  return total;
}

template double twin_cpu<float>(const TwinStreams<float>&, std::size_t, float);
template double twin_cpu<double>(const TwinStreams<double>&, std::size_t, double);

}  // namespace fastopt
