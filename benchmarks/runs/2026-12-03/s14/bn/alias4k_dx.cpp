// Batch norm's row-layout dx pass (rows_dx: four rows per sweep of the
// columns, reads dy and x, writes dx) with dx at every 256 bytes of its page,
// x and dy at given page offsets. One thread, (R, W) float32, ns per element.
//   g++ -O3 -std=c++17 -ffp-contract=off -march=x86-64-v4 -Icsrc/include alias4k_dx.cpp -o /tmp/alias4k_dx
//   /tmp/alias4k_dx R W XOFF DYOFF
#include <time.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "fastopt/batchnorm.h"
using fastopt::bn_backward_element;

static double now() { timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

__attribute__((noinline)) void rows_dx4(const float* __restrict dy, const float* __restrict x,
                                        float* __restrict dx, size_t R, size_t W,
                                        const float* __restrict mu, const float* __restrict k,
                                        const float* __restrict pj, const float* __restrict md) {
  for (size_t r = 0; r + 4 <= R; r += 4)
    for (size_t c = 0; c < W; ++c) {
      const float a = mu[c], b = k[c], p = pj[c], m = md[c];
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        const size_t i = (r + q) * W + c;
        dx[i] = bn_backward_element(dy[i], x[i], a, b, p, m);
      }
    }
}

int main(int argc, char** argv) {
  const size_t R = atol(argv[1]), W = atol(argv[2]), xo = atol(argv[3]), dyo = atol(argv[4]);
  const size_t n = R * W;
  auto page = [&](size_t off) { return reinterpret_cast<float*>(static_cast<char*>(aligned_alloc(4096, n * 4 + 8192)) + off); };
  float *x = page(xo), *dy = page(dyo);
  char* dxb = static_cast<char*>(aligned_alloc(4096, n * 4 + 8192));
  for (size_t i = 0; i < n; ++i) x[i] = float(i % 977) * 0.001f, dy[i] = float(i % 463) * 0.002f - 0.4f;
  std::vector<float> mu(W, 0.5f), k(W, 1.1f), pj(W, 0.3f), md(W, 0.01f);
  for (size_t off = 0; off < 4096; off += 256) {
    float* dx = reinterpret_cast<float*>(dxb + off);
    std::vector<double> t;
    for (int i = 0; i < 31; ++i) {
      const double t0 = now();
      rows_dx4(dy, x, dx, R, W, mu.data(), k.data(), pj.data(), md.data());
      t.push_back(now() - t0);
    }
    std::sort(t.begin(), t.end());
    printf("x +%zu dy +%zu dx +%4zu: %.3f ns/elem\n", xo, dyo, off, t[15] * 1e9 / n);
  }
}
