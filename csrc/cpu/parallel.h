// A small persistent thread pool whose idle workers poll briefly (50 us,
// FASTOPT_SPIN_US) and then sleep on a condition variable. Why not OpenMP:
// torch ships its own libgomp, and a second OpenMP runtime in the same
// process spins on the same two cores; every parallel call then stalls for
// milliseconds (docs/notes-bench.md; two OpenMP runtimes). Parts are claimed dynamically,
// so a worker that another runtime keeps off its core delays nothing: the
// caller runs the part itself.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fastopt {

// Number of threads used for large calls (FASTOPT_NUM_THREADS, else the CPUs
// this process may run on).
int num_threads();

// How parallel calls run now: the process's libgomp team when one is loaded
// (torch's), otherwise fastopt's own pool.
const char* threading_name();
void set_num_threads(int n);

// A range of work handed to one thread: [begin, end).
using RangeFn = void (*)(void* ctx, std::size_t begin, std::size_t end);

// Splits [0, total) into at most num_threads() contiguous parts of at least
// min_per_thread elements (rounded to multiples of 64 so parts start on cache
// lines) and runs fn on each; the caller's thread runs the first part. The
// split never changes a result: kernels are elementwise or reduce per part in
// a fixed order.
void parallel_for(std::size_t total, std::size_t min_per_thread, RangeFn fn, void* ctx);

// Convenience for lambdas: parallel_for(total, grain, [&](size_t b, size_t e) {...}).
template <typename F>
void parallel_for(std::size_t total, std::size_t min_per_thread, const F& f) {
  parallel_for(
      total, min_per_thread,
      [](void* ctx, std::size_t b, std::size_t e) { (*static_cast<const F*>(ctx))(b, e); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

// parallel_for over `units` items that each stand for many elements (blocks):
// f(first unit, end unit) per part, the parts equal to within one unit.
// parallel_for's 64-item rounding of part bounds, meant for elements, would
// cut such parts in steps of 64 blocks: clip_grad_norm's 611 blocks of 16384
// floats at 10^7 split 256 / 355, and its 61 blocks at 10^6 ran on one thread.
template <typename F>
void parallel_for_units(std::size_t units, std::size_t min_units_per_thread, const F& f) {
  parallel_for(units * 64, min_units_per_thread * 64,
               [&](std::size_t b, std::size_t e) { f(b / 64, e / 64); });
}

// How many parts parallel_for would use for this call (for kernels that
// keep one partial result per part).
int parallel_parts(std::size_t total, std::size_t min_per_thread);

// Elements per thread below which a memory-bound elementwise kernel runs on
// one thread: waking a sleeping worker costs up to ~20 us on a VM.
constexpr std::size_t kElementwiseGrain = 1 << 15;

}  // namespace fastopt
