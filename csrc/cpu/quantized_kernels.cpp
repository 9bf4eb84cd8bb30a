// The 8-bit steps on float32 params and grads (the block loops are in
// quantized_loops.h); 16-bit params go to quantized_half.cpp.
#include "quantized_loops.h"

namespace fastopt {
namespace {

FASTOPT_CLONES void adam_q_clones(float* p, const float* g, QView m, QView v, size_t n, size_t b0,
                                 size_t b1, const AdamScalars<float>& s, int wd_mode) {
  adam_q_opts(p, g, m, v, n, b0, b1, s, wd_mode);
}

FASTOPT_CLONES void sgd_q_clones(float* p, const float* g, QView buf, size_t n, size_t b0,
                                size_t b1, const SgdScalars<float>& s, bool wd, int mom,
                                bool first) {
  sgd_q_opts(p, g, buf, n, b0, b1, s, wd, mom, first);
}

FASTOPT_CLONES void rmsprop_q_clones(float* p, const float* g, QView sq, QView gavg, QView buf,
                                    size_t n, size_t b0, size_t b1,
                                    const RmspropScalars<float>& s, bool wd, bool centered,
                                    bool momentum) {
  rmsprop_q_opts(p, g, sq, gavg, buf, n, b0, b1, s, wd, centered, momentum);
}

bool all_f32(const QTensor& t) { return t.p_type == kF32 && t.g_type == kF32; }

}  // namespace

// Plain entry points: called from another translation unit, a target_clones
// function bound (under LTO) to its default clone, so the clones stay local
// to this file, as in optim_kernels.cpp.
void adam_q_range(QTensor t, QView m, QView v, size_t n, size_t b0, size_t b1,
                  const AdamScalars<float>& s, int wd_mode) {
  if (!all_f32(t)) return adam_q_range_half(t, m, v, n, b0, b1, s, wd_mode);
  adam_q_clones(static_cast<float*>(t.p), static_cast<const float*>(t.g), m, v, n, b0, b1, s,
                wd_mode);
}

void sgd_q_range(QTensor t, QView buf, size_t n, size_t b0, size_t b1,
                 const SgdScalars<float>& s, bool wd, int mom, bool first) {
  if (!all_f32(t)) return sgd_q_range_half(t, buf, n, b0, b1, s, wd, mom, first);
  sgd_q_clones(static_cast<float*>(t.p), static_cast<const float*>(t.g), buf, n, b0, b1, s, wd,
               mom, first);
}

void quantize_codes_range(const QView& q, bool is_signed, const float* x, float absmax,
                          std::uint8_t* c, std::size_t len) {
  is_signed ? code_block<true>(q, x, absmax, c, len) : code_block<false>(q, x, absmax, c, len);
}

void rmsprop_q_range(QTensor t, QView sq, QView gavg, QView buf, size_t n, size_t b0, size_t b1,
                     const RmspropScalars<float>& s, bool wd, bool centered, bool momentum) {
  if (!all_f32(t))
    return rmsprop_q_range_half(t, sq, gavg, buf, n, b0, b1, s, wd, centered, momentum);
  rmsprop_q_clones(static_cast<float*>(t.p), static_cast<const float*>(t.g), sq, gavg, buf, n, b0,
                   b1, s, wd, centered, momentum);
}

}  // namespace fastopt
