#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <cstring>
#include "batchnorm_layout.h"
using namespace fastopt::bn;
using clk = std::chrono::steady_clock;
__attribute__((target("avx2,fma"), noinline)) void simple(const float* x, size_t R, size_t W, double* s64, double* q64, float* acc) {
  // row-major: per-column float accumulators in L1 (acc[2W]), flush every 8 rows
  for (size_t c = 0; c < W; ++c) s64[c] = q64[c] = 0.0;
  for (size_t r0 = 0; r0 < R; r0 += 8) {
    size_t r1 = std::min(R, r0 + 8);
    std::memset(acc, 0, 2 * W * sizeof(float));
    for (size_t r = r0; r < r1; ++r) {
      const float* __restrict xr = x + r * W;
      float* __restrict a = acc; float* __restrict q = acc + W;
      for (size_t c = 0; c < W; ++c) { float v = xr[c]; a[c] += v; q[c] += v * v; }
    }
    for (size_t c = 0; c < W; ++c) { s64[c] += acc[c]; q64[c] += acc[W + c]; }
  }
}
__attribute__((target("avx2,fma"), noinline)) float readonly(const float* x, size_t n) {
  typedef float V __attribute__((vector_size(32)));
  V a[8] = {};
  for (size_t i = 0; i + 64 <= n; i += 64) for (int k = 0; k < 8; ++k) { V v; std::memcpy(&v, x + i + 8 * k, 32); a[k] += v; }
  float s = 0; for (int k = 0; k < 8; ++k) for (int l = 0; l < 8; ++l) s += a[k][l]; return s;
}
#include "shifted.h"
int main(int argc, char** argv) {
  size_t R = atol(argv[1]), W = 2048; int reps = atoi(argv[2]);
  std::vector<float> x(R * W); for (auto& v : x) v = float(rand()) / RAND_MAX + 3.0f;
  std::vector<double> mean(W), m2(W), ts(W), tq(W); std::vector<float> approx(W), acc(2 * W);
  double best[5] = {1e9, 1e9, 1e9,1e9,1e9}; std::vector<float> sh(W, 3.5f), acc2(2*W); volatile float sink = 0;
  for (int k = 0; k < reps; ++k) {
    auto t0 = clk::now(); rows_moments(x.data(), R, W, W, mean.data(), m2.data(), ts.data(), tq.data(), approx.data());
    auto t1 = clk::now(); simple(x.data(), R, W, ts.data(), tq.data(), acc.data());
    auto t2 = clk::now(); sink = sink + readonly(x.data(), R * W);
    auto t3 = clk::now(); shifted(x.data(), R, W, W, sh.data(), ts.data(), tq.data(), acc2.data());
    auto t4 = clk::now(); VARIANT;
    auto t5 = clk::now();
    best[3] = std::min(best[3], std::chrono::duration<double>(t4 - t3).count());
    best[4] = std::min(best[4], std::chrono::duration<double>(t5 - t4).count());
    best[0] = std::min(best[0], std::chrono::duration<double>(t1 - t0).count());
    best[1] = std::min(best[1], std::chrono::duration<double>(t2 - t1).count());
    best[2] = std::min(best[2], std::chrono::duration<double>(t3 - t2).count());
  }
  double n = double(R * W);
  printf("R=%zu (%.1f MB) ns/elem: rows_moments %.3f  simple %.3f  read %.3f shifted %.3f variant %.3f\n", R, n * 4 / 1e6, best[0] / n * 1e9, best[1] / n * 1e9, best[2] / n * 1e9, best[3]/n*1e9, best[4]/n*1e9);
}
