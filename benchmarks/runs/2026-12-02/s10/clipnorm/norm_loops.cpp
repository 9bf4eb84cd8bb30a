// Stand-alone float32 L2-norm loops (issue 17, session 10). cur: the generic loop as GCC
// vectorizes it; ld128: the AVX2 loop of csrc/cpu/clipping_kernels.cpp without its prefetch;
// pfD: with a prefetch D floats ahead; f32: a float32 sum (the twin's loop); run4/vext: leads.
// g++ -O3 -march=x86-64-v3 -ffp-contract=off -pthread [-DPREFETCH_SET] norm_loops.cpp
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>
#include <algorithm>
#include <cstring>
#include <immintrin.h>
using namespace std;
constexpr int L = 32;
__attribute__((noinline)) double v_cur(const float* __restrict g, size_t n) {
  double acc[L] = {};
  size_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) { double a = g[i + j]; a = a < 0 ? -a : a; acc[j] = acc[j] + a * a; }
  for (int j = 0; i < n; ++i, ++j) { double a = g[i]; acc[j] += a * a; }
  for (int w = L / 2; w > 0; w /= 2) for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}
__attribute__((noinline)) double v_fsq(const float* __restrict g, size_t n) {
  double acc[L] = {};
  size_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) { float s = g[i + j] * g[i + j]; acc[j] = acc[j] + double(s); }
  for (int j = 0; i < n; ++i, ++j) { double a = g[i]; acc[j] += a * a; }
  for (int w = L / 2; w > 0; w /= 2) for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}
__attribute__((noinline)) double v_f32(const float* __restrict g, size_t n) {
  float acc[L] = {};
  size_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) acc[j] = acc[j] + g[i + j];
  double t = 0; for (int j = 0; j < L; ++j) t += acc[j];
  for (; i < n; ++i) t += g[i];
  return t;
}
// intrinsics: 4 ymm double accumulators pairs, one load per 8 floats
__attribute__((noinline)) double v_intr(const float* __restrict g, size_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 x0 = _mm256_loadu_ps(g + i), x1 = _mm256_loadu_ps(g + i + 8), x2 = _mm256_loadu_ps(g + i + 16), x3 = _mm256_loadu_ps(g + i + 24);
    __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(x0)), d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(x0, 1));
    __m256d d2 = _mm256_cvtps_pd(_mm256_castps256_ps128(x1)), d3 = _mm256_cvtps_pd(_mm256_extractf128_ps(x1, 1));
    __m256d d4 = _mm256_cvtps_pd(_mm256_castps256_ps128(x2)), d5 = _mm256_cvtps_pd(_mm256_extractf128_ps(x2, 1));
    __m256d d6 = _mm256_cvtps_pd(_mm256_castps256_ps128(x3)), d7 = _mm256_cvtps_pd(_mm256_extractf128_ps(x3, 1));
    a0 = _mm256_add_pd(a0, _mm256_mul_pd(d0, d0)); a1 = _mm256_add_pd(a1, _mm256_mul_pd(d1, d1));
    a2 = _mm256_add_pd(a2, _mm256_mul_pd(d2, d2)); a3 = _mm256_add_pd(a3, _mm256_mul_pd(d3, d3));
    a4 = _mm256_add_pd(a4, _mm256_mul_pd(d4, d4)); a5 = _mm256_add_pd(a5, _mm256_mul_pd(d5, d5));
    a6 = _mm256_add_pd(a6, _mm256_mul_pd(d6, d6)); a7 = _mm256_add_pd(a7, _mm256_mul_pd(d7, d7));
  }
  double t[4]; __m256d s = _mm256_add_pd(_mm256_add_pd(_mm256_add_pd(a0,a1),_mm256_add_pd(a2,a3)),_mm256_add_pd(_mm256_add_pd(a4,a5),_mm256_add_pd(a6,a7)));
  _mm256_storeu_pd(t, s); double r = t[0]+t[1]+t[2]+t[3];
  for (; i < n; ++i) r += double(g[i]) * g[i];
  return r;
}

template <int K>
__attribute__((noinline)) double v_run(const float* __restrict g, size_t n) {
  // K squares summed in float per lane, then one conversion
  constexpr int W = 8 * 4 / K;  // double lanes... use 32 element chunks
  double acc[32] = {};
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    float s[32 / K];
    for (int j = 0; j < 32 / K; ++j) { s[j] = g[i + j] * g[i + j]; }
    for (int k = 1; k < K; ++k)
      for (int j = 0; j < 32 / K; ++j) s[j] = s[j] + g[i + k * (32 / K) + j] * g[i + k * (32 / K) + j];
    for (int j = 0; j < 32 / K; ++j) acc[j] = acc[j] + double(s[j]);
  }
  for (int j = 0; i < n; ++i, ++j) { double a = g[i]; acc[j] += a * a; }
  for (int w = 16; w > 0; w /= 2) for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

