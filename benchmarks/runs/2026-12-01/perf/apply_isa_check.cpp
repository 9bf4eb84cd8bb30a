// c++ -I csrc/include -O2 -std=c++17 -ffp-contract=off benchmarks/runs/2026-12-01/perf/apply_isa_check.cpp csrc/cpu/parallel.cpp -o /tmp/apply_isa_check -lpthread && /tmp/apply_isa_check
// output here (AVX2 machine): sse2 mismatches 0, avx2 mismatches 0
// ApplySse2 / ApplyAvx2 vs ApplyPortable bit for bit (the default clone cannot be
// reached through the ifunc on an AVX2 machine).
#include "../../../../csrc/cpu/dropout_kernels.cpp"
#include <cstdio>
#include <cstring>
#include <random>
#include <cmath>
using namespace fastopt;
template <typename T, typename A> int check(std::mt19937& g) {
  int bad = 0;
  for (int it = 0; it < 20000; ++it) {
    T in[32], o1[32], o2[32];
    for (int e = 0; e < 32; ++e) in[e] = T(std::normal_distribution<double>(0, 1e3)(g));
    in[g() % 32] = NAN; in[g() % 32] = INFINITY; in[g() % 32] = -0.0;
    uint32_t bits = g(); T scale = T(1.0 / (1.0 - (g() % 1000) / 1000.0));
    ApplyPortable::bits(in, o1, bits, scale);
    A::bits(in, o2, bits, scale);
    bad += std::memcmp(o1, o2, sizeof o1) != 0;
  }
  return bad;
}
int main() {
  std::mt19937 g(1);
  int b = check<float, ApplySse2>(g) + check<double, ApplySse2>(g);
  int c = __builtin_cpu_supports("avx2") ? check<float, ApplyAvx2>(g) + check<double, ApplyAvx2>(g) : -1;
  std::printf("sse2 mismatches %d, avx2 mismatches %d\n", b, c);
  return b != 0 || c > 0;
}
