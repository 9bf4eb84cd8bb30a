// Batch norm forward and backward on the CPU: the passes over x (and dy) and
// the per-channel finalization between them, on the layouts of
// batchnorm_layout.h. Per-element and per-channel maths: csrc/include/fastopt/
// batchnorm.h; the loops: batchnorm_{planes,rows,channels}.cpp. X is the
// storage type of x, y, dy, dx (fastopt/storage.h), T = compute_t<X> that of
// gamma, beta and the statistics.
#include "batchnorm_layout.h"

namespace fastopt {
using namespace bn;

// ============================================================== forward
namespace {

// One channel's finalization: saved statistics, running update, normalize constants.
template <typename T>
FASTOPT_LOOP BnChannel finish_channel(const BnMoments& m, size_t c, const T* gamma, const T* beta,
                                      T* running_mean, T* running_var, T* save_mean,
                                      T* save_invstd, double momentum, double eps) {
  const BnChannel ch = bn_channel_train(m, double(gamma[c]), double(beta[c]), eps);
  save_mean[c] = T(ch.mean);
  save_invstd[c] = T(ch.invstd);
  if (running_mean) bn_update_running(running_mean[c], running_var[c], m, momentum);
  return ch;
}

template <typename X, typename T>
void forward_by_groups(const X* x, X* y, const T* gamma, const T* beta, T* running_mean,
                       T* running_var, T* save_mean, T* save_invstd, const BnShape& s,
                       const Layout& L, const Groups& G, double momentum, double eps) {
  const size_t C = s.C, S = s.S, numel = s.N * s.C * s.S;
  if (L.planes) {
    for_units(G.units, numel, [&](size_t u) {
      for (size_t c = G.first(u); c < G.last(s, u); ++c) {
        BnMoments m = bn_moments_empty();
        for (size_t n = 0; n < s.N; ++n)
          for (size_t j = 0; j < L.J; ++j) {
            const size_t len = L.block_len(s, j);
            BnMoments b{double(len), 0.0, 0.0};
            block_moments(x + (n * C + c) * S + j * kPlaneBlock, len, &b.mean, &b.m2);
            bn_merge(m, b);
          }
        const BnChannel ch = finish_channel(m, c, gamma, beta, running_mean, running_var,
                                            save_mean, save_invstd, momentum, eps);
        for (size_t n = 0; n < s.N; ++n)
          for (size_t j = 0; j < L.J; ++j) {
            const size_t off = (n * C + c) * S + j * kPlaneBlock;
            const BnSplitMean<T> mean = bn_split_mean<T>(ch.mean);
            block_affine(x + off, y + off, L.block_len(s, j), mean.hi, mean.lo, T(ch.scale),
                         T(ch.beta));
          }
      }
    });
    return;
  }
  // Rows: unit u owns the columns [c0*S, c1*S) of every row.
  const size_t W = L.W;
  std::vector<double>& ws = scratch<double>(4 * W, 0);
  double* mean = ws.data();
  double* m2 = mean + W;
  double* tmp_s = m2 + W;
  double* tmp_q = tmp_s + W;
  std::vector<T>& ts = scratch<T>(5 * W, 2);
  T* approx = ts.data();
  T* scale = approx + W;
  T* lo_col = scale + W;     // the mean's low part (bn_split_mean)
  T* mean_col = lo_col + W;  // S > 1 only: per-column copies of save_mean, beta
  T* beta_col = mean_col + W;
  for_units(G.units, numel, [&](size_t u) {
    const size_t c0 = G.first(u), c1 = G.last(s, u), a = c0 * S, w = (c1 - c0) * S;
    rows_moments(x + a, s.N, W, w, mean + a, m2 + a, tmp_s + a, tmp_q + a, approx + a);
    if (S == 1) {
      finish_forward_columns(c0, c1, double(s.N), mean, m2, gamma, beta, running_mean,
                             running_var, save_mean, save_invstd, lo_col, scale, momentum, eps);
      rows_affine(x + a, y + a, s.N, W, w, save_mean + a, lo_col + a, scale + a, beta + a);
      return;
    }
    for (size_t c = c0; c < c1; ++c) {
      BnMoments m{double(s.N), mean[c * S], m2[c * S]};
      for (size_t k = 1; k < S; ++k) bn_merge(m, BnMoments{double(s.N), mean[c * S + k], m2[c * S + k]});
      const BnChannel ch = finish_channel(m, c, gamma, beta, running_mean, running_var, save_mean,
                                          save_invstd, momentum, eps);
      const BnSplitMean<T> split = bn_split_mean<T>(ch.mean);
      for (size_t k = 0; k < S; ++k) {
        mean_col[c * S + k] = split.hi;
        lo_col[c * S + k] = split.lo;
        scale[c * S + k] = T(ch.scale);
        beta_col[c * S + k] = beta[c];
      }
    }
    rows_affine(x + a, y + a, s.N, W, w, mean_col + a, lo_col + a, scale + a, beta_col + a);
  });
}

}  // namespace
template <typename X, typename T>
void batch_norm_forward_cpu(const X* x, X* y, const T* gamma, const T* beta, T* running_mean,
                            T* running_var, T* save_mean, T* save_invstd, BnShape s,
                            bool training, double momentum, double eps) {
  const Layout L(s);
  const size_t C = s.C, S = s.S, numel = s.N * s.C * s.S;
  if (training) {
    const Groups G(s, L, sizeof(X));
    if (G.per_unit) {
      forward_by_groups(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd, s,
                        L, G, momentum, eps);
      return;
    }
  }
  // Double scratch: [mean C][scale C] then the partials; the normalize pass
  // also reads beta (y = (x - mean) * scale + beta).
  const size_t partials = L.planes ? 2 * L.units : 4 * L.RU * L.W;
  std::vector<double>& ws = scratch<double>(2 * C + partials, 0);
  double* mean = ws.data();
  double* scale = mean + C;
  double* part = scale + C;

  if (training) {
    if (L.planes) {
      double* pm = part;
      double* pq = part + L.units;
      for_units(L.units, numel, [&](size_t u) {
        const size_t p = u / L.J, j = u % L.J;
        block_moments(x + p * S + j * kPlaneBlock, L.block_len(s, j), pm + u, pq + u);
      });
      for (size_t c = 0; c < C; ++c) {
        BnMoments m = bn_moments_empty();
        for (size_t n = 0; n < s.N; ++n)
          for (size_t j = 0; j < L.J; ++j) {
            const size_t u = (n * C + c) * L.J + j;
            bn_merge(m, BnMoments{double(L.block_len(s, j)), pm[u], pq[u]});
          }
        const BnChannel ch = bn_channel_train(m, double(gamma[c]), double(beta[c]), eps);
        save_mean[c] = T(ch.mean);
        save_invstd[c] = T(ch.invstd);
        mean[c] = ch.mean;
        scale[c] = ch.scale;
        if (running_mean) bn_update_running(running_mean[c], running_var[c], m, momentum);
      }
    } else if (L.units) {
      const size_t W = L.W;
      double* pm = part;                 // RU x W means
      double* pq = pm + L.RU * W;        // RU x W M2
      double* tm = pq + L.RU * W;        // scratch per unit
      double* tq = tm + L.RU * W;
      std::vector<T>& tscratch = scratch<T>(L.RU * W, 2);
      T* ta = tscratch.data();           // approximate means per unit
      for_units(L.units, numel, [&](size_t u) {
        const size_t ru = u / L.CT, ct = u % L.CT;
        const size_t r0 = L.row_begin(s, ru), r1 = L.row_begin(s, ru + 1);
        const size_t c0 = L.col_begin(ct), off = ru * W + c0;
        rows_moments(x + r0 * W + c0, r1 - r0, W, L.col_width(ct), pm + off, pq + off, tm + off,
                     tq + off, ta + off);
      });
      // Row ranges in order, vectorized over columns (into range 0's partials).
      double na = double(L.row_begin(s, 1));
      for (size_t ru = 1; ru < L.RU; ++ru) {
        const double nb = double(L.row_begin(s, ru + 1) - L.row_begin(s, ru));
        merge_columns(pm, pq, na, pm + ru * W, pq + ru * W, nb, W);
        na += nb;
      }
      // Then the S columns of a channel, in order.
      for (size_t c = 0; c < C; ++c) {
        BnMoments m{double(s.N), pm[c * S], pq[c * S]};
        for (size_t k = 1; k < S; ++k) bn_merge(m, BnMoments{double(s.N), pm[c * S + k], pq[c * S + k]});
        const BnChannel ch = bn_channel_train(m, double(gamma[c]), double(beta[c]), eps);
        save_mean[c] = T(ch.mean);
        save_invstd[c] = T(ch.invstd);
        mean[c] = ch.mean;
        scale[c] = ch.scale;
        if (running_mean) bn_update_running(running_mean[c], running_var[c], m, momentum);
      }
    }
  } else {
    for (size_t c = 0; c < C; ++c) {
      const double invstd = bn_invstd(double(running_var[c]), eps);
      const BnChannel ch = bn_channel(double(running_mean[c]), invstd, double(gamma[c]), double(beta[c]));
      save_mean[c] = running_mean[c];
      save_invstd[c] = T(invstd);
      mean[c] = ch.mean;
      scale[c] = ch.scale;
    }
  }

  // The normalize pass: y = (x - mean) * scale + beta.
  if (L.planes) {
    for_units(L.units, numel, [&](size_t u) {
      const size_t p = u / L.J, j = u % L.J, c = p % C, off = p * S + j * kPlaneBlock;
      const BnSplitMean<T> m = bn_split_mean<T>(mean[c]);
      block_affine(x + off, y + off, L.block_len(s, j), m.hi, m.lo, T(scale[c]), beta[c]);
    });
  } else if (L.units) {
    const size_t W = L.W;
    std::vector<T>& cols = scratch<T>(4 * W, 2);
    T* hi_col = cols.data();
    T* lo_col = hi_col + W;
    T* scale_col = lo_col + W;
    T* beta_col = scale_col + W;
    for (size_t c = 0; c < C; ++c) {
      const BnSplitMean<T> m = bn_split_mean<T>(mean[c]);
      for (size_t k = 0; k < S; ++k) {
        hi_col[c * S + k] = m.hi;
        lo_col[c * S + k] = m.lo;
      }
    }
    expand(scale_col, scale, s);
    expand(beta_col, beta, s);
    for_units(L.units, numel, [&](size_t u) {
      const size_t ru = u / L.CT, ct = u % L.CT;
      const size_t r0 = L.row_begin(s, ru), r1 = L.row_begin(s, ru + 1), c0 = L.col_begin(ct);
      rows_affine(x + r0 * W + c0, y + r0 * W + c0, r1 - r0, W, L.col_width(ct), hi_col + c0,
                  lo_col + c0, scale_col + c0, beta_col + c0);
    });
  }
}

// ============================================================= backward
namespace {

template <typename X, typename T>
void backward_by_groups(const X* dy, const X* x, const T* gamma, const T* save_mean,
                        const T* save_invstd, X* dx, T* dgamma, T* dbeta, const BnShape& s,
                        const Layout& L, const Groups& G) {
  const size_t C = s.C, S = s.S, numel = s.N * s.C * s.S;
  const double count = double(s.N) * double(S);
  auto finish = [&](size_t c, double sum_dy, double sum_dyxmu) {
    const BnBackwardChannel h = bn_backward_channel(sum_dy, sum_dyxmu, double(save_mean[c]),
                                                    double(save_invstd[c]), double(gamma[c]),
                                                    count, true);
    dgamma[c] = T(h.dgamma);
    dbeta[c] = T(h.dbeta);
    return h;
  };
  if (L.planes) {
    for_units(G.units, numel, [&](size_t u) {
      for (size_t c = G.first(u); c < G.last(s, u); ++c) {
        const T mean = save_mean[c], k = T(double(gamma[c]) * double(save_invstd[c]));
        double a = 0.0, b = 0.0;
        for (size_t n = 0; n < s.N; ++n)
          for (size_t j = 0; j < L.J; ++j) {
            const size_t off = (n * C + c) * S + j * kPlaneBlock;
            double pa, pb;
            block_sums(dy + off, x + off, dx + off, L.block_len(s, j), mean, k, false, &pa, &pb);
            a += pa;
            b += pb;
          }
        const BnBackwardChannel h = finish(c, a, b);
        for (size_t n = 0; n < s.N; ++n)
          for (size_t j = 0; j < L.J; ++j) {
            const size_t off = (n * C + c) * S + j * kPlaneBlock;
            block_dx(dy + off, x + off, dx + off, L.block_len(s, j), T(h.mean), T(h.k),
                     T(h.proj), T(h.mean_dy));
          }
      }
    });
    return;
  }
  // Rows: unit u owns the columns [c0*S, c1*S) of every row.
  const size_t W = L.W;
  std::vector<double>& ws = scratch<double>(2 * W, 1);
  double* p1 = ws.data();
  double* p2 = p1 + W;
  std::vector<T>& tcols = scratch<T>(4 * W, 3);
  T* m_col = tcols.data();
  T* hk_col = m_col + W;
  T* proj_col = hk_col + W;
  T* mdy_col = proj_col + W;
  for_units(G.units, numel, [&](size_t u) {
    const size_t c0 = G.first(u), c1 = G.last(s, u), a0 = c0 * S, w = (c1 - c0) * S;
    // Training only: rows_sums reads its k argument only in the eval form.
    if (S == 1) {  // columns are channels
      rows_sums(dy + a0, x + a0, dx + a0, s.N, W, w, save_mean + a0, save_mean + a0, false,
                p1 + a0, p2 + a0);
      finish_backward_columns(c0, c1, count, p1, p2, gamma, save_mean, save_invstd, dgamma,
                              dbeta, hk_col, proj_col, mdy_col);
      rows_dx(dy + a0, x + a0, dx + a0, s.N, W, w, save_mean + a0, hk_col + a0, proj_col + a0,
              mdy_col + a0);
      return;
    }
    for (size_t c = c0; c < c1; ++c)
      for (size_t q = 0; q < S; ++q) m_col[c * S + q] = save_mean[c];
    rows_sums(dy + a0, x + a0, dx + a0, s.N, W, w, m_col + a0, m_col + a0, false, p1 + a0,
              p2 + a0);
    for (size_t c = c0; c < c1; ++c) {
      double a = 0.0, b = 0.0;
      for (size_t q = 0; q < S; ++q) {
        a += p1[c * S + q];
        b += p2[c * S + q];
      }
      const BnBackwardChannel h = finish(c, a, b);
      for (size_t q = 0; q < S; ++q) {
        hk_col[c * S + q] = T(h.k);
        proj_col[c * S + q] = T(h.proj);
        mdy_col[c * S + q] = T(h.mean_dy);
      }
    }
    rows_dx(dy + a0, x + a0, dx + a0, s.N, W, w, m_col + a0, hk_col + a0, proj_col + a0,
            mdy_col + a0);
  });
}

}  // namespace

template <typename X, typename T>
void batch_norm_backward_cpu(const X* dy, const X* x, const T* gamma, const T* save_mean,
                             const T* save_invstd, X* dx, T* dgamma, T* dbeta, BnShape s,
                             bool training) {
  const Layout L(s);
  const size_t C = s.C, S = s.S, numel = s.N * s.C * s.S;
  if (training) {
    const Groups G(s, L, sizeof(X));
    if (G.per_unit) {
      backward_by_groups(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, s, L, G);
      return;
    }
  }
  const double count = double(s.N) * double(S);
  // Double scratch: [sum_dy C][sum_dy_xmu C] then partials.
  const size_t partials = L.planes ? 2 * L.units : 2 * L.RU * L.W;
  std::vector<double>& ws = scratch<double>(2 * C + partials, 1);
  double* sum_dy = ws.data();
  double* sum_dyxmu = sum_dy + C;
  double* part = sum_dyxmu + C;
  // T scratch (row layout): k, mean, proj, mean_dy per column.
  std::vector<T>& tcols = scratch<T>(4 * L.W, 3);
  T* k_col = tcols.data();
  T* m_col = k_col + L.W;
  T* proj_col = m_col + L.W;
  T* mdy_col = proj_col + L.W;
  std::vector<double> k(C);
  for (size_t c = 0; c < C; ++c) k[c] = double(gamma[c]) * double(save_invstd[c]);

  // Reduction pass (eval: dx = k * dy written in the same pass).
  const bool eval = !training;
  if (L.planes) {
    double* p1 = part;
    double* p2 = part + L.units;
    for_units(L.units, numel, [&](size_t u) {
      const size_t p = u / L.J, j = u % L.J, c = p % C, off = p * S + j * kPlaneBlock;
      block_sums(dy + off, x + off, dx + off, L.block_len(s, j), save_mean[c], T(k[c]), eval,
                 p1 + u, p2 + u);
    });
    for (size_t c = 0; c < C; ++c) {
      double a = 0.0, b = 0.0;
      for (size_t n = 0; n < s.N; ++n)
        for (size_t j = 0; j < L.J; ++j) {
          const size_t u = (n * C + c) * L.J + j;
          a += p1[u];
          b += p2[u];
        }
      sum_dy[c] = a;
      sum_dyxmu[c] = b;
    }
  } else if (L.units) {
    const size_t W = L.W;
    double* p1 = part;
    double* p2 = part + L.RU * W;
    for (size_t c = 0; c < C; ++c)
      for (size_t q = 0; q < S; ++q) {
        m_col[c * S + q] = save_mean[c];
        k_col[c * S + q] = T(k[c]);
      }
    for_units(L.units, numel, [&](size_t u) {
      const size_t ru = u / L.CT, ct = u % L.CT;
      const size_t r0 = L.row_begin(s, ru), r1 = L.row_begin(s, ru + 1), c0 = L.col_begin(ct);
      const size_t off = r0 * W + c0;
      const size_t poff = ru * W + c0;
      rows_sums(dy + off, x + off, dx + off, r1 - r0, W, L.col_width(ct), m_col + c0,
                k_col + c0, eval, p1 + poff, p2 + poff);
    });
    for (size_t ru = 1; ru < L.RU; ++ru)
      for (size_t q = 0; q < W; ++q) {
        p1[q] += p1[ru * W + q];
        p2[q] += p2[ru * W + q];
      }
    for (size_t c = 0; c < C; ++c) {
      double a = 0.0, b = 0.0;
      for (size_t q = 0; q < S; ++q) {
        a += p1[c * S + q];
        b += p2[c * S + q];
      }
      sum_dy[c] = a;
      sum_dyxmu[c] = b;
    }
  } else {
    for (size_t c = 0; c < C; ++c) sum_dy[c] = sum_dyxmu[c] = 0.0;
  }

  std::vector<BnBackwardChannel> ch(C);
  for (size_t c = 0; c < C; ++c) {
    ch[c] = bn_backward_channel(sum_dy[c], sum_dyxmu[c], double(save_mean[c]),
                                double(save_invstd[c]), double(gamma[c]), count, training);
    dgamma[c] = T(ch[c].dgamma);
    dbeta[c] = T(ch[c].dbeta);
  }
  if (eval) return;

  // Elementwise pass: dx = (dy - (x - mean) * proj - mean_dy) * k.
  if (L.planes) {
    for_units(L.units, numel, [&](size_t u) {
      const size_t p = u / L.J, j = u % L.J, c = p % C, off = p * S + j * kPlaneBlock;
      const BnBackwardChannel& h = ch[c];
      block_dx(dy + off, x + off, dx + off, L.block_len(s, j), T(h.mean), T(h.k), T(h.proj),
               T(h.mean_dy));
    });
  } else if (L.units) {
    const size_t W = L.W;
    for (size_t c = 0; c < C; ++c)
      for (size_t q = 0; q < S; ++q) {
        m_col[c * S + q] = T(ch[c].mean);
        proj_col[c * S + q] = T(ch[c].proj);
        mdy_col[c * S + q] = T(ch[c].mean_dy);
      }
    for_units(L.units, numel, [&](size_t u) {
      const size_t ru = u / L.CT, ct = u % L.CT;
      const size_t r0 = L.row_begin(s, ru), r1 = L.row_begin(s, ru + 1), c0 = L.col_begin(ct);
      const size_t off = r0 * W + c0;
      rows_dx(dy + off, x + off, dx + off, r1 - r0, W, L.col_width(ct), m_col + c0, k_col + c0,
              proj_col + c0, mdy_col + c0);
    });
  }
}

#define FASTOPT_BN_INSTANTIATE(X, T)                                                           \
  template void batch_norm_forward_cpu<X, T>(const X*, X*, const T*, const T*, T*, T*, T*, T*,  \
                                             BnShape, bool, double, double);                    \
  template void batch_norm_backward_cpu<X, T>(const X*, const X*, const T*, const T*, const T*, \
                                              X*, T*, T*, BnShape, bool);
FASTOPT_BN_INSTANTIATE(float, float)
FASTOPT_BN_INSTANTIATE(double, double)
FASTOPT_BN_INSTANTIATE(Bf16, float)
FASTOPT_BN_INSTANTIATE(F16, float)

}  // namespace fastopt
