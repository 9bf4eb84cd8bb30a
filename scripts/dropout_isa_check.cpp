// Checks that the AVX2 and portable versions of the dropout CPU loops give the
// same bits and values as the version this CPU dispatches to (the test suite
// only runs the latter). Not part of the build; run from the repository root:
//   g++ -std=c++17 -O2 -ffp-contract=off -fno-math-errno -Icsrc/include \
//     scripts/dropout_isa_check.cpp csrc/cpu/parallel.cpp csrc/cpu/isa.cpp -lpthread \
//     -o /tmp/dropout_isa_check && /tmp/dropout_isa_check
#include "../csrc/cpu/dropout_kernels.cpp"
#include <cstdio>
#include <vector>
#include <cstring>
using namespace fastopt;
__attribute__((target("arch=x86-64-v3"), flatten)) void v3(const float* x, float* y, uint8_t* m, size_t n, uint32_t k0, uint32_t k1, uint64_t t, float s) { forward_bytes<float, MulAvx2>(x, y, m, 0, (n+7)/8, n, k0, k1, t, s); }
__attribute__((flatten)) void base(const float* x, float* y, uint8_t* m, size_t n, uint32_t k0, uint32_t k1, uint64_t t, float s) { forward_bytes<float, PhiloxMulPortable>(x, y, m, 0, (n+7)/8, n, k0, k1, t, s); }
__attribute__((target("arch=x86-64-v3"), flatten)) void v3b(const float* x, const uint8_t* m, float* y, size_t n, float s) { backward_bytes<float>(x, m, y, 0, (n+7)/8, n, s); }
int main() {
  int bad = 0;
  for (size_t n : {1ul, 7ul, 127ul, 128ul, 129ul, 1000ul, 100003ul}) for (uint64_t seed : {0ull, 1ull, 0xffffffffffffffffull, 0x243f6a8885a308d3ull}) for (double p : {0.0, 0.3, 0.5, 1.0}) {
    std::vector<float> x(n), y0(n), y1(n), y2(n), d0(n), d1(n); std::vector<uint8_t> m0((n+7)/8), m1((n+7)/8), m2((n+7)/8);
    for (size_t i = 0; i < n; ++i) x[i] = float(i % 97) - 40.5f;
    uint64_t t = dropout_threshold(p); float s = p == 1.0 ? 0.f : float(1.0 / (1.0 - p));
    dropout_forward_cpu<float>(x.data(), y0.data(), m0.data(), n, seed, t, s);
    v3(x.data(), y1.data(), m1.data(), n, dropout_key0(seed), dropout_key1(seed), t, s);
    base(x.data(), y2.data(), m2.data(), n, dropout_key0(seed), dropout_key1(seed), t, s);
    dropout_backward_cpu<float>(x.data(), m0.data(), d0.data(), n, s);
    v3b(x.data(), m0.data(), d1.data(), n, s);
    if (memcmp(y0.data(), y1.data(), 4*n) || memcmp(y0.data(), y2.data(), 4*n) || m0 != m1 || m0 != m2 || memcmp(d0.data(), d1.data(), 4*n)) { ++bad; printf("mismatch n=%zu p=%g\n", n, p); }
  }
  printf("isa %s, mismatches %d\n", active_isa(), bad);
  return bad != 0;
}
