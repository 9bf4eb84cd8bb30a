#include "parallel.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>
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

// How long an idle worker polls for the next call before sleeping
// (FASTOPT_SPIN_US, default 50; 0 sleeps at once).
long spin_microseconds() {
  if (const char* env = std::getenv("FASTOPT_SPIN_US")) {
    const long us = std::atol(env);
    if (us >= 0) return us;
  }
  return 50;
}

// Parts are claimed, not assigned: the caller and every awake worker take the
// next unclaimed part until none is left. A worker that is late (its core
// busy with another runtime's spinning threads, or still waking up) then
// costs nothing: the caller runs the parts itself. Which elements a part
// covers never depends on who runs it, so results do not change.
std::size_t part_bound(std::size_t total, int parts, int part);

class Pool;

// The pool of this process. Never destroyed: workers outlive static teardown.
// A forked child has none of the parent's threads, and may have inherited a
// mutex another thread held at the fork, so it starts a fresh pool (the old
// one is leaked: nothing in the child can use it).
std::atomic<Pool*> g_pool{nullptr};

// Set in a forked child: the libgomp team torch made in the parent does not
// exist there either (GOMP_parallel would wait for it forever), so parallel
// calls run on fastopt's own pool from then on.
std::atomic<bool> g_forked{false};

void on_fork_child() {
  g_pool.store(nullptr, std::memory_order_relaxed);
  g_forked.store(true, std::memory_order_relaxed);
}

[[maybe_unused]] const int g_fork_handlers = pthread_atfork(nullptr, nullptr, on_fork_child);

class Pool {
 public:
  static Pool& get() {
    Pool* pool = g_pool.load(std::memory_order_acquire);
    if (pool == nullptr) {
      Pool* fresh = new Pool();
      if (g_pool.compare_exchange_strong(pool, fresh, std::memory_order_acq_rel))
        pool = fresh;
      else
        delete fresh;  // another thread made it first (no workers yet: safe)
    }
    return *pool;
  }

  void run(int parts, std::size_t total, RangeFn fn, void* ctx) {
    std::lock_guard<std::mutex> call_guard(call_mu_);  // one parallel call at a time
    ensure_workers(parts - 1);
    std::uint32_t g;
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = fn;
      ctx_ = ctx;
      total_ = total;
      parts_ = parts;
      pending_.store(parts, std::memory_order_relaxed);
      g = generation_.load(std::memory_order_relaxed) + 1;
      claim_.store(claim_word(g, parts, 0), std::memory_order_relaxed);
      generation_.store(g, std::memory_order_release);
    }
    start_cv_.notify_all();
    work(g);
    // The last parts usually finish within microseconds: spin a little
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
  // claim_ packs (generation, parts, next part) so a stale claimer can
  // never take a part of a later call.
  static std::uint64_t claim_word(std::uint32_t g, int parts, int next) {
    return (std::uint64_t(g) << 32) | (std::uint64_t(parts) << 16) | std::uint64_t(next);
  }

  // Runs unclaimed parts of call g until none is left.
  void work(std::uint32_t g) {
    std::uint64_t c = claim_.load(std::memory_order_acquire);
    for (;;) {
      const int next = int(c & 0xffff), parts = int((c >> 16) & 0xffff);
      if (std::uint32_t(c >> 32) != g || next >= parts) return;
      if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel,
                                        std::memory_order_acquire))
        continue;
      run_part(next);  // fn_, ctx_, total_ stay put until every part is done
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_one();
      }
      c = claim_.load(std::memory_order_acquire);
    }
  }

  void run_part(int part) {
    const std::size_t b = bound(part), e = bound(part + 1);
    if (b < e) fn_(ctx_, b, e);
  }

  std::size_t bound(int part) const { return part_bound(total_, parts_, part); }

  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      // The worker starts from the generation before this call's, so it
      // joins the call that created it.
      const std::uint32_t seen = generation_.load(std::memory_order_relaxed);
      try {
        workers_.emplace_back([this, seen] { worker(seen); });
      } catch (const std::system_error&) {
        // No thread could be made (a process or memory limit): the parts
        // are claimed, so the caller and the workers there are run them all.
        return;
      }
      workers_.back().detach();
    }
  }

  // After its parts a worker polls for the next call for spin_ns before it
  // sleeps: waking a sleeping thread costs ~20 us on a VM (the idle vCPU is
  // halted), as much as a whole in-cache kernel, and calls often come in
  // bursts (forward then backward, one step after another). The spin is short
  // and bounded, unlike an OpenMP runtime's, so other runtimes in the process
  // (torch's) get the cores back almost at once.
  bool spin_until_called(std::uint32_t seen) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(spin_ns_);
    for (unsigned i = 1;; ++i) {
      if (generation_.load(std::memory_order_acquire) != seen) return true;
      if (i % 64 == 0 && std::chrono::steady_clock::now() >= deadline) return false;
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
  }

  void worker(std::uint32_t seen) {
    for (;;) {
      const bool called = spin_ns_ > 0 && spin_until_called(seen);
      {
        std::unique_lock<std::mutex> lk(mu_);
        if (!called)
          start_cv_.wait(lk, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
        seen = generation_.load(std::memory_order_acquire);
      }
      work(seen);
    }
  }

  std::mutex call_mu_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  std::vector<std::thread> workers_;
  std::atomic<std::uint32_t> generation_{0};
  std::atomic<std::uint64_t> claim_{0};
  const long spin_ns_ = spin_microseconds() * 1000L;
  RangeFn fn_ = nullptr;
  void* ctx_ = nullptr;
  std::size_t total_ = 0;
  int parts_ = 1;
  std::atomic<int> pending_{0};
};

