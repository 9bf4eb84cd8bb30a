// The 8-bit steps on bfloat16 / float16 params (grads of the param's type or
// float32): the block loops of quantized_loops.h, widening on load and
// rounding the param once on store (fastopt/half.h), the states as for float32.
#include "quantized_loops.h"

// isa.h's clones, as the mixed loops (optim_mixed_loops.h), and one baseline
// clone in development builds (FASTOPT_MIXED_NO_CLONES, CMakeLists.txt).
#if FASTOPT_X86_GCC && !defined(FASTOPT_MIXED_NO_CLONES)
#define FASTOPT_Q_HALF_CLONES FASTOPT_CLONES
#else
#define FASTOPT_Q_HALF_CLONES
#endif

namespace fastopt {
namespace {

// X(name, P, G): the combinations implemented (fastopt/_precision.py's rules).
#define FASTOPT_Q_HALF_COMBOS(X) \
  X(bb, Bf16, Bf16)              \
  X(bf, Bf16, float)             \
  X(hh, F16, F16)                \
  X(hf, F16, float)

#define FASTOPT_Q_CLONES(name, P, G)                                                               \
  FASTOPT_Q_HALF_CLONES void adam_##name(void* p, const void* g, QView m, QView v, size_t n,       \
                                  size_t b0, size_t b1, const AdamScalars<float>& s, int wd) {     \
    adam_q_opts(static_cast<P*>(p), static_cast<const G*>(g), m, v, n, b0, b1, s, wd);             \
  }                                                                                                \
  FASTOPT_Q_HALF_CLONES void sgd_##name(void* p, const void* g, QView buf, size_t n, size_t b0,    \
                                 size_t b1, const SgdScalars<float>& s, bool wd, int mom,          \
                                 bool first) {                                                     \
    sgd_q_opts(static_cast<P*>(p), static_cast<const G*>(g), buf, n, b0, b1, s, wd, mom,           \
               first);                                                                             \
  }                                                                                                \
  FASTOPT_Q_HALF_CLONES void rmsprop_##name(void* p, const void* g, QView sq, QView ga, QView bf,  \
                                     size_t n, size_t b0, size_t b1,                               \
                                     const RmspropScalars<float>& s, bool wd, bool cen,            \
                                     bool mom) {                                                   \
    rmsprop_q_opts(static_cast<P*>(p), static_cast<const G*>(g), sq, ga, bf, n, b0, b1, s, wd,     \
                   cen, mom);                                                                      \
  }
FASTOPT_Q_HALF_COMBOS(FASTOPT_Q_CLONES)
#undef FASTOPT_Q_CLONES

// 0..3 for the combinations above; validation admits no other.
int combo(const QTensor& t) {
  return (t.p_type == kF16 ? 2 : 0) + (t.g_type == kF32 ? 1 : 0);
}

}  // namespace

void adam_q_range_half(QTensor t, QView m, QView v, size_t n, size_t b0, size_t b1,
                       const AdamScalars<float>& s, int wd_mode) {
  void (*const fns[])(void*, const void*, QView, QView, size_t, size_t, size_t,
                      const AdamScalars<float>&, int) = {adam_bb, adam_bf, adam_hh, adam_hf};
  fns[combo(t)](t.p, t.g, m, v, n, b0, b1, s, wd_mode);
}

void sgd_q_range_half(QTensor t, QView buf, size_t n, size_t b0, size_t b1,
                      const SgdScalars<float>& s, bool wd, int mom, bool first) {
  void (*const fns[])(void*, const void*, QView, size_t, size_t, size_t, const SgdScalars<float>&,
                      bool, int, bool) = {sgd_bb, sgd_bf, sgd_hh, sgd_hf};
  fns[combo(t)](t.p, t.g, buf, n, b0, b1, s, wd, mom, first);
}

void rmsprop_q_range_half(QTensor t, QView sq, QView gavg, QView buf, size_t n, size_t b0,
                          size_t b1, const RmspropScalars<float>& s, bool wd, bool centered,
                          bool momentum) {
  void (*const fns[])(void*, const void*, QView, QView, QView, size_t, size_t, size_t,
                      const RmspropScalars<float>&, bool, bool, bool) = {
      rmsprop_bb, rmsprop_bf, rmsprop_hh, rmsprop_hf};
  fns[combo(t)](t.p, t.g, sq, gavg, buf, n, b0, b1, s, wd, centered, momentum);
}

}  // namespace fastopt
