// Session 11: batch norm's row-layout normalize pass (batchnorm_rows.cpp
// rows_affine_loop) on the Zen 4 host, one thread: the loop as it is (one row
// at a time, 4 coefficient loads per element) against 2 and 4 rows per sweep
// of the columns (the coefficients loaded once per 2 or 4 elements), and a copy.
//   g++ -O3 -std=c++17 -ffp-contract=off -march=x86-64-v4 -Icsrc/include affine_rows.cpp -o /tmp/affine
//   /tmp/affine R W REPEAT
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fastopt/batchnorm.h"
using fastopt::bn_normalize;

static double now() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

__attribute__((noinline)) void rows1(const float* __restrict x, float* __restrict y, size_t R,
                                     size_t W, const float* __restrict mh, const float* __restrict ml,
                                     const float* __restrict sc, const float* __restrict be) {
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < W; ++c)
      y[r * W + c] = bn_normalize(x[r * W + c], mh[c], ml[c], sc[c], be[c]);
}
template <int K>
__attribute__((noinline)) void rowsK(const float* __restrict x, float* __restrict y, size_t R,
                                     size_t W, const float* __restrict mh, const float* __restrict ml,
                                     const float* __restrict sc, const float* __restrict be) {
  size_t r = 0;
  for (; r + K <= R; r += K)
    for (size_t c = 0; c < W; ++c) {
      const float a = mh[c], b = ml[c], s = sc[c], t = be[c];
#pragma GCC unroll 4
      for (int k = 0; k < K; ++k) y[(r + k) * W + c] = bn_normalize(x[(r + k) * W + c], a, b, s, t);
    }
  rows1(x + r * W, y + r * W, R - r, W, mh, ml, sc, be);
}
__attribute__((noinline)) void copy(const float* __restrict x, float* __restrict y, size_t n) {
  std::memcpy(y, x, n * sizeof(float));
}

int main(int argc, char** argv) {
  const size_t R = argc > 1 ? atol(argv[1]) : 488, W = argc > 2 ? atol(argv[2]) : 2048;
  const int rep = argc > 3 ? atoi(argv[3]) : 15;
  const size_t n = R * W;
  std::vector<float> x(n), y(n), mh(W), ml(W), sc(W), be(W);
  for (size_t i = 0; i < n; ++i) x[i] = float(i % 977) * 0.001f;
  for (size_t c = 0; c < W; ++c) mh[c] = 0.5f, ml[c] = 1e-8f, sc[c] = 1.3f, be[c] = 0.1f;
  std::vector<float> ref(n);
  rows1(x.data(), ref.data(), R, W, mh.data(), ml.data(), sc.data(), be.data());
  auto run = [&](const char* name, auto f) {
    std::vector<double> t;
    for (int i = 0; i < rep; ++i) {
      const double t0 = now();
      f();
      t.push_back(now() - t0);
    }
    std::sort(t.begin(), t.end());
    printf("%-22s median %8.1f us  %.3f ns/elem  %s\n", name, t[t.size() / 2] * 1e6,
           t[t.size() / 2] * 1e9 / n, memcmp(y.data(), ref.data(), n * 4) ? "DIFFERENT" : "same bits");
  };
  for (int round = 0; round < 2; ++round) {
    run("copy", [&] { copy(x.data(), y.data(), n); std::memcpy(y.data(), ref.data(), n * 4); });
    run("rows1 (production)", [&] { rows1(x.data(), y.data(), R, W, mh.data(), ml.data(), sc.data(), be.data()); });
    run("rows2", [&] { rowsK<2>(x.data(), y.data(), R, W, mh.data(), ml.data(), sc.data(), be.data()); });
    run("rows4", [&] { rowsK<4>(x.data(), y.data(), R, W, mh.data(), ml.data(), sc.data(), be.data()); });
  }
}
