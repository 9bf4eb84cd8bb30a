// Batch norm's four row loops (batchnorm_rows.cpp, float32) through their
// target_clones entry points, one thread, (R, 2048) rows: build it against the
// tree (all three clones: the loader takes x86-64-v4 on an AVX-512 host) and
// against a copy whose isa.h lists only x86-64-v3 and baseline, then run both
// binaries in turn. Minima over REPEAT calls, ns per element.
//   S=csrc; g++ -O3 -std=c++17 -ffp-contract=off -fno-math-errno -fno-trapping-math -I$S/include -I$S/cpu \
//     row_clones.cpp $S/cpu/batchnorm_rows.cpp $S/cpu/isa.cpp -o /tmp/row_clones && /tmp/row_clones R REPEAT
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "batchnorm_layout.h"
using namespace fastopt::bn;
using clk = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const size_t R = atol(argv[1]), W = 2048;
  const int reps = atoi(argv[2]);
  (void)argc;
  std::vector<float> x(R * W), dy(R * W), out(R * W);
  for (size_t i = 0; i < R * W; ++i) x[i] = float(rand()) / RAND_MAX + 3.0f, dy[i] = float(rand()) / RAND_MAX - 0.5f;
  std::vector<double> mean(W), m2(W), ts(W), tq(W);
  std::vector<float> approx(W), mu(W, 3.5f), k(W, 1.1f), lo(W, 1e-7f), sc(W, 1.3f), be(W, 0.1f),
      pj(W, 0.3f), md(W, 0.01f);
  double best[4] = {1e9, 1e9, 1e9, 1e9};
  auto t = [&](int j, auto f) {
    const auto t0 = clk::now();
    f();
    best[j] = std::min(best[j], std::chrono::duration<double>(clk::now() - t0).count());
  };
  for (int i = 0; i < reps; ++i) {
    t(0, [&] { rows_moments(x.data(), R, W, W, mean.data(), m2.data(), ts.data(), tq.data(), approx.data()); });
    t(1, [&] { rows_sums(dy.data(), x.data(), out.data(), R, W, W, mu.data(), k.data(), false, ts.data(), tq.data()); });
    t(2, [&] { rows_affine(x.data(), out.data(), R, W, W, mu.data(), lo.data(), sc.data(), be.data()); });
    t(3, [&] { rows_dx(dy.data(), x.data(), out.data(), R, W, W, mu.data(), k.data(), pj.data(), md.data()); });
  }
  const double n = double(R * W) / 1e9;
  std::printf("R=%zu ns/elem: moments %.3f  sums %.3f  affine %.3f  dx %.3f\n", R, best[0] / n,
              best[1] / n, best[2] / n, best[3] / n);
}
