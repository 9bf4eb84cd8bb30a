// Per-element maths of 8-bit block-wise optimizer state (Dettmers et al.
// 2022; docs/quantized-state.md): the one C++ statement of dequantizing a
// code, a block's absmax and the nearest-code search, included by the CPU
// loops (csrc/cpu/quantized_kernels.cpp) and the CUDA kernel
// (csrc/cuda/quantized.cu). The NumPy reference
// (fastopt/backends/numpy/quantized.py) states the same comparison sequence,
// so every backend picks the same code bit for bit.
#pragma once
#include "fastopt/common.h"

namespace fastopt {

constexpr int kQuantBlock = 256;  // elements per absmax

// A state's value: qmap[code] * absmax of its block.
FASTOPT_HD float dequantize_code(unsigned char code, float absmax, const float* qmap) {
  return qmap[code] * absmax;
}

// Running block absmax: NaN never replaces the current maximum.
FASTOPT_HD float absmax_update(float am, float x) {
  const float a = x < 0.0f ? -x : x;
  return a > am ? a : am;
}

// The code nearest to x / absmax in the sorted 256-value qmap; ties go to the
// lower code. i = the last index with qmap[i] <= x (0 if none) by 8 halving
// steps, clamped to 254, moved up when qmap[i+1] is strictly nearer.
FASTOPT_HD unsigned char quantize_nearest(float value, float absmax, const float* qmap) {
  const float x = absmax == 0.0f ? 0.0f : value / absmax;
  unsigned i = 0;
  for (unsigned step = 128; step != 0; step >>= 1)
    if (qmap[i + step] <= x) i += step;
  if (i > 254) i = 254;
  const bool up = (qmap[i + 1] - x) < (x - qmap[i]);
  return static_cast<unsigned char>(i + (up ? 1 : 0));
}

// The same code as quantize_nearest for x = value / absmax with absmax > 0,
// found faster and branch-free (so the block loop vectorizes): lut
// (fastopt/quantized.py search_table) gives for the top 14 bits of x's order
// key a start index no greater than the search's i and at most 3 below it;
// 4 compare-steps reach i. qmap must be followed by +inf (qmap[256]).
FASTOPT_HD unsigned char quantize_nearest_lut(float value, float absmax, const float* qmap,
                                              const int* lut) {
  const float x = value / absmax;
  unsigned u;
  __builtin_memcpy(&u, &x, sizeof u);
  const unsigned key = u ^ (static_cast<unsigned>(static_cast<int>(u) >> 31) | 0x80000000u);
  int i = lut[key >> 18];
  i += qmap[i + 1] <= x;
  i += qmap[i + 1] <= x;
  i += qmap[i + 1] <= x;
  i += qmap[i + 1] <= x;
  i &= -static_cast<int>(x == x);  // NaN: the search's i, 0
  i = i < 254 ? i : 254;
  i += (qmap[i + 1] - x) < (x - qmap[i]);
  return static_cast<unsigned char>(i);
}

}  // namespace fastopt
