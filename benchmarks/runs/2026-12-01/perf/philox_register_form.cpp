// Microbenchmark of the rejected register form of the AVX2 Philox block (philox_register_form.patch applied to csrc/cpu/dropout_kernels.cpp):
// c++ -I csrc/include -O3 -std=c++17 -ffp-contract=off THIS csrc/cpu/parallel.cpp -lpthread; output here, twice:
// ns/elem lane-array min 1.11 median 2.08 | register min 1.34 median 2.31
// ns/elem lane-array min 1.11 median 2.08 | register min 1.35 median 2.32
#include "../../../../csrc/cpu/dropout_kernels.cpp"  // with philox_register_form.patch applied
#include <chrono>
#include <cstdio>
#include <vector>
#include <algorithm>
using namespace fastopt;
template <class F> double tm(F f) { auto t0 = std::chrono::steady_clock::now(); f(); return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
__attribute__((target("arch=x86-64-v3"), flatten, noinline)) void runA(uint32_t* o, int nb) { for (int b = 0; b < nb; ++b) block_bits<MulAvx2>(32ull * b, 1, 2, 3000000000u, o + 4 * b); }
__attribute__((target("arch=x86-64-v3"), flatten, noinline)) void runB(uint32_t* o, int nb) { for (int b = 0; b < nb; ++b) BlockAvx2::bits(32ull * b, 1, 2, 3000000000u, o + 4 * b); }
int main() {
  const int nb = 1 << 15; static uint32_t o[4 << 15];
  std::vector<double> A, B; for (int rep = 0; rep < 41; ++rep) {
    double a = tm([&] { runA(o, nb); }), b = tm([&] { runB(o, nb); });
    A.push_back(a / nb / 128 * 1e9); B.push_back(b / nb / 128 * 1e9);
  }
  std::sort(A.begin(), A.end()); std::sort(B.begin(), B.end());
  std::printf("ns/elem lane-array min %.2f median %.2f | register min %.2f median %.2f\n", A[0], A[20], B[0], B[20]);
}
