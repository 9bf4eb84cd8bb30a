// Block loops of the 8-bit optimizer steps: per block of 256, dequantize the
// states into stack buffers (L1), run the float32 element update of optim.h,
// take the block's new absmax and write the nearest codes. Options are
// template parameters resolved before the loops, as in optim_kernels.cpp; the
// param and grad types too (float32, or 16-bit widened on load and rounded on
// store, fastopt/mixed.h). Included by quantized_kernels.cpp (float32) and
// quantized_half.cpp (16-bit params), each instantiating its type combinations
// inside its own FASTOPT_CLONES functions.
#pragma once
#include "fastopt/mixed.h"
#include "fastopt/quantize.h"
#include "isa.h"
#include "quantized_simd.h"
#include "quantized_kernels.h"

#define FASTOPT_LOOP inline __attribute__((always_inline))

namespace fastopt {
namespace {

using std::size_t;

FASTOPT_LOOP void load_block(const QView& q, size_t b, size_t len, float* out) {
  const float am = q.absmax[b];
  const std::uint8_t* c = q.codes + b * kQuantBlock;
#if FASTOPT_HAVE_SIMD_LOOKUPS
  if (q.planes) return dequantize_block_vbmi(c, am, q.planes, out, len);
  if (cpu_has_avx2()) return dequantize_block_avx2(c, am, q.qmap, out, len);
#endif
  for (size_t i = 0; i < len; ++i) out[i] = dequantize_code(c[i], am, q.qmap);
}

// Restrict parameters and ivdep: a uint8 store may alias anything, which
// otherwise keeps GCC from vectorizing (the table load becomes a gather).
template <bool Signed>
FASTOPT_LOOP void quantize_codes(const float* __restrict x, float am, const int* __restrict lut,
                                 std::uint8_t* __restrict c, size_t len) {
  const float r = 1.0f / am;
  if (quant_by_reciprocal(am)) {
#pragma GCC ivdep
    for (size_t j = 0; j < len; ++j) c[j] = quantize_code<Signed>(x[j] * r, lut);
  } else {
    for (size_t j = 0; j < len; ++j) c[j] = quantize_code<Signed>(quant_ratio(x[j], am, r), lut);
  }
}

// The codes of x / am (am > 0) into c.
template <bool Signed>
FASTOPT_LOOP void code_block(const QView& q, const float* x, float am, std::uint8_t* c,
                             size_t len) {
#if FASTOPT_HAVE_SIMD_LOOKUPS
  if (quant_by_reciprocal(am)) {
    if (q.lines) return quantize_block_avx512(x, 1.0f / am, *q.lines, q.lut, c, len, Signed);
    if (cpu_has_avx2()) return quantize_block_avx2(x, 1.0f / am, q.lut, c, len, Signed);
  }
#endif
  quantize_codes<Signed>(x, am, q.lut, c, len);
}

// Block b's absmax and the codes of x / absmax. The update loops take the absmax
// as they write each state, as am_bits: the largest |x|, NaN skipped
// (absmax_update), as an integer max of the magnitude bits (magnitude_max: they
// order like the values, NaN's count as 0), which GCC vectorizes with the update;
// a separate pass over the block cost 7-8% of an 8-bit Adam step
// (benchmarks/RESULTS.md, "Session 19").
template <bool Signed>
FASTOPT_LOOP void store_block(const QView& q, size_t b, size_t len, const float* x, int am_bits) {
  const float am = float_of(static_cast<uint32_t>(am_bits));
  q.absmax[b] = am;
  std::uint8_t* c = q.codes + b * kQuantBlock;
  if (am == 0.0f) {   // x = 0 for every element: the code of 0
    const unsigned char zero = quantize_nearest(0.0f, q.qmap);
    for (size_t j = 0; j < len; ++j) c[j] = zero;
    return;
  }
  code_block<Signed>(q, x, am, c, len);
}

// The length of block b of a tensor of n elements.
FASTOPT_LOOP size_t block_len(size_t n, size_t b) {
  const size_t off = b * kQuantBlock;
  return n - off < size_t(kQuantBlock) ? n - off : size_t(kQuantBlock);
}

// The block loops are plain loops, not a lambda per block: a lambda's body is a
// function of its own that GCC may leave un-inlined, compiled once for the
// baseline ISA and called from every clone (it was: no AVX2 code ran).
// P, G: the param's and grad's storage types (float, Bf16, F16 of mixed.h):
// widened on load, the param rounded once on store (identities for float).
template <int WD, typename P, typename G>
FASTOPT_LOOP void adam_q(P* p, const G* g, const QView& m, const QView& v, size_t n,
                         size_t b0, size_t b1, const AdamScalars<float>& s) {
  alignas(64) float mb[kQuantBlock], vb[kQuantBlock];
  for (size_t b = b0; b < b1; ++b) {
    const size_t off = b * kQuantBlock, len = block_len(n, b);
    load_block(m, b, len, mb);
    load_block(v, b, len, vb);
    P* __restrict pp = p + off;
    const G* __restrict gg = g + off;
    float unused = 0.0f;
    int max_m = 0, max_v = 0;   // the new states' absmax bits (store_block)
    for (size_t i = 0; i < len; ++i) {
      float pv = widen(pp[i]);
      adam_element<WD, false>(pv, widen(gg[i]), mb[i], vb[i], unused, s);
      pp[i] = Narrow<P>::rne(pv);
      max_m = magnitude_max(max_m, mb[i]);
      max_v = magnitude_max(max_v, vb[i]);
    }
    store_block<true>(m, b, len, mb, max_m);
    store_block<false>(v, b, len, vb, max_v);
  }
}

template <int WD, int MOM, bool FIRST, typename P, typename G>
FASTOPT_LOOP void sgd_q(P* p, const G* g, const QView& buf, size_t n, size_t b0, size_t b1,
                        const SgdScalars<float>& s) {
  alignas(64) float bb[kQuantBlock];
  for (size_t b = b0; b < b1; ++b) {
    const size_t off = b * kQuantBlock, len = block_len(n, b);
    if (!FIRST) load_block(buf, b, len, bb);
    P* __restrict pp = p + off;
    const G* __restrict gg = g + off;
    int max_buf = 0;
    for (size_t i = 0; i < len; ++i) {
      float pv = widen(pp[i]);
      sgd_element<WD, MOM, FIRST>(pv, widen(gg[i]), bb[i], s);
      pp[i] = Narrow<P>::rne(pv);
      max_buf = magnitude_max(max_buf, bb[i]);
    }
    store_block<true>(buf, b, len, bb, max_buf);
  }
}

template <int WD, bool CEN, bool MOM, typename P, typename G>
FASTOPT_LOOP void rmsprop_q(P* p, const G* g, const QView& sq, const QView& gavg,
                            const QView& buf, size_t n, size_t b0, size_t b1,
                            const RmspropScalars<float>& s) {
  alignas(64) float sb[kQuantBlock], ab[kQuantBlock], bb[kQuantBlock];
  for (size_t b = b0; b < b1; ++b) {
    const size_t off = b * kQuantBlock, len = block_len(n, b);
    load_block(sq, b, len, sb);
    if (CEN) load_block(gavg, b, len, ab);
    if (MOM) load_block(buf, b, len, bb);
    P* __restrict pp = p + off;
    const G* __restrict gg = g + off;
    int max_sq = 0, max_avg = 0, max_buf = 0;
    for (size_t i = 0; i < len; ++i) {
      float pv = widen(pp[i]);
      rmsprop_element<WD, CEN, MOM>(pv, widen(gg[i]), sb[i], ab[i], bb[i], s);
      pp[i] = Narrow<P>::rne(pv);
      max_sq = magnitude_max(max_sq, sb[i]);
      if (CEN) max_avg = magnitude_max(max_avg, ab[i]);
      if (MOM) max_buf = magnitude_max(max_buf, bb[i]);
    }
    store_block<false>(sq, b, len, sb, max_sq);
    if (CEN) store_block<true>(gavg, b, len, ab, max_avg);
    if (MOM) store_block<true>(buf, b, len, bb, max_buf);
  }
}

template <int WD, typename P, typename G>
FASTOPT_LOOP void sgd_q_mode(P* p, const G* g, const QView& q, size_t n, size_t b0,
                             size_t b1, const SgdScalars<float>& s, int mom, bool first) {
  if (mom == 1) first ? sgd_q<WD, 1, true, P, G>(p, g, q, n, b0, b1, s) : sgd_q<WD, 1, false, P, G>(p, g, q, n, b0, b1, s);
  else first ? sgd_q<WD, 2, true, P, G>(p, g, q, n, b0, b1, s) : sgd_q<WD, 2, false, P, G>(p, g, q, n, b0, b1, s);
}

template <int WD, typename P, typename G>
FASTOPT_LOOP void rmsprop_q_mode(P* p, const G* g, const QView& sq, const QView& ga,
                                 const QView& bf, size_t n, size_t b0, size_t b1,
                                 const RmspropScalars<float>& s, bool cen, bool mom) {
  if (cen) mom ? rmsprop_q<WD, true, true, P, G>(p, g, sq, ga, bf, n, b0, b1, s)
               : rmsprop_q<WD, true, false, P, G>(p, g, sq, ga, bf, n, b0, b1, s);
  else mom ? rmsprop_q<WD, false, true, P, G>(p, g, sq, ga, bf, n, b0, b1, s)
           : rmsprop_q<WD, false, false, P, G>(p, g, sq, ga, bf, n, b0, b1, s);
}

// The option dispatch of each kernel, for the FASTOPT_CLONES functions of the
// translation units that instantiate these loops (one per type combination).
template <typename P, typename G>
FASTOPT_LOOP void adam_q_opts(P* p, const G* g, const QView& m, const QView& v, size_t n,
                              size_t b0, size_t b1, const AdamScalars<float>& s, int wd_mode) {
  if (wd_mode == kL2) adam_q<kL2>(p, g, m, v, n, b0, b1, s);
  else if (wd_mode == kDecoupled) adam_q<kDecoupled>(p, g, m, v, n, b0, b1, s);
  else adam_q<kNoDecay>(p, g, m, v, n, b0, b1, s);
}

template <typename P, typename G>
FASTOPT_LOOP void sgd_q_opts(P* p, const G* g, const QView& buf, size_t n, size_t b0, size_t b1,
                             const SgdScalars<float>& s, bool wd, int mom, bool first) {
  wd ? sgd_q_mode<kL2>(p, g, buf, n, b0, b1, s, mom, first)
     : sgd_q_mode<kNoDecay>(p, g, buf, n, b0, b1, s, mom, first);
}

template <typename P, typename G>
FASTOPT_LOOP void rmsprop_q_opts(P* p, const G* g, const QView& sq, const QView& gavg,
                                 const QView& buf, size_t n, size_t b0, size_t b1,
                                 const RmspropScalars<float>& s, bool wd, bool centered,
                                 bool momentum) {
  wd ? rmsprop_q_mode<kL2>(p, g, sq, gavg, buf, n, b0, b1, s, centered, momentum)
     : rmsprop_q_mode<kNoDecay>(p, g, sq, gavg, buf, n, b0, b1, s, centered, momentum);
}

}  // namespace
}  // namespace fastopt
