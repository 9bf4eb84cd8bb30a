// Block loops of the 8-bit optimizer steps: per block of 256, dequantize the
// states into stack buffers (L1), run the float32 element update of optim.h,
// take the block's new absmax and write the nearest codes. Options are
// template parameters resolved before the loops, as in optim_kernels.cpp.
#include "quantized_kernels.h"

#include "fastopt/quantize.h"
#include "isa.h"

#define FASTOPT_LOOP inline __attribute__((always_inline))

namespace fastopt {
namespace {

using std::size_t;

FASTOPT_LOOP void load_block(const QView& q, size_t b, size_t len, float* out) {
  const float am = q.absmax[b];
  const std::uint8_t* c = q.codes + b * kQuantBlock;
  for (size_t i = 0; i < len; ++i) out[i] = dequantize_code(c[i], am, q.qmap);
}

FASTOPT_LOOP void store_block(const QView& q, size_t b, size_t len, const float* x) {
  // Eight running maxima (max is exact, so the order does not matter): GCC does
  // not vectorize a select-based max reduction without -ffinite-math-only.
  float lane[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  size_t i = 0;
  for (; i + 8 <= len; i += 8)
    for (int k = 0; k < 8; ++k) lane[k] = absmax_update(lane[k], x[i + k]);
  for (; i < len; ++i) lane[0] = absmax_update(lane[0], x[i]);
  float am = 0.0f;
  for (int k = 0; k < 8; ++k) am = absmax_update(am, lane[k]);
  q.absmax[b] = am;
  std::uint8_t* __restrict c = q.codes + b * kQuantBlock;
  if (am == 0.0f) {   // x = 0 for every element: the code of 0
    const unsigned char zero = quantize_nearest(0.0f, 0.0f, q.qmap);
    for (size_t j = 0; j < len; ++j) c[j] = zero;
    return;
  }
  const float* __restrict qmap = q.qmap;   // locals: the stores to c cannot alias them
  const int* __restrict lut = q.lut;
  for (size_t j = 0; j < len; ++j) c[j] = quantize_nearest_lut(x[j], am, qmap, lut);
}

// Calls body(offset, len) for each block of [b0, b1).
template <typename Body>
FASTOPT_LOOP void for_blocks(size_t n, size_t b0, size_t b1, const Body& body) {
  for (size_t b = b0; b < b1; ++b) {
    const size_t off = b * kQuantBlock;
    const size_t len = n - off < size_t(kQuantBlock) ? n - off : size_t(kQuantBlock);
    body(b, off, len);
  }
}

template <int WD>
FASTOPT_LOOP void adam_q(float* p, const float* g, const QView& m, const QView& v, size_t n,
                         size_t b0, size_t b1, const AdamScalars<float>& s) {
  alignas(64) float mb[kQuantBlock], vb[kQuantBlock];
  for_blocks(n, b0, b1, [&](size_t b, size_t off, size_t len) {
    load_block(m, b, len, mb);
    load_block(v, b, len, vb);
    float* __restrict pp = p + off;
    const float* __restrict gg = g + off;
    float unused = 0.0f;
    for (size_t i = 0; i < len; ++i) adam_element<WD, false>(pp[i], gg[i], mb[i], vb[i], unused, s);
    store_block(m, b, len, mb);
    store_block(v, b, len, vb);
  });
}

template <int WD, int MOM, bool FIRST>
FASTOPT_LOOP void sgd_q(float* p, const float* g, const QView& buf, size_t n, size_t b0, size_t b1,
                        const SgdScalars<float>& s) {
  alignas(64) float bb[kQuantBlock];
  for_blocks(n, b0, b1, [&](size_t b, size_t off, size_t len) {
    if (!FIRST) load_block(buf, b, len, bb);
    float* __restrict pp = p + off;
    const float* __restrict gg = g + off;
    for (size_t i = 0; i < len; ++i) sgd_element<WD, MOM, FIRST>(pp[i], gg[i], bb[i], s);
    store_block(buf, b, len, bb);
  });
}

template <int WD, bool CEN, bool MOM>
FASTOPT_LOOP void rmsprop_q(float* p, const float* g, const QView& sq, const QView& gavg,
                            const QView& buf, size_t n, size_t b0, size_t b1,
                            const RmspropScalars<float>& s) {
  alignas(64) float sb[kQuantBlock], ab[kQuantBlock], bb[kQuantBlock];
  for_blocks(n, b0, b1, [&](size_t b, size_t off, size_t len) {
    load_block(sq, b, len, sb);
    if (CEN) load_block(gavg, b, len, ab);
    if (MOM) load_block(buf, b, len, bb);
    float* __restrict pp = p + off;
    const float* __restrict gg = g + off;
    for (size_t i = 0; i < len; ++i) rmsprop_element<WD, CEN, MOM>(pp[i], gg[i], sb[i], ab[i], bb[i], s);
    store_block(sq, b, len, sb);
    if (CEN) store_block(gavg, b, len, ab);
    if (MOM) store_block(buf, b, len, bb);
  });
}

template <int WD>
FASTOPT_LOOP void sgd_q_mode(float* p, const float* g, const QView& q, size_t n, size_t b0,
                             size_t b1, const SgdScalars<float>& s, int mom, bool first) {
  if (mom == 1) first ? sgd_q<WD, 1, true>(p, g, q, n, b0, b1, s) : sgd_q<WD, 1, false>(p, g, q, n, b0, b1, s);
  else first ? sgd_q<WD, 2, true>(p, g, q, n, b0, b1, s) : sgd_q<WD, 2, false>(p, g, q, n, b0, b1, s);
}

template <int WD>
FASTOPT_LOOP void rmsprop_q_mode(float* p, const float* g, const QView& sq, const QView& ga,
                                 const QView& bf, size_t n, size_t b0, size_t b1,
                                 const RmspropScalars<float>& s, bool cen, bool mom) {
  if (cen) mom ? rmsprop_q<WD, true, true>(p, g, sq, ga, bf, n, b0, b1, s)
               : rmsprop_q<WD, true, false>(p, g, sq, ga, bf, n, b0, b1, s);
  else mom ? rmsprop_q<WD, false, true>(p, g, sq, ga, bf, n, b0, b1, s)
           : rmsprop_q<WD, false, false>(p, g, sq, ga, bf, n, b0, b1, s);
}

}  // namespace

FASTOPT_CLONES void adam_q_range(float* p, const float* g, QView m, QView v, size_t n, size_t b0,
                                 size_t b1, const AdamScalars<float>& s, int wd_mode) {
  if (wd_mode == kL2) adam_q<kL2>(p, g, m, v, n, b0, b1, s);
  else if (wd_mode == kDecoupled) adam_q<kDecoupled>(p, g, m, v, n, b0, b1, s);
  else adam_q<kNoDecay>(p, g, m, v, n, b0, b1, s);
}

FASTOPT_CLONES void sgd_q_range(float* p, const float* g, QView buf, size_t n, size_t b0,
                                size_t b1, const SgdScalars<float>& s, bool wd, int mom,
                                bool first) {
  wd ? sgd_q_mode<kL2>(p, g, buf, n, b0, b1, s, mom, first)
     : sgd_q_mode<kNoDecay>(p, g, buf, n, b0, b1, s, mom, first);
}

FASTOPT_CLONES void rmsprop_q_range(float* p, const float* g, QView sq, QView gavg, QView buf,
                                    size_t n, size_t b0, size_t b1,
                                    const RmspropScalars<float>& s, bool wd, bool centered,
                                    bool momentum) {
  wd ? rmsprop_q_mode<kL2>(p, g, sq, gavg, buf, n, b0, b1, s, centered, momentum)
     : rmsprop_q_mode<kNoDecay>(p, g, sq, gavg, buf, n, b0, b1, s, centered, momentum);
}

}  // namespace fastopt
