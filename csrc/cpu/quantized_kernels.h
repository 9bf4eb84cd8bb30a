// Block loops of the 8-bit optimizer steps (fastopt/quantized.py): each block
// of 256 is dequantized into a local buffer, updated with the float32
// per-element maths of fastopt/optim.h and re-quantized, in one pass.
#pragma once
#include <cstddef>
#include <cstdint>

#include "fastopt/optim.h"

namespace fastopt {

struct CodeLines;   // quantized_simd.h

struct QView {
  std::uint8_t* codes;
  float* absmax;
  const float* qmap;
  const int* lut;  // code_table of qmap (fastopt/quantized.py)
  // qmap's byte planes (quantized_simd.h map_byte_planes) where the CPU runs
  // the VBMI lookup (cpu_has_avx512_vbmi()), else nullptr
  const std::uint8_t* planes;
  // qmap's lines (quantized_simd.h CodeLines) where the CPU runs the AVX-512 coding
  // loop and qmap is a dynamic map, else nullptr
  const CodeLines* lines;
};

// c[i] = the code of x[i] / absmax, absmax > 0, as the steps write it (the
// loops of quantized_loops.h store_block); for tests of those loops.
void quantize_codes_range(const QView& q, bool is_signed, const float* x, float absmax,
                          std::uint8_t* c, std::size_t len);

// One tensor's param and grad, of storage types p_type / g_type (mixed.h's
// Storage: kF32, or kBF16 / kF16 with a grad of the param's type or kF32).
struct QTensor {
  void* p;
  const void* g;
  int p_type, g_type;
};

// Blocks [b0, b1) of one tensor of n elements.
void adam_q_range(QTensor t, QView m, QView v, std::size_t n, std::size_t b0, std::size_t b1,
                  const AdamScalars<float>& s, int wd_mode);
void sgd_q_range(QTensor t, QView buf, std::size_t n, std::size_t b0, std::size_t b1,
                 const SgdScalars<float>& s, bool wd, int mom, bool first);
void rmsprop_q_range(QTensor t, QView sq, QView gavg, QView buf, std::size_t n, std::size_t b0,
                     std::size_t b1, const RmspropScalars<float>& s, bool wd, bool centered,
                     bool momentum);

// The same for a 16-bit param (quantized_half.cpp), called by the above.
void adam_q_range_half(QTensor t, QView m, QView v, std::size_t n, std::size_t b0,
                       std::size_t b1, const AdamScalars<float>& s, int wd_mode);
void sgd_q_range_half(QTensor t, QView buf, std::size_t n, std::size_t b0, std::size_t b1,
                      const SgdScalars<float>& s, bool wd, int mom, bool first);
void rmsprop_q_range_half(QTensor t, QView sq, QView gavg, QView buf, std::size_t n,
                          std::size_t b0, std::size_t b1, const RmspropScalars<float>& s,
                          bool wd, bool centered, bool momentum);

}  // namespace fastopt