// ---- reusing an OpenMP runtime that is already loaded
// When torch (or anything else) has loaded libgomp, its worker threads spin
// for milliseconds after each of its parallel regions; threads of our own
// would then fight them for the cores (a 130 us batch norm took 280 us right
// after torch ops). So if libgomp is in the process, parallel calls run on
// ITS team (GOMP_parallel from the caller's thread, as torch's own ops do):
// the spinning threads pick our parts up at once. We never load libgomp
// ourselves (FASTOPT_REUSE_OPENMP=0 turns the reuse off).
//
// But GOMP_parallel ends on a barrier that waits for every thread of the
// team, and a team thread that shares its core with a busy process (a data
// loader worker) can be late by a scheduler time slice: a 13 us Adam step
// took 12 ms. fastopt's pool does not wait for late workers (parts are
// claimed). So a team call in which nobody worked for over 1 ms (wall time
// above the sum of the parts' times + 1 ms) sends the following calls to the
// pool for a while (100 ms, doubling while it recurs, up to 10 s); then the
// team is tried again. FASTOPT_REUSE_OPENMP=always keeps the team regardless.
using GompParallelFn = void (*)(void (*)(void*), void*, unsigned, unsigned);

struct GompCall {
  RangeFn fn;
  void* ctx;
  std::size_t total;
  int parts;
  std::atomic<int> next{0};
  std::atomic<std::int64_t> busy_ns{0};  // summed over the parts
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr std::int64_t kLateNs = 1000000;            // nobody working for 1 ms
constexpr std::int64_t kFirstBackoffNs = 100000000;  // 100 ms
constexpr std::int64_t kMaxBackoffNs = 10000000000;  // 10 s
std::atomic<std::int64_t> g_team_avoided_until{0};
std::atomic<std::int64_t> g_team_backoff{kFirstBackoffNs};

bool team_always() {
  static const bool always = [] {
    const char* env = std::getenv("FASTOPT_REUSE_OPENMP");
    return env != nullptr && std::strcmp(env, "always") == 0;
  }();
  return always;
}

std::size_t part_bound(std::size_t total, int parts, int part) {
  if (part >= parts) return total;
  std::size_t share = total / parts * part;  // equal shares on 64-element boundaries
  share -= share % 64;
  return part == 0 ? 0 : share;
}

void gomp_body(void* p) {
  auto* call = static_cast<GompCall*>(p);
  for (int part; (part = call->next.fetch_add(1, std::memory_order_relaxed)) < call->parts;) {
    const std::size_t b = part_bound(call->total, call->parts, part);
    const std::size_t e = part_bound(call->total, call->parts, part + 1);
    if (b < e) {
      const std::int64_t t0 = now_ns();
      call->fn(call->ctx, b, e);
      call->busy_ns.fetch_add(now_ns() - t0, std::memory_order_relaxed);
    }
  }
}

// Runs the call on the team unless the team was late recently; false: use the pool.
bool run_on_team(GompParallelFn gomp, std::size_t total, int parts, RangeFn fn, void* ctx) {
  const std::int64_t t0 = now_ns();
  if (!team_always() && t0 < g_team_avoided_until.load(std::memory_order_relaxed)) return false;
  GompCall call{fn, ctx, total, parts};
  gomp(gomp_body, &call, static_cast<unsigned>(parts), 0);
  const std::int64_t t1 = now_ns();
  if (t1 - t0 > call.busy_ns.load(std::memory_order_relaxed) + kLateNs) {
    const std::int64_t backoff = g_team_backoff.load(std::memory_order_relaxed);
    g_team_avoided_until.store(t1 + backoff, std::memory_order_relaxed);
    g_team_backoff.store(std::min(2 * backoff, kMaxBackoffNs), std::memory_order_relaxed);
  } else {
    g_team_backoff.store(kFirstBackoffNs, std::memory_order_relaxed);
  }
  return true;
}

GompParallelFn loaded_gomp() {
  static std::atomic<GompParallelFn> found{nullptr};
  static std::atomic<unsigned> calls{0};
  static const bool allowed = [] {
    const char* env = std::getenv("FASTOPT_REUSE_OPENMP");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }();
  if (g_forked.load(std::memory_order_relaxed)) return nullptr;
  GompParallelFn fn = found.load(std::memory_order_acquire);
  if (fn || !allowed) return fn;
  // Looking costs ~1 us (the loader's lock): every 64th call until found.
  if (calls.fetch_add(1, std::memory_order_relaxed) % 64 != 0) return nullptr;
  if (void* lib = dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD)) {
    fn = reinterpret_cast<GompParallelFn>(dlsym(lib, "GOMP_parallel"));
    if (fn) found.store(fn, std::memory_order_release);
  }
  return fn;
}

}  // namespace

const char* threading_name() {
  return loaded_gomp() ? "the process's libgomp team (reused, e.g. torch's; fastopt pool while it is late)"
                       : "fastopt pool (briefly polling, then sleeping workers)";
}

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
  parts = std::min<std::size_t>({parts, static_cast<std::size_t>(num_threads()), 4096});
  return parts < 1 ? 1 : static_cast<int>(parts);
}

void parallel_for(std::size_t total, std::size_t min_per_thread, RangeFn fn, void* ctx) {
  if (total == 0) return;
  const int parts = parallel_parts(total, min_per_thread);
  if (parts == 1) {
    fn(ctx, 0, total);
    return;
  }
  if (GompParallelFn gomp = loaded_gomp()) {
    if (run_on_team(gomp, total, parts, fn, ctx)) return;
  }
  Pool::get().run(parts, total, fn, ctx);
}

}  // namespace fastopt
