// csrc/cuda/quantized.cu compiled for the host (see shim_block.h: the 256
// threads of a block run as real threads meeting at __syncthreads): C entry
// points that run a whole emulated launch of each 8-bit kernel, for ctypes.
#include "quantized.cu"

#define FASTOPT_EMU_Q(SUFFIX, P, G)                                                            \
  FASTOPT_EMU_EXPORT void emu_adam_8bit_##SUFFIX(                                               \
      unsigned grid, P* p, const G* g, long long n, unsigned char* mc, float* ma,               \
      unsigned char* vc, float* va, const float* smap, const int* slut, const float* umap,      \
      const int* ulut, const float* sc, int wd_mode) {                                          \
    fastopt_emulate(grid, 1, 256, [&] {                                                         \
      fastopt_adam_8bit_##SUFFIX(p, g, n, mc, ma, vc, va, smap, slut, umap, ulut, sc[0], sc[1], \
                                 sc[2], sc[3], sc[4], sc[5], sc[6], sc[7], sc[8], sc[9],        \
                                 wd_mode);                                                      \
    });                                                                                         \
  }                                                                                             \
  FASTOPT_EMU_EXPORT void emu_sgd_8bit_##SUFFIX(unsigned grid, P* p, const G* g, long long n,   \
                                                unsigned char* bc, float* ba, const float* smap, \
                                                const int* slut, const float* sc, int wd,       \
                                                int nesterov, int first) {                      \
    fastopt_emulate(grid, 1, 256, [&] {                                                         \
      fastopt_sgd_8bit_##SUFFIX(p, g, n, bc, ba, smap, slut, sc[0], sc[1], sc[2], sc[3], sc[4], \
                                wd, nesterov, first);                                           \
    });                                                                                         \
  }                                                                                             \
  FASTOPT_EMU_EXPORT void emu_rmsprop_8bit_##SUFFIX(                                            \
      unsigned grid, P* p, const G* g, long long n, unsigned char* sqc, float* sqa,             \
      unsigned char* gc, float* ga, unsigned char* bc, float* ba, const float* smap,            \
      const int* slut, const float* umap, const int* ulut, const float* sc, int wd, int cen,   \
      int mom) {                                                                                \
    fastopt_emulate(grid, 1, 256, [&] {                                                         \
      fastopt_rmsprop_8bit_##SUFFIX(p, g, n, sqc, sqa, gc, ga, bc, ba, smap, slut, umap, ulut,  \
                                    sc[0], sc[1], sc[2], sc[3], sc[4], sc[5], sc[6], wd, cen,   \
                                    mom);                                                       \
    });                                                                                         \
  }

FASTOPT_EMU_Q(ff, float, float)
FASTOPT_EMU_Q(bb, fastopt::Bf16, fastopt::Bf16)
FASTOPT_EMU_Q(bf, fastopt::Bf16, float)
FASTOPT_EMU_Q(hh, fastopt::F16, fastopt::F16)
FASTOPT_EMU_Q(hf, fastopt::F16, float)
