// Compiles a CUDA source for the HOST, so its per-thread logic can run on a
// CPU (tests/test_cuda_emulated.py). Valid for kernels whose threads never
// communicate (no __syncthreads, shuffles or shared memory): the emulator
// below runs every (block, thread) of a launch one after another, which is one
// legal schedule of such a kernel. Force-included with `g++ -include shim.h`.
#pragma once
#define __global__
// Built with -fvisibility=hidden: only the emu_* entry points are exported, so
// two emulation libraries in one process never share the shim's globals.
#define FASTOPT_EMU_EXPORT extern "C" __attribute__((visibility("default")))
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)

struct fastopt_dim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline fastopt_dim3 blockIdx, threadIdx, blockDim, gridDim;

// Runs `call` once per (block, thread) of a 1-D launch.
template <typename F>
void fastopt_emulate(unsigned grid, unsigned block, const F& call) {
  gridDim = {grid, 1, 1};
  blockDim = {block, 1, 1};
  for (unsigned b = 0; b < grid; ++b)
    for (unsigned t = 0; t < block; ++t) {
      blockIdx = {b, 0, 0};
      threadIdx = {t, 0, 0};
      call();
    }
}
