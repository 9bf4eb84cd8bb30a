#include "parallel.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace fastopt {
namespace {

int default_threads() {
  if (const char* env = std::getenv("FASTOPT_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

std::atomic<int> g_threads{0};

class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();  // never destroyed: workers outlive static teardown
    return *pool;
  }

  // Runs fn on parts [1, parts) in workers and part 0 on the caller.
  void run(int parts, std::size_t total, RangeFn fn, void* ctx) {
    std::lock_guard<std::mutex> call_guard(call_mu_);  // one parallel call at a time
    ensure_workers(parts - 1);
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = fn;
      ctx_ = ctx;
      total_ = total;
      parts_ = parts;
      pending_.store(parts - 1, std::memory_order_relaxed);
      ++generation_;
    }
    start_cv_.notify_all();
    run_part(0);
    // Workers usually finish within microseconds of the caller: spin a little
    // before sleeping.
    for (int spin = 0; spin < 20000 && pending_.load(std::memory_order_acquire) != 0; ++spin) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
    if (pending_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    }
  }

 private:
  void run_part(int part) {
    const std::size_t b = bound(part), e = bound(part + 1);
    if (b < e) fn_(ctx_, b, e);
  }

  std::size_t bound(int part) const {
    if (part >= parts_) return total_;
    // Equal shares rounded to 64 elements so each part starts on a cache line.
    std::size_t share = total_ / parts_ * part;
    share -= share % 64;
    return part == 0 ? 0 : share;
  }

  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      // The worker must start from the generation before this call's, or it
      // could miss the call that created it.
      const int index = static_cast<int>(workers_.size()) + 1;
      const std::uint64_t seen = generation_;
      workers_.emplace_back([this, index, seen] { worker(index, seen); });
      workers_.back().detach();
    }
  }

  void worker(int index, std::uint64_t seen) {
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        start_cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (index >= parts_) continue;
      }
      run_part(index);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_one();
      }
    }
  }

  std::mutex call_mu_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  std::vector<std::thread> workers_;
  std::uint64_t generation_ = 0;
  RangeFn fn_ = nullptr;
  void* ctx_ = nullptr;
  std::size_t total_ = 0;
  int parts_ = 1;
  std::atomic<int> pending_{0};
};

}  // namespace

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    n = default_threads();
    g_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) { g_threads.store(n > 0 ? n : default_threads()); }

int parallel_parts(std::size_t total, std::size_t min_per_thread) {
  if (min_per_thread == 0) min_per_thread = 1;
  std::size_t parts = total / min_per_thread;
  parts = std::min<std::size_t>(parts, static_cast<std::size_t>(num_threads()));
  return parts < 1 ? 1 : static_cast<int>(parts);
}

void parallel_for(std::size_t total, std::size_t min_per_thread, RangeFn fn, void* ctx) {
  if (total == 0) return;
  const int parts = parallel_parts(total, min_per_thread);
  if (parts == 1) {
    fn(ctx, 0, total);
    return;
  }
  Pool::get().run(parts, total, fn, ctx);
}

}  // namespace fastopt
