#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cstring>
#include <algorithm>
#include "fastopt/clipping.h"
using namespace fastopt;
using clk = std::chrono::steady_clock;
typedef float VF __attribute__((vector_size(32)));
constexpr int kLanes = 32;
__attribute__((target("avx2,fma"), noinline)) double norm_d(const float* __restrict g, size_t n) {
  double acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = 0.0;
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] = norm_accumulate<kNormL2>(acc[j], g[i + j], 2.0);
  for (int w = kLanes / 2; w > 0; w /= 2) for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}
// float runs: RUN vectors of 32 floats summed in float, then flushed to double lanes
template <int RUN>
__attribute__((target("avx2,fma"), noinline)) double norm_f(const float* __restrict g, size_t n) {
  double acc[32] = {};
  size_t i = 0;
  for (; i + 32 * RUN <= n; i += 32 * RUN) {
    VF a[4] = {};
#ifdef PF
    for (int l = 0; l < 32 * RUN; l += 16) __builtin_prefetch(g + i + PF + l);
#endif
    for (int r = 0; r < RUN; ++r)
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) { VF v; std::memcpy(&v, g + i + 32 * r + 8 * k, 32); a[k] += v * v; }
    float t[32]; std::memcpy(t, a, 128);
    for (int j = 0; j < 32; ++j) acc[j] += t[j];
  }
  for (int w = 16; w > 0; w /= 2) for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}
__attribute__((target("avx2,fma"), noinline)) float readk(const float* x, size_t n) {
  VF a[8] = {};
  for (size_t i = 0; i + 64 <= n; i += 64) for (int k = 0; k < 8; ++k) { VF v; std::memcpy(&v, x + i + 8 * k, 32); a[k] += v; }
  float s = 0; for (int k = 0; k < 8; ++k) for (int l = 0; l < 8; ++l) s += a[k][l]; return s;
}
__attribute__((target("avx2,fma"), noinline)) void scalek(float* __restrict x, size_t n, float c) {
  for (size_t i = 0; i < n; ++i) scale_element(x[i], c);
}
int main(int, char** argv) {
  size_t n = atol(argv[1]); int reps = atoi(argv[2]);
  std::vector<float> g(n); for (auto& v : g) v = float(rand()) / RAND_MAX - 0.5f;
  double best[5] = {1e9, 1e9, 1e9, 1e9, 1e9}; volatile double sink = 0;
  for (int it = 0; it < reps; ++it) {
    auto t0 = clk::now(); sink = sink + norm_d(g.data(), n);
    auto t1 = clk::now(); sink = sink + norm_f<4>(g.data(), n);
    auto t2 = clk::now(); sink = sink + readk(g.data(), n);
    auto t3 = clk::now(); scalek(g.data(), n, 1.0f);
    auto t4 = clk::now(); sink = sink + norm_f<16>(g.data(), n);
    auto t5 = clk::now();
    auto d = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    best[0] = std::min(best[0], d(t0, t1)); best[1] = std::min(best[1], d(t1, t2));
    best[2] = std::min(best[2], d(t2, t3)); best[3] = std::min(best[3], d(t3, t4)); best[4] = std::min(best[4], d(t4, t5));
  }
  printf("n=%zu ns/elem: norm_double %.3f norm_f4 %.3f read %.3f scale %.3f norm_f16 %.3f\n", n, best[0] / n * 1e9, best[1] / n * 1e9, best[2] / n * 1e9, best[3] / n * 1e9, best[4] / n * 1e9);
}
