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
__attribute__((target("avx2,fma"), noinline)) void copyk(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; i += 8) { VF v; std::memcpy(&v, x + i, 32); v = v * 1.0001f; std::memcpy(y + i, &v, 32); }
}
// interleaved constants: per 8 columns [hi8 lo8 sc8 be8]
__attribute__((target("avx2,fma"), noinline)) void aff_il(const float* x, float* y, size_t R, size_t W, const float* k) {
  for (size_t r = 0; r < R; ++r) {
    const float* __restrict xr = x + r * W; float* __restrict yr = y + r * W;
    for (size_t c = 0; c < W; c += 8) {
      VF v, h, l, s, b; std::memcpy(&v, xr + c, 32); const float* kk = k + 4 * c;
      std::memcpy(&h, kk, 32); std::memcpy(&l, kk + 8, 32); std::memcpy(&s, kk + 16, 32); std::memcpy(&b, kk + 24, 32);
      v = ((v - h) - l) * s + b; std::memcpy(yr + c, &v, 32);
    }
  }
}
// 3 constants: (x - hi) * scale + (beta - lo*scale)
__attribute__((target("avx2,fma"), noinline)) void aff3(const float* x, float* y, size_t R, size_t W, const float* h, const float* s, const float* b) {
  for (size_t r = 0; r < R; ++r) {
    const float* __restrict xr = x + r * W; float* __restrict yr = y + r * W;
    for (size_t c = 0; c < W; ++c) yr[c] = (xr[c] - h[c]) * s[c] + b[c];
  }
}
int main(int argc, char** argv) {
  size_t R = atol(argv[1]), W = 2048; int reps = atoi(argv[2]); (void)argc;
  std::vector<float> x(R * W), y(R * W), hi(W, 3.5f), lo(W, 1e-7f), sc(W, 1.1f), be(W, 0.2f), k(4 * W, 1.0f);
  for (auto& v : x) v = float(rand()) / RAND_MAX + 3.0f;
  double best[4] = {1e9, 1e9, 1e9, 1e9};
  for (int it = 0; it < reps; ++it) {
    auto t0 = clk::now(); rows_affine(x.data(), y.data(), R, W, W, hi.data(), lo.data(), sc.data(), be.data());
    auto t1 = clk::now(); copyk(x.data(), y.data(), R * W);
    auto t2 = clk::now(); aff_il(x.data(), y.data(), R, W, k.data());
    auto t3 = clk::now(); aff3(x.data(), y.data(), R, W, hi.data(), sc.data(), be.data());
    auto t4 = clk::now();
    best[0] = std::min(best[0], std::chrono::duration<double>(t1 - t0).count());
    best[1] = std::min(best[1], std::chrono::duration<double>(t2 - t1).count());
    best[2] = std::min(best[2], std::chrono::duration<double>(t3 - t2).count());
    best[3] = std::min(best[3], std::chrono::duration<double>(t4 - t3).count());
  }
  double n = double(R * W);
  printf("R=%zu ns/elem: rows_affine %.3f copy %.3f interleaved %.3f three %.3f\n", R, best[0] / n * 1e9, best[1] / n * 1e9, best[2] / n * 1e9, best[3] / n * 1e9);
}
