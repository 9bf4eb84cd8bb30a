#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <cstring>
#include "batchnorm_layout.h"
using namespace fastopt::bn;
using clk = std::chrono::steady_clock;
typedef float VF __attribute__((vector_size(32)));
template <int K, int RG>
__attribute__((target("avx2,fma"), noinline)) void sums(const float* dy, const float* x, size_t R, size_t W, const float* mean, double* s1, double* s2) {
  for (size_t c = 0; c < W; ++c) s1[c] = s2[c] = 0.0;
  for (size_t r0 = 0; r0 < R; r0 += RG) {
    size_t r1 = std::min(R, r0 + RG);
    for (size_t c0 = 0; c0 < W; c0 += 8 * K) {
      VF m[K], a[K] = {}, b[K] = {};
#pragma GCC unroll 16
      for (int k = 0; k < K; ++k) std::memcpy(&m[k], mean + c0 + 8 * k, 32);
      for (size_t r = r0; r < r1; ++r) {
#pragma GCC unroll 16
        for (int k = 0; k < K; ++k) { VF g, v; std::memcpy(&g, dy + r * W + c0 + 8 * k, 32); std::memcpy(&v, x + r * W + c0 + 8 * k, 32); a[k] += g; b[k] += g * (v - m[k]); }
      }
      float t[8 * K], u[8 * K];
#pragma GCC unroll 16
      for (int k = 0; k < K; ++k) { std::memcpy(t + 8 * k, &a[k], 32); std::memcpy(u + 8 * k, &b[k], 32); }
      for (int c = 0; c < 8 * K; ++c) { s1[c0 + c] += t[c]; s2[c0 + c] += u[c]; }
    }
  }
}
__attribute__((target("avx2,fma"), noinline)) float read2(const float* x, const float* y, size_t n) {
  VF a[8] = {};
  for (size_t i = 0; i + 32 <= n; i += 32) for (int k = 0; k < 4; ++k) { VF v, w; std::memcpy(&v, x + i + 8 * k, 32); std::memcpy(&w, y + i + 8 * k, 32); a[k] += v; a[k + 4] += w; }
  float s = 0; for (int k = 0; k < 8; ++k) for (int l = 0; l < 8; ++l) s += a[k][l]; return s;
}
int main(int argc, char** argv) {
  size_t R = atol(argv[1]), W = 2048; int reps = atoi(argv[2]); (void)argc;
  std::vector<float> x(R * W), dy(R * W), dx(R * W), mean(W, 3.5f), k(W, 1.f);
  for (auto& v : x) v = float(rand()) / RAND_MAX + 3.0f;
  for (auto& v : dy) v = float(rand()) / RAND_MAX - 0.5f;
  std::vector<double> s1(W), s2(W);
  double best[5] = {1e9, 1e9, 1e9, 1e9, 1e9}; volatile float sink = 0;
  for (int it = 0; it < reps; ++it) {
    auto t0 = clk::now(); rows_sums(dy.data(), x.data(), dx.data(), R, W, W, mean.data(), k.data(), false, s1.data(), s2.data());
    auto t1 = clk::now(); sums<4, 8>(dy.data(), x.data(), R, W, mean.data(), s1.data(), s2.data());
    auto t2 = clk::now(); sums<4, 4>(dy.data(), x.data(), R, W, mean.data(), s1.data(), s2.data());
    auto t3 = clk::now(); sink = sink + read2(dy.data(), x.data(), R * W);
    auto t4 = clk::now(); sums<2, 4>(dy.data(), x.data(), R, W, mean.data(), s1.data(), s2.data());
    auto t5 = clk::now();
    best[0] = std::min(best[0], std::chrono::duration<double>(t1 - t0).count());
    best[1] = std::min(best[1], std::chrono::duration<double>(t2 - t1).count());
    best[2] = std::min(best[2], std::chrono::duration<double>(t3 - t2).count());
    best[3] = std::min(best[3], std::chrono::duration<double>(t4 - t3).count());
    best[4] = std::min(best[4], std::chrono::duration<double>(t5 - t4).count());
  }
  double n = double(R * W);
  printf("R=%zu ns/elem: rows_sums %.3f sums<4,8> %.3f sums<4,4> %.3f read2 %.3f sums<2,4> %.3f\n", R, best[0] / n * 1e9, best[1] / n * 1e9, best[2] / n * 1e9, best[3] / n * 1e9, best[4]/n*1e9);
}
