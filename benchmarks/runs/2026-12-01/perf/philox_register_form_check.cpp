#include "../../../../csrc/cpu/dropout_kernels.cpp"  // with philox_register_form.patch applied
#include <cstdio>
#include <random>
using namespace fastopt;
int main() {
  std::mt19937_64 g(3); int bad = 0;
  for (int it = 0; it < 20000; ++it) {
    uint64_t j0 = (it < 10 ? 0xFFFFFFF0ull + 2 * it : g() >> (g() % 64)) & ~1ull;
    uint32_t k0 = g(), k1 = g(), t = g(); uint32_t a[4], b[4];
    block_bits<PhiloxMulPortable>(j0, k0, k1, t, a);
    BlockAvx2::bits(j0, k0, k1, t, b);
    for (int w = 0; w < 4; ++w) bad += a[w] != b[w];
  }
  std::printf("BlockAvx2 mismatches %d\n", bad); return bad != 0;
}