__attribute__((noinline)) double v_ld128(const float* __restrict g, size_t n) {
  __m256d a[8];
  for (int j = 0; j < 8; ++j) a[j] = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      __m256d d = _mm256_cvtps_pd(_mm_loadu_ps(g + i + 4 * j));
      a[j] = _mm256_add_pd(a[j], _mm256_mul_pd(d, d));
    }
  }
  double t[4]; __m256d s = _mm256_add_pd(_mm256_add_pd(_mm256_add_pd(a[0],a[1]),_mm256_add_pd(a[2],a[3])),_mm256_add_pd(_mm256_add_pd(a[4],a[5]),_mm256_add_pd(a[6],a[7])));
  _mm256_storeu_pd(t, s); double r = t[0]+t[1]+t[2]+t[3];
  for (; i < n; ++i) r += double(g[i]) * g[i];
  return r;
}

typedef float v4f __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));
__attribute__((noinline)) double v_vext(const float* __restrict g, size_t n) {
  double acc[32] = {};
  v4d a[8];
  for (int j = 0; j < 8; ++j) a[j] = v4d{0, 0, 0, 0};
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      v4f x; memcpy(&x, g + i + 4 * j, sizeof x);
      v4d d = __builtin_convertvector(x, v4d);
      a[j] = a[j] + d * d;
    }
  }
  memcpy(acc, a, sizeof a);
  for (int j = 0; i < n; ++i, ++j) { double a = g[i]; acc[j] += a * a; }
  for (int w = 16; w > 0; w /= 2) for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

template <int PF>
__attribute__((noinline)) double v_pf(const float* __restrict g, size_t n) {
  __m256d v[8];
  for (int k = 0; k < 8; ++k) v[k] = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    _mm_prefetch((const char*)(g + i + PF), _MM_HINT_T0);
    _mm_prefetch((const char*)(g + i + PF + 16), _MM_HINT_T0);
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m256d d = _mm256_cvtps_pd(_mm_loadu_ps(g + i + 4 * k));
      v[k] = _mm256_add_pd(v[k], _mm256_mul_pd(d, d));
    }
  }
  double acc[32];
  for (int k = 0; k < 8; ++k) _mm256_storeu_pd(acc + 4 * k, v[k]);
  for (int j = 0; i < n; ++i, ++j) { double a = g[i]; acc[j] += a * a; }
  for (int w = 16; w > 0; w /= 2) for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}
typedef double (*F)(const float*, size_t);
int REP = 1;
int main(int argc, char** argv) {
  if (argc > 4) REP = atoi(argv[4]);
  size_t n = argc > 1 ? size_t(atof(argv[1])) : 10000000;
  int T = argc > 2 ? atoi(argv[2]) : 2;
  size_t blk = argc > 3 ? size_t(atof(argv[3])) : 16384;
  vector<float> g(n); for (size_t i = 0; i < n; ++i) g[i] = (rand() / double(RAND_MAX)) - 0.5;
  #ifdef PREFETCH_SET  // norm_prefetch.txt
  F fs[] = {v_pf<256>, v_pf<1024>, v_f32, v_pf<4096>, v_ld128}; const char* names[] = {"pf256", "pf1k", "f32", "pf4k", "ld128"};
#else  // norm_loops.txt
  F fs[] = {v_cur, v_vext, v_f32, v_run<4>, v_ld128}; const char* names[] = {"cur", "vext", "f32", "run4", "ld128"};
#endif
  for (int round = 0; round < 3; ++round) {
    for (int k = 0; k < 5; ++k) {
      vector<double> ts; volatile double sink = 0;
      for (int r = 0; r < 21; ++r) {
        auto t0 = chrono::steady_clock::now();
        vector<double> part(T);
        vector<thread> th;
        for (int t = 0; t < T; ++t) th.emplace_back([&, t] {
          size_t b = n * t / T, e = n * (t + 1) / T; double s = 0;
          for (int q = 0; q < REP; ++q) for (size_t o = b; o < e; o += blk) s += fs[k](g.data() + o, min(blk, e - o));
          part[t] = s; });
        for (auto& x : th) x.join();
        ts.push_back(chrono::duration<double>(chrono::steady_clock::now() - t0).count());
        sink = sink + part[0];
      }
      sort(ts.begin(), ts.end());
      printf("%s %.3f  ", names[k], ts[10] * 1e3);
    }
    printf("\n");
  }
}
