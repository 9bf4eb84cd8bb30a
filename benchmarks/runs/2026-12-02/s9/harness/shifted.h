// row-major shifted sums: s64 += sum(x - sh), q64 += sum((x-sh)^2), float runs of 8 rows
__attribute__((target("avx2,fma"), noinline)) void shifted(const float* x, size_t R, size_t W, size_t T,
    const float* sh, double* s64, double* q64, float* acc) {
  for (size_t c = 0; c < W; ++c) s64[c] = q64[c] = 0.0;
  for (size_t r0 = 0; r0 < R; r0 += 8) {
    size_t r1 = std::min(R, r0 + 8);
    for (size_t t0 = 0; t0 < W; t0 += T) {
      size_t tw = std::min(T, W - t0);
      float* __restrict a = acc; float* __restrict q = acc + T;
      const float* __restrict s = sh + t0;
      for (size_t c = 0; c < tw; ++c) { float d = x[r0 * W + t0 + c] - s[c]; a[c] = d; q[c] = d * d; }
      for (size_t r = r0 + 1; r < r1; ++r) {
        const float* __restrict xr = x + r * W + t0;
        for (size_t c = 0; c < tw; ++c) { float d = xr[c] - s[c]; a[c] += d; q[c] += d * d; }
      }
      double* __restrict S = s64 + t0; double* __restrict Q = q64 + t0;
      for (size_t c = 0; c < tw; ++c) { S[c] += a[c]; Q[c] += q[c]; }
    }
  }
}
typedef float VF __attribute__((vector_size(32)));
template <int K, int RG>
__attribute__((target("avx2,fma"), noinline)) void chunked(const float* x, size_t R, size_t W,
    const float* sh, double* s64, double* q64) {
  for (size_t c = 0; c < W; ++c) s64[c] = q64[c] = 0.0;
  for (size_t r0 = 0; r0 < R; r0 += RG) {
    size_t r1 = std::min(R, r0 + RG);
    for (size_t c0 = 0; c0 < W; c0 += 8 * K) {
      VF s[K], a[K] = {}, q[K] = {};
#pragma GCC unroll 16
      for (int k = 0; k < K; ++k) std::memcpy(&s[k], sh + c0 + 8 * k, 32);
      for (size_t r = r0; r < r1; ++r) {
#pragma GCC unroll 16
        for (int k = 0; k < K; ++k) { VF v; std::memcpy(&v, x + r * W + c0 + 8 * k, 32); v -= s[k]; a[k] += v; q[k] += v * v; }
      }
      float t[8 * K], u[8 * K];
#pragma GCC unroll 16
      for (int k = 0; k < K; ++k) { std::memcpy(t + 8 * k, &a[k], 32); std::memcpy(u + 8 * k, &q[k], 32); }
      for (int c = 0; c < 8 * K; ++c) { s64[c0 + c] += t[c]; q64[c0 + c] += u[c]; }
    }
  }
}
