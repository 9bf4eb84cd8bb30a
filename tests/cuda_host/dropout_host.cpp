// csrc/cuda/dropout.cu compiled for the host (see shim_block.h: the unaligned
// path shuffles mask bytes between a warp's lanes): C entry points that run a
// whole emulated launch of each dropout kernel, for ctypes.
#include "dropout.cu"

#define FASTOPT_EMU(T, SUFFIX)                                                                   \
  FASTOPT_EMU_EXPORT void emu_dropout_forward_##SUFFIX(                                          \
      unsigned gx, unsigned gy, unsigned block, const T* x, T* y, unsigned char* mask,           \
      long long n, unsigned long long seed, unsigned long long threshold,                      \
      fastopt::compute_t<T> scale, int vec) {                                                    \
    fastopt_emulate(gx, gy, block, [&] {                                                         \
      fastopt_dropout_forward_##SUFFIX(x, y, mask, n, seed, threshold, scale, vec);              \
    });                                                                                          \
  }                                                                                              \
  FASTOPT_EMU_EXPORT void emu_dropout_backward_##SUFFIX(unsigned gx, unsigned gy, unsigned block, \
                                                        const T* dy, const unsigned char* mask,  \
                                                        T* dx, long long n,                      \
                                                        fastopt::compute_t<T> scale, int vec) {  \
    fastopt_emulate(gx, gy, block,                                                               \
                    [&] { fastopt_dropout_backward_##SUFFIX(dy, mask, dx, n, scale, vec); });   \
  }

FASTOPT_EMU(float, f32)
FASTOPT_EMU(double, f64)
FASTOPT_EMU(fastopt::Bf16, bf16)
FASTOPT_EMU(fastopt::F16, f16)

FASTOPT_EMU_EXPORT void emu_dropout_mask(unsigned gx, unsigned gy, unsigned block,
                                         unsigned char* mask, long long n,
                                         unsigned long long seed, unsigned long long threshold) {
  fastopt_emulate(gx, gy, block, [&] { fastopt_dropout_mask(mask, n, seed, threshold); });
}
