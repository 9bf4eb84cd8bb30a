// Loops over contiguous ranges; one instruction-set clone per range function,
// with every option resolved to a template before the loop so that the loop
// body is branch-free and vectorizes.
#include "optim_kernels.h"

#include <cstddef>

#include "isa.h"

#define FASTOPT_LOOP inline __attribute__((always_inline))

namespace fastopt {
namespace {

using std::size_t;

// ---------------------------------------------------------------- SGD
template <int WD, int MOM, bool FIRST, typename T>
FASTOPT_LOOP void sgd_loop(T* __restrict p, const T* __restrict g, T* __restrict buf, size_t n,
                           const SgdScalars<T>& s) {
  T unused = 0;
  for (size_t i = 0; i < n; ++i) sgd_element<WD, MOM, FIRST>(p[i], g[i], MOM ? buf[i] : unused, s);
}

template <int WD, typename T>
FASTOPT_LOOP void sgd_by_mode(T* p, const T* g, T* buf, size_t n, const SgdScalars<T>& s, int mom,
                              bool first) {
  if (mom == 0) sgd_loop<WD, 0, false>(p, g, buf, n, s);
  else if (mom == 1) first ? sgd_loop<WD, 1, true>(p, g, buf, n, s) : sgd_loop<WD, 1, false>(p, g, buf, n, s);
  else first ? sgd_loop<WD, 2, true>(p, g, buf, n, s) : sgd_loop<WD, 2, false>(p, g, buf, n, s);
}

// ------------------------------------------------------------ RMSprop
template <int WD, bool CEN, bool MOM, typename T>
FASTOPT_LOOP void rmsprop_loop(T* __restrict p, const T* __restrict g, T* __restrict sq,
                               T* __restrict gavg, T* __restrict buf, size_t n,
                               const RmspropScalars<T>& s) {
  T unused_a = 0, unused_b = 0;
  for (size_t i = 0; i < n; ++i)
    rmsprop_element<WD, CEN, MOM>(p[i], g[i], sq[i], CEN ? gavg[i] : unused_a,
                                  MOM ? buf[i] : unused_b, s);
}

template <int WD, typename T>
FASTOPT_LOOP void rmsprop_by_mode(T* p, const T* g, T* sq, T* gavg, T* buf, size_t n,
                                  const RmspropScalars<T>& s, bool cen, bool mom) {
  if (cen) mom ? rmsprop_loop<WD, true, true>(p, g, sq, gavg, buf, n, s)
               : rmsprop_loop<WD, true, false>(p, g, sq, gavg, buf, n, s);
  else mom ? rmsprop_loop<WD, false, true>(p, g, sq, gavg, buf, n, s)
           : rmsprop_loop<WD, false, false>(p, g, sq, gavg, buf, n, s);
}

// --------------------------------------------------------------- Adam
template <int WD, bool AMS, typename T>
FASTOPT_LOOP void adam_loop(T* __restrict p, const T* __restrict g, T* __restrict m,
                            T* __restrict v, T* __restrict vmax, size_t n, const AdamScalars<T>& s) {
  T unused = 0;
  for (size_t i = 0; i < n; ++i) adam_element<WD, AMS>(p[i], g[i], m[i], v[i], AMS ? vmax[i] : unused, s);
}

template <int WD, typename T>
FASTOPT_LOOP void adam_by_mode(T* p, const T* g, T* m, T* v, T* vmax, size_t n,
                               const AdamScalars<T>& s, bool ams) {
  ams ? adam_loop<WD, true>(p, g, m, v, vmax, n, s) : adam_loop<WD, false>(p, g, m, v, vmax, n, s);
}

// ------------------------------------------------------------ Adagrad
template <int WD, typename T>
FASTOPT_LOOP void adagrad_loop(T* __restrict p, const T* __restrict g, T* __restrict sum, size_t n,
                               const AdagradScalars<T>& s) {
  for (size_t i = 0; i < n; ++i) adagrad_element<WD>(p[i], g[i], sum[i], s);
}

// One cloned entry point per kernel and dtype (target_clones does not apply
// to templates).
#define FASTOPT_RANGE_FUNCTIONS(T)                                                              \
  FASTOPT_CLONES void sgd_range(T* p, const T* g, T* buf, size_t n, const SgdScalars<T>& s,      \
                                bool wd, int mom, bool first) {                                 \
    wd ? sgd_by_mode<kL2>(p, g, buf, n, s, mom, first)                                          \
       : sgd_by_mode<kNoDecay>(p, g, buf, n, s, mom, first);                                    \
  }                                                                                             \
  FASTOPT_CLONES void rmsprop_range(T* p, const T* g, T* sq, T* gavg, T* buf, size_t n,          \
                                    const RmspropScalars<T>& s, bool wd, bool cen, bool mom) {  \
    wd ? rmsprop_by_mode<kL2>(p, g, sq, gavg, buf, n, s, cen, mom)                              \
       : rmsprop_by_mode<kNoDecay>(p, g, sq, gavg, buf, n, s, cen, mom);                        \
  }                                                                                             \
  FASTOPT_CLONES void adam_range(T* p, const T* g, T* m, T* v, T* vmax, size_t n,                \
                                 const AdamScalars<T>& s, int wd, bool ams) {                   \
    if (wd == kL2) adam_by_mode<kL2>(p, g, m, v, vmax, n, s, ams);                              \
    else if (wd == kDecoupled) adam_by_mode<kDecoupled>(p, g, m, v, vmax, n, s, ams);           \
    else adam_by_mode<kNoDecay>(p, g, m, v, vmax, n, s, ams);                                   \
  }                                                                                             \
  FASTOPT_CLONES void adagrad_range(T* p, const T* g, T* sum, size_t n,                          \
                                    const AdagradScalars<T>& s, bool wd) {                      \
    wd ? adagrad_loop<kL2>(p, g, sum, n, s) : adagrad_loop<kNoDecay>(p, g, sum, n, s);          \
  }

FASTOPT_RANGE_FUNCTIONS(float)
FASTOPT_RANGE_FUNCTIONS(double)

// Offsets a role pointer that may be nullptr (unused state).
template <typename T>
T* at(T* base, size_t offset) { return base ? base + offset : nullptr; }

}  // namespace

template <typename T>
void sgd_cpu(const OptimList<T>& l, const SgdScalars<T>& s, bool wd, int mom, bool first) {
  multi_tensor_apply(l, kElementwiseGrain, [&](const std::array<T*, 5>& t, size_t o, size_t n) {
    sgd_range(t[0] + o, t[1] + o, at(t[2], o), n, s, wd, mom, first);
  });
}

template <typename T>
void rmsprop_cpu(const OptimList<T>& l, const RmspropScalars<T>& s, bool wd, bool cen, bool mom) {
  multi_tensor_apply(l, kElementwiseGrain, [&](const std::array<T*, 5>& t, size_t o, size_t n) {
    rmsprop_range(t[0] + o, t[1] + o, t[2] + o, at(t[3], o), at(t[4], o), n, s, wd, cen, mom);
  });
}

template <typename T>
void adam_cpu(const OptimList<T>& l, const AdamScalars<T>& s, int wd, bool ams) {
  multi_tensor_apply(l, kElementwiseGrain, [&](const std::array<T*, 5>& t, size_t o, size_t n) {
    adam_range(t[0] + o, t[1] + o, t[2] + o, t[3] + o, at(t[4], o), n, s, wd, ams);
  });
}

template <typename T>
void adagrad_cpu(const OptimList<T>& l, const AdagradScalars<T>& s, bool wd) {
  multi_tensor_apply(l, kElementwiseGrain, [&](const std::array<T*, 5>& t, size_t o, size_t n) {
    adagrad_range(t[0] + o, t[1] + o, t[2] + o, n, s, wd);
  });
}

#define FASTOPT_INSTANTIATE(T)                                                                   \
  template void sgd_cpu<T>(const OptimList<T>&, const SgdScalars<T>&, bool, int, bool);          \
  template void rmsprop_cpu<T>(const OptimList<T>&, const RmspropScalars<T>&, bool, bool, bool); \
  template void adam_cpu<T>(const OptimList<T>&, const AdamScalars<T>&, int, bool);              \
  template void adagrad_cpu<T>(const OptimList<T>&, const AdagradScalars<T>&, bool);
FASTOPT_INSTANTIATE(float)
FASTOPT_INSTANTIATE(double)

}  // namespace fastopt
