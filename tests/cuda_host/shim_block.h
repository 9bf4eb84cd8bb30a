// Compiles a CUDA source whose threads cooperate (__syncthreads, warp
// shuffles, __shared__ arrays) for the HOST: each emulated block runs its
// blockDim.x threads as real std::threads meeting at a barrier, so the kernel's
// synchronization is honoured; blocks run one after another (one legal
// schedule: CUDA blocks of one launch never wait for each other).
// __shfl_down_sync is a block-wide exchange: valid where every thread of the
// block calls it at the same point (true of fastopt's reductions).
// Force-included with `g++ -include shim_block.h`; see test_cuda_emulated.py.
#pragma once
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
// Built with -fvisibility=hidden: only the emu_* entry points are exported, so
// two emulation libraries in one process never share the shim's globals.
#define FASTOPT_EMU_EXPORT extern "C" __attribute__((visibility("default")))
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static

struct fastopt_dim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline fastopt_dim3 blockIdx, blockDim, gridDim;
inline thread_local fastopt_dim3 threadIdx;

struct FastoptBarrier {
  std::mutex m;
  std::condition_variable cv;
  unsigned n = 0, count = 0, generation = 0;
  void wait() {
    std::unique_lock<std::mutex> lock(m);
    const unsigned g = generation;
    if (++count == n) {
      count = 0;
      ++generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return generation != g; });
    }
  }
};
inline FastoptBarrier fastopt_barrier;
inline void __syncthreads() { fastopt_barrier.wait(); }

inline unsigned long long fastopt_shfl_slots[1024];

// Every thread of the block publishes v; thread t gets the value of thread
// from(t) (its own where ok(t) is false). Block-wide, so valid where every
// thread of the block calls it at the same point.
template <typename V>
V fastopt_exchange(V v, unsigned from, bool ok) {
  static_assert(sizeof(V) <= sizeof(unsigned long long), "8-byte values at most");
  std::memcpy(&fastopt_shfl_slots[threadIdx.x], &v, sizeof(V));
  __syncthreads();
  V r = v;
  if (ok) std::memcpy(&r, &fastopt_shfl_slots[from], sizeof(V));
  __syncthreads();
  return r;
}

template <typename V>
V __shfl_down_sync(unsigned, V v, int offset) {
  const unsigned t = threadIdx.x;
  return fastopt_exchange(v, t + offset, t % 32 + unsigned(offset) < 32);
}

// Lane l of each warp gets v of lane src_lane of its warp.
template <typename V>
V __shfl_sync(unsigned, V v, int src_lane) {
  const unsigned t = threadIdx.x;
  return fastopt_exchange(v, t - t % 32 + unsigned(src_lane) % 32, true);
}

// Runs `call` for every thread of a (gx, gy) grid of blocks of `block` threads.
template <typename F>
void fastopt_emulate(unsigned gx, unsigned gy, unsigned block, const F& call) {
  gridDim = {gx, gy, 1};
  blockDim = {block, 1, 1};
  fastopt_barrier.n = block;
  for (unsigned by = 0; by < gy; ++by)
    for (unsigned bx = 0; bx < gx; ++bx) {
      blockIdx = {bx, by, 0};
      std::vector<std::thread> threads;
      threads.reserve(block);
      for (unsigned t = 0; t < block; ++t)
        threads.emplace_back([&call, t] {
          threadIdx = {t, 0, 0};
          call();
        });
      for (auto& th : threads) th.join();
    }
}
