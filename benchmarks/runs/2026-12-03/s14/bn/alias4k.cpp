// Batch norm's row-layout normalize pass (four rows per sweep of the columns,
// as batchnorm_rows.cpp's rows_affine_loop since session 11) with y placed at
// several offsets from x modulo 4 KiB: rows are W*4 = 8 KiB apart, so the
// load of row r+1 has the low 12 address bits of the store just made to row r
// when x and y are equally aligned (4K aliasing). One thread, (R, W) float32.
//   g++ -O3 -std=c++17 -ffp-contract=off -march=x86-64-v4 -Icsrc/include alias4k.cpp -o /tmp/alias4k
//   /tmp/alias4k R W REPEAT
#include <time.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "fastopt/batchnorm.h"
using fastopt::bn_normalize;

static double now() { timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

__attribute__((noinline)) void rows4(const float* __restrict x, float* __restrict y, size_t R, size_t W,
                                     const float* __restrict mh, const float* __restrict ml,
                                     const float* __restrict sc, const float* __restrict be) {
  for (size_t r = 0; r + 4 <= R; r += 4)
    for (size_t c = 0; c < W; ++c) {
      const float a = mh[c], b = ml[c], s = sc[c], t = be[c];
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) y[(r + k) * W + c] = bn_normalize(x[(r + k) * W + c], a, b, s, t);
    }
}
// The same, the four rows' x loaded before any of their y is stored.
__attribute__((noinline)) void rows4_loads_first(const float* __restrict x, float* __restrict y, size_t R,
                                                 size_t W, const float* __restrict mh,
                                                 const float* __restrict ml,
                                                 const float* __restrict sc,
                                                 const float* __restrict be) {
  for (size_t r = 0; r + 4 <= R; r += 4)
    for (size_t c = 0; c < W; ++c) {
      const float a = mh[c], b = ml[c], s = sc[c], t = be[c];
      float v[4];
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) v[k] = x[(r + k) * W + c];
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) y[(r + k) * W + c] = bn_normalize(v[k], a, b, s, t);
    }
}
__attribute__((noinline)) void twin(const float* __restrict x, float* __restrict y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = x[i] * 1.5f;
}

int main(int argc, char** argv) {
  const size_t R = argc > 1 ? atol(argv[1]) : 256, W = argc > 2 ? atol(argv[2]) : 2048;
  const int rep = argc > 3 ? atoi(argv[3]) : 41;
  const size_t n = R * W;
  char* xb = static_cast<char*>(aligned_alloc(4096, n * 4 + 8192));
  char* yb = static_cast<char*>(aligned_alloc(4096, n * 4 + 8192));
  float* x = reinterpret_cast<float*>(xb + 16);  // numpy's large arrays: page + 16 bytes
  for (size_t i = 0; i < n; ++i) x[i] = float(i % 977) * 0.001f;
  std::vector<float> mh(W, 0.5f), ml(W, 1e-8f), sc(W, 1.3f), be(W, 0.1f);
  auto med = [&](auto f) {
    std::vector<double> t;
    for (int i = 0; i < rep; ++i) { const double t0 = now(); f(); t.push_back(now() - t0); }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2] * 1e9 / n;
  };
  for (int round = 0; round < 2; ++round)
    for (size_t off : {16, 0, 80, 528, 2064}) {   // y - page start, bytes (x is at +16)
      float* y = reinterpret_cast<float*>(yb + off);
      const double a = med([&] { rows4(x, y, R, W, mh.data(), ml.data(), sc.data(), be.data()); });
      const double b = med([&] { twin(x, y, n); });
      std::vector<float> ref(y, y + n);
      const double c = med([&] { rows4_loads_first(x, y, R, W, mh.data(), ml.data(), sc.data(), be.data()); });
      rows4(x, y, R, W, mh.data(), ml.data(), sc.data(), be.data());
      printf("R=%zu W=%zu y at page+%4zu (x at +16): rows4 %.3f ns/elem  loads first %.3f  twin %.3f\n", R, W, off, a, c, b);
    }
}
