// Batch norm's per-channel finalization of (N, C) input (S = 1: a column is
// a channel) as column loops the compiler vectorizes; with a thousand channels
// the scalar form cost as much as a pass over a (64, 1024) batch. The formulas
// are csrc/include/fastopt/batchnorm.h's bn_channel_train, bn_update_running
// and bn_backward_channel.
#include "batchnorm_layout.h"
#include "isa.h"

namespace fastopt {
namespace bn {
namespace {

template <typename T>
FASTOPT_LOOP void finish_forward_columns_loop(size_t c0, size_t c1, double n,
                                              const double* mean, const double* m2,
                                              const T* gamma, const T* beta, T* running_mean,
                                              T* running_var, T* save_mean, T* save_invstd,
                                              T* mean_lo, T* scale, double momentum, double eps) {
  for (size_t c = c0; c < c1; ++c) {
    const BnChannel ch = bn_channel_train(BnMoments{n, mean[c], m2[c]}, double(gamma[c]),
                                          double(beta[c]), eps);
    const BnSplitMean<T> m = bn_split_mean<T>(ch.mean);
    save_mean[c] = m.hi;
    mean_lo[c] = m.lo;
    save_invstd[c] = T(ch.invstd);
    scale[c] = T(ch.scale);
  }
  if (running_mean)
    for (size_t c = c0; c < c1; ++c)
      bn_update_running(running_mean[c], running_var[c], BnMoments{n, mean[c], m2[c]}, momentum);
}

template <typename T>
FASTOPT_LOOP void finish_backward_columns_loop(size_t c0, size_t c1, double count,
                                               const double* s_dy, const double* s_dyxmu,
                                               const T* gamma, const T* save_mean,
                                               const T* save_invstd, T* dgamma, T* dbeta, T* k,
                                               T* proj, T* mean_dy) {
  for (size_t c = c0; c < c1; ++c) {
    const BnBackwardChannel h = bn_backward_channel(s_dy[c], s_dyxmu[c], double(save_mean[c]),
                                                    double(save_invstd[c]), double(gamma[c]),
                                                    count, true);
    dgamma[c] = T(h.dgamma);
    dbeta[c] = T(h.dbeta);
    k[c] = T(h.k);
    proj[c] = T(h.proj);
    mean_dy[c] = T(h.mean_dy);
  }
}

}  // namespace

#define FASTOPT_BN_FINISH_FUNCTIONS(T)                                                           \
  FASTOPT_CLONES void finish_forward_columns(                                                    \
      size_t c0, size_t c1, double n, const double* mean, const double* m2, const T* gamma,      \
      const T* beta, T* rm, T* rv, T* sm, T* si, T* mean_lo, T* scale, double momentum,          \
      double eps) {                                                                              \
    finish_forward_columns_loop(c0, c1, n, mean, m2, gamma, beta, rm, rv, sm, si, mean_lo, scale, \
                                momentum, eps);                                                  \
  }                                                                                              \
  FASTOPT_CLONES void finish_backward_columns(                                                   \
      size_t c0, size_t c1, double count, const double* s_dy, const double* s_dyxmu,             \
      const T* gamma, const T* sm, const T* si, T* dgamma, T* dbeta, T* k, T* proj, T* mdy) {    \
    finish_backward_columns_loop(c0, c1, count, s_dy, s_dyxmu, gamma, sm, si, dgamma, dbeta, k,  \
                                 proj, mdy);                                                     \
  }
FASTOPT_BN_FINISH_FUNCTIONS(float)
FASTOPT_BN_FINISH_FUNCTIONS(double)

}  // namespace bn
}  // namespace fastopt
