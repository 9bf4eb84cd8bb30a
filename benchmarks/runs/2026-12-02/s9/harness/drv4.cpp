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
__attribute__((target("avx2,fma"), noinline)) void twin3(const float* x, const float* y, float* z, size_t n) {
  for (size_t i = 0; i < n; i += 8) { VF v, w; std::memcpy(&v, x + i, 32); std::memcpy(&w, y + i, 32); v = v + w; std::memcpy(z + i, &v, 32); }
}
int main(int argc, char** argv) {
  size_t R = atol(argv[1]), W = 2048; int reps = atoi(argv[2]); (void)argc;
  std::vector<float> x(R * W), dy(R * W), dx(R * W), m(W, 3.5f), k(W, 1.1f), p(W, 0.3f), md(W, 0.01f);
  for (auto& v : x) v = float(rand()) / RAND_MAX + 3.0f;
  for (auto& v : dy) v = float(rand()) / RAND_MAX - 0.5f;
  double best[2] = {1e9, 1e9};
  for (int it = 0; it < reps; ++it) {
    auto t0 = clk::now(); rows_dx(dy.data(), x.data(), dx.data(), R, W, W, m.data(), k.data(), p.data(), md.data());
    auto t1 = clk::now(); twin3(dy.data(), x.data(), dx.data(), R * W);
    auto t2 = clk::now();
    best[0] = std::min(best[0], std::chrono::duration<double>(t1 - t0).count());
    best[1] = std::min(best[1], std::chrono::duration<double>(t2 - t1).count());
  }
  double n = double(R * W);
  printf("R=%zu ns/elem: rows_dx %.3f twin %.3f\n", R, best[0] / n * 1e9, best[1] / n * 1e9);
}
