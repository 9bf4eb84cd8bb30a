// csrc/cuda/batchnorm.cu compiled for the host (see shim_block.h).
#include "batchnorm.cu"

#define SHAPE long long M, long long C, long long S, long long piece_len, long long P
#define FASTOPT_EMU(X, T, SUFFIX)                                                                  \
  FASTOPT_EMU_EXPORT void emu_bn_stats_##SUFFIX(unsigned gx, unsigned gy, unsigned b, const X* x,        \
                                        double* part, SHAPE) {                                   \
    fastopt_emulate(gx, gy, b, [&] { fastopt_bn_stats_##SUFFIX(x, part, M, C, S, piece_len, P); }); \
  }                                                                                              \
  FASTOPT_EMU_EXPORT void emu_bn_finalize_forward_##SUFFIX(                                              \
      unsigned gx, unsigned gy, unsigned b, const double* part, long long P, long long C,        \
      const T* gamma, const T* beta, T* rm, T* rv, T* sm, T* si, double* consts,                 \
      double momentum, double eps, int training) {                                               \
    fastopt_emulate(gx, gy, b, [&] {                                                             \
      fastopt_bn_finalize_forward_##SUFFIX(part, P, C, gamma, beta, rm, rv, sm, si, consts,      \
                                           momentum, eps, training);                             \
    });                                                                                          \
  }                                                                                              \
  FASTOPT_EMU_EXPORT void emu_bn_normalize_##SUFFIX(unsigned gx, unsigned gy, unsigned b, const X* x,    \
                                            X* y, const double* consts, SHAPE) {                 \
    fastopt_emulate(gx, gy, b,                                                                   \
                    [&] { fastopt_bn_normalize_##SUFFIX(x, y, consts, M, C, S, piece_len, P); }); \
  }                                                                                              \
  FASTOPT_EMU_EXPORT void emu_bn_backward_sums_##SUFFIX(unsigned gx, unsigned gy, unsigned b,            \
                                                const X* dy, const X* x, const T* sm,            \
                                                double* part, SHAPE) {                           \
    fastopt_emulate(gx, gy, b, [&] {                                                             \
      fastopt_bn_backward_sums_##SUFFIX(dy, x, sm, part, M, C, S, piece_len, P);                 \
    });                                                                                          \
  }                                                                                              \
  FASTOPT_EMU_EXPORT void emu_bn_finalize_backward_##SUFFIX(                                             \
      unsigned gx, unsigned gy, unsigned b, const double* part, long long P, long long C,        \
      const T* gamma, const T* sm, const T* si, T* dgamma, T* dbeta, double* consts,             \
      double count, int training) {                                                              \
    fastopt_emulate(gx, gy, b, [&] {                                                             \
      fastopt_bn_finalize_backward_##SUFFIX(part, P, C, gamma, sm, si, dgamma, dbeta, consts,    \
                                            count, training);                                    \
    });                                                                                          \
  }                                                                                              \
  FASTOPT_EMU_EXPORT void emu_bn_dx_##SUFFIX(unsigned gx, unsigned gy, unsigned b, const X* dy,          \
                                     const X* x, X* dx, const double* consts, SHAPE,             \
                                     int training) {                                             \
    fastopt_emulate(gx, gy, b, [&] {                                                             \
      fastopt_bn_dx_##SUFFIX(dy, x, dx, consts, M, C, S, piece_len, P, training);                \
    });                                                                                          \
  }

FASTOPT_EMU(float, float, f32)
FASTOPT_EMU(double, double, f64)
FASTOPT_EMU(fastopt::Bf16, float, bf16)
FASTOPT_EMU(fastopt::F16, float, f16)
