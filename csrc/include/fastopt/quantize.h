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

// absmax_update on the magnitude bits (|x| as an int orders like |x|; NaN
// counts as 0 and so never replaces the maximum): m = max(m, bits(|x|)).
FASTOPT_HD int magnitude_max(int m, float x) {
  int u = static_cast<int>(bits_of(x) & 0x7fffffffu);
  u = u > 0x7f800000 ? 0 : u;
  return u > m ? u : m;
}

// What quantizing a block of absmax > 0 maps each value to: x = value times
// the block's float32 reciprocal (rounded once per block, as bitsandbytes'
// kernels do: one division per block, not per element), where 1/absmax is a
// normal float (absmax in [2^-126, 2^126]); outside it, value / absmax.
FASTOPT_HD bool quant_by_reciprocal(float absmax) {
  return absmax >= 0x1p-126f && absmax <= 0x1p126f;
}
FASTOPT_HD float quant_ratio(float value, float absmax, float recip) {
  return quant_by_reciprocal(absmax) ? value * recip : value / absmax;
}

// The code nearest to x (quant_ratio; 0 for a block of absmax 0) in the sorted
// 256-value qmap; ties go to the lower code. i = the last index with
// qmap[i] <= x (0 if none) by 8 halving steps, clamped to 254, moved up when
// qmap[i+1] is strictly nearer.
FASTOPT_HD unsigned char quantize_nearest(float x, const float* qmap) {
  unsigned i = 0;
  for (unsigned step = 128; step != 0; step >>= 1)
    if (qmap[i + step] <= x) i += step;
  if (i > 254) i = 254;
  const bool up = (qmap[i + 1] - x) < (x - qmap[i]);
  return static_cast<unsigned char>(i + (up ? 1 : 0));
}

// The bucket table of quantize_code (fastopt/quantized.py code_table, where
// these constants are mirrored): |x| in binades kLutE0 .. kLutE0 + kLutBinades - 1
// (clamped), top kLutBits mantissa bits; signed maps add a half for x < 0.
constexpr int kLutE0 = 103, kLutBinades = 25;
template <bool Signed>
constexpr int kLutBits = Signed ? 6 : 7;
template <bool Signed>
constexpr int kLutEntries = (Signed ? 2 : 1) * (kLutBinades << kLutBits<Signed>);

// The same code as quantize_nearest for x = quant_ratio(...), absmax > 0, in a
// few integer operations and one table load, no branch (the block loop
// vectorizes, the load becoming a gather): the code is the number of
// thresholds <= x; the entry of x's bucket holds the code at the bucket's
// first x (low 8 bits) and where its one threshold, if any, cuts the bucket's
// low mantissa bits (compared as -low for x < 0, whose codes fall as |x| grows).
template <bool Signed>
FASTOPT_HD unsigned char quantize_code(float x, const int* lut) {
  constexpr int shift = 23 - kLutBits<Signed>;
  constexpr int half = kLutBinades << kLutBits<Signed>;
  const unsigned u = bits_of(x);
  const int a = static_cast<int>(u & 0x7fffffffu);
  const int neg = static_cast<int>(u >> 31);
  int b = (a >> shift) - (kLutE0 << kLutBits<Signed>);
  b = b < 0 ? 0 : b;
  b = b > half - 1 ? half - 1 : b;
  const int low = a & ((1 << shift) - 1);
  const int e = lut[Signed ? b + neg * half : b];
  const int l = neg ? -low : low;
  int code = (e & 255) + ((l > (e >> 8)) ? 1 : 0);
  const bool keep = (x == x) && (Signed || !neg);  // NaN: code 0; unsigned x < 0: code 0
  return static_cast<unsigned char>(keep ? code : 0);
}

}  // namespace fastopt
