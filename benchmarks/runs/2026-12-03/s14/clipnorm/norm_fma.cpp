// The float32 L2 norm loop with a multiply and an add per four lanes (26f852e)
// against one FMA (this session), and a float32 sum, one thread, on a 256 KiB
// array (in L2) summed REPEAT times. Bits of the two double loops compared.
//   g++ -std=c++17 -O3 -march=x86-64-v3 -ffp-contract=off norm_fma.cpp -o norm_fma && ./norm_fma
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>
#include <algorithm>

template <bool FMA>
__attribute__((noipa)) double l2(const float* g, size_t n) {
  __m256d v[8];
  for (int k = 0; k < 8; ++k) v[k] = _mm256_setzero_pd();
  for (size_t i = 0; i + 32 <= n; i += 32) {
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m256d d = _mm256_cvtps_pd(_mm_loadu_ps(g + i + 4 * k));
      if constexpr (FMA) v[k] = _mm256_fmadd_pd(d, d, v[k]);
      else v[k] = _mm256_add_pd(v[k], _mm256_mul_pd(d, d));
    }
  }
  double a[32];
  for (int k = 0; k < 8; ++k) _mm256_storeu_pd(a + 4 * k, v[k]);
  for (int w = 16; w > 0; w /= 2) for (int j = 0; j < w; ++j) a[j] += a[j + w];
  return a[0];
}

__attribute__((noipa)) float f32sum(const float* g, size_t n) {
  __m256 v[4];
  for (int k = 0; k < 4; ++k) v[k] = _mm256_setzero_ps();
  for (size_t i = 0; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k) v[k] = _mm256_add_ps(v[k], _mm256_loadu_ps(g + i + 8 * k));
  float a[32];
  for (int k = 0; k < 4; ++k) _mm256_storeu_ps(a + 8 * k, v[k]);
  float s = 0; for (float x : a) s += x; return s;
}

int main() {
  const size_t n = 1 << 16, repeat = 153;  // 10^7 elements per run
  std::vector<float> g(n);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (auto& x : g) x = nd(rng);
  for (float scale : {1e-30f, 1.0f, 1e30f}) {
    std::vector<float> h(g);
    for (auto& x : h) x *= scale;
    double a = l2<false>(h.data(), n), b = l2<true>(h.data(), n);
    std::printf("scale %g: mul+add and fma bits %s\n", scale,
                std::memcmp(&a, &b, 8) == 0 ? "equal" : "DIFFER");
  }
  auto time = [&](auto f) {
    std::vector<double> ms;
    volatile double sink = 0;
    for (int r = 0; r < 15; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      for (size_t k = 0; k < repeat; ++k) sink = sink + f();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[7];
  };
  for (int round = 0; round < 3; ++round)
    std::printf("round %d, ms per 10^7 floats (median of 15): mul+add %.3f  fma %.3f  f32 sum %.3f\n", round,
                time([&] { return l2<false>(g.data(), n); }), time([&] { return l2<true>(g.data(), n); }),
                time([&] { return double(f32sum(g.data(), n)); }));
}
