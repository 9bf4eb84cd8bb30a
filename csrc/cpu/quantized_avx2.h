// AVX2 gather loops of the 8-bit steps (quantized_avx2.cpp), used by the block
// loops of quantized_kernels.cpp when the CPU has AVX2 (cpu_has_avx2()).
#pragma once
#include <cstddef>
#include <cstdint>

#include "isa.h"

#if FASTOPT_X86_GCC
#define FASTOPT_HAVE_AVX2_GATHERS 1
namespace fastopt {
// out[i] = qmap[c[i]] * am
void dequantize_block_avx2(const std::uint8_t* c, float am, const float* qmap, float* out,
                           std::size_t len);
// c[i] = quantize_code<is_signed>(x[i] * recip, lut), recip = 1 / absmax
// (quant_by_reciprocal(absmax) holds)
void quantize_block_avx2(const float* x, float recip, const int* lut, std::uint8_t* c,
                         std::size_t len, bool is_signed);
}  // namespace fastopt
#else
#define FASTOPT_HAVE_AVX2_GATHERS 0
#endif
