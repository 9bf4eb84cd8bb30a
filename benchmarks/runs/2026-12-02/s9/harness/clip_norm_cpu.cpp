#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cstring>
#include <algorithm>
#include "clipping_kernels.h"
#include "parallel.h"
using namespace fastopt;
using clk = std::chrono::steady_clock;
typedef float VF __attribute__((vector_size(32)));
__attribute__((target("avx2,fma"), noinline)) float readk(const float* x, size_t n) {
  VF a[8] = {};
  for (size_t i = 0; i + 64 <= n; i += 64) for (int k = 0; k < 8; ++k) { VF v; std::memcpy(&v, x + i + 8 * k, 32); a[k] += v; }
  float s = 0; for (int k = 0; k < 8; ++k) for (int l = 0; l < 8; ++l) s += a[k][l]; return s;
}
int main(int, char** argv) {
  size_t n = atol(argv[1]); int reps = atoi(argv[2]);
  set_num_threads(atoi(argv[3]));
  std::vector<float> g(n); for (auto& v : g) v = float(rand()) / RAND_MAX - 0.5f;
  GradList<float> l; l.ptrs.push_back({g.data()}); l.sizes.push_back(n);
  double best[2] = {1e9, 1e9}; volatile double sink = 0;
  for (int it = 0; it < reps; ++it) {
    auto t0 = clk::now(); sink = sink + norm_cpu(l, kNormL2, 2.0);
    auto t1 = clk::now();
    { std::vector<float> part(64); parallel_for(n / 64, 1024, [&](size_t b, size_t e) { part[b * 16 / (n / 64) ] = readk(g.data() + b * 64, (e - b) * 64); }); sink = sink + part[0]; }
    auto t2 = clk::now();
    auto d = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    best[0] = std::min(best[0], d(t0, t1)); best[1] = std::min(best[1], d(t1, t2));
  }
  printf("n=%zu ns/elem: norm_cpu %.3f read(pool) %.3f\n", n, best[0] / n * 1e9, best[1] / n * 1e9);
}
