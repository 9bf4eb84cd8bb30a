// Vector loops of the 8-bit block loops (quantized_loops.h), written with
// intrinsics because GCC, tuned generically, emulates table lookups element by
// element. Each computes exactly dequantize_code / quantize_code of
// csrc/include/fastopt/quantize.h, bit for bit, and runs only where the CPU has
// its instructions: the AVX2 loops (quantized_avx2.cpp) when cpu_has_avx2(),
// the AVX-512 VBMI loop (quantized_avx512.cpp) when cpu_has_avx512_vbmi().
#pragma once
#include <cstddef>
#include <cstdint>

#include "isa.h"

#if FASTOPT_X86_GCC
#define FASTOPT_HAVE_SIMD_LOOKUPS 1
namespace fastopt {
// out[i] = qmap[c[i]] * am
void dequantize_block_avx2(const std::uint8_t* c, float am, const float* qmap, float* out,
                           std::size_t len);
// c[i] = quantize_code<is_signed>(x[i] * recip, lut), recip = 1 / absmax
// (quant_by_reciprocal(absmax) holds)
void quantize_block_avx2(const float* x, float recip, const int* lut, std::uint8_t* c,
                         std::size_t len, bool is_signed);

// The map's bytes by plane: planes[256 * k + c] = byte k (least significant
// first) of qmap[c]'s bits; kMapPlaneBytes of them.
constexpr std::size_t kMapPlaneBytes = 1024;
void map_byte_planes(const float* qmap, std::uint8_t* planes);
// out[i] = qmap[c[i]] * am, qmap given by its byte planes
void dequantize_block_vbmi(const std::uint8_t* c, float am, const std::uint8_t* planes,
                           float* out, std::size_t len);

// The code of x without a table load, for the dynamic maps (quantized_avx512.cpp):
// the binade of |x| gives its decade region, the region a line whose floor counts
// the thresholds below |x|. Lanes near a threshold or a region boundary, where the
// line's rounding could differ from the search, take quantize_code.
struct CodeLines {
  alignas(64) float bound[32];   // the region boundary inside binade e0 + k, else +inf
  alignas(64) int region[32];    // the region (+1) at the start of binade e0 + k
  alignas(64) float slope[16], offset[16];
  alignas(64) int cap[16];       // the last count of the region
  int e0, zero;                  // first binade; the code of 0
};
// Builds the lines of qmap; false where qmap is not a dynamic map (fastopt/quantized.py
// dynamic_map): then the AVX2 bucket-table loop codes it.
bool code_lines_of(const float* qmap, CodeLines* lines);
// c[i] = quantize_code<is_signed>(x[i] * recip, lut) (recip as quantize_block_avx2)
void quantize_block_avx512(const float* x, float recip, const CodeLines& lines, const int* lut,
                           std::uint8_t* c, std::size_t len, bool is_signed);
}  // namespace fastopt
#else
#define FASTOPT_HAVE_SIMD_LOOKUPS 0
#endif
