#include "buffers.h"

#include <pybind11/stl.h>
#include <pthread.h>
#include <sys/mman.h>

#include <cstdlib>
#include <deque>
#include <new>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace fastopt {
namespace {

constexpr std::size_t kCachedFrom = std::size_t(1) << 20;  // smaller arrays: plain numpy
constexpr std::size_t kHugePage = std::size_t(2) << 20;
constexpr std::size_t kMaxBuffers = 8;

class BufferCache {
 public:
  static BufferCache& get() {
    static BufferCache* cache = new BufferCache();  // outlives arrays freed at exit
    return *cache;
  }

  void* acquire(std::size_t bytes) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (auto it = free_.begin(); it != free_.end(); ++it)
        if (it->first == bytes) {
          void* p = it->second;
          free_.erase(it);
          held_ -= bytes;
          sizes_[p] = bytes;
          return p;
        }
    }
    void* p = nullptr;
    if (posix_memalign(&p, bytes >= kHugePage ? kHugePage : 64, bytes) != 0) throw std::bad_alloc();
    if (bytes >= kHugePage) madvise(p, bytes, MADV_HUGEPAGE);  // as numpy does; a hint only
    std::lock_guard<std::mutex> lk(mu_);
    sizes_[p] = bytes;
    return p;
  }

  void release(void* p) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = sizes_.find(p);
    const std::size_t bytes = it->second;
    sizes_.erase(it);
    if (bytes > cap_) {
      std::free(p);
      return;
    }
    while (!free_.empty() && (held_ + bytes > cap_ || free_.size() >= kMaxBuffers)) {
      held_ -= free_.front().first;
      std::free(free_.front().second);
      free_.pop_front();
    }
    free_.emplace_back(bytes, p);
    held_ += bytes;
  }

 private:
  BufferCache() {
    const char* env = std::getenv("FASTOPT_BUFFER_CACHE_MB");
    const long mb = env ? std::atol(env) : 256;
    cap_ = mb > 0 ? std::size_t(mb) << 20 : 0;
    // A fork while another thread holds mu_ would leave the child's copy
    // locked forever: hold it across the fork, release it on both sides.
    pthread_atfork([] { get().mu_.lock(); }, [] { get().mu_.unlock(); },
                   [] { get().mu_.unlock(); });
  }

  std::mutex mu_;
  std::deque<std::pair<std::size_t, void*>> free_;  // oldest first
  std::unordered_map<void*, std::size_t> sizes_;    // buffers handed out
  std::size_t held_ = 0, cap_ = 0;
};

}  // namespace

py::array cached_empty(const std::vector<py::ssize_t>& shape, const py::dtype& dtype) {
  std::size_t bytes = static_cast<std::size_t>(dtype.itemsize());
  for (py::ssize_t d : shape) bytes *= static_cast<std::size_t>(d);
  if (bytes < kCachedFrom) return py::array(dtype, shape);
  void* p = BufferCache::get().acquire(bytes);
  py::capsule owner(p, [](void* q) { BufferCache::get().release(q); });
  return py::array(dtype, shape, {}, p, owner);
}

}  // namespace fastopt
