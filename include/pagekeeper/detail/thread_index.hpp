// pagekeeper/detail/thread_index.hpp
//
// Small per-thread numbers that spread readers over a shard's read stripes.
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.

#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "pagekeeper/detail/mutex.hpp"

namespace pagekeeper::pool_detail {

// Small per-thread numbers: the lowest number not held by a live thread, taken on a thread's
// first use and given back when it exits, so that N live threads hold 0..N-1 however many
// threads came and went. Used to spread threads over the read stripes of a shard so that
// concurrent readers write different cache lines; collisions cost contention, never
// correctness. Thread-safe (one mutex, taken once per thread).
class ThreadIndexRegistry {
 public:
  static ThreadIndexRegistry& instance() {
    static auto* registry = new ThreadIndexRegistry();  // never destroyed: threads may outlive statics
    return *registry;
  }
  std::uint32_t acquire() {
    MutexLock lock(mutex_);
    const auto it = std::find(held_.begin(), held_.end(), false);
    if (it != held_.end()) {
      *it = true;
      return static_cast<std::uint32_t>(it - held_.begin());
    }
    held_.push_back(true);
    return static_cast<std::uint32_t>(held_.size() - 1);
  }
  void release(std::uint32_t index) {
    MutexLock lock(mutex_);
    held_[index] = false;
  }

 private:
  Mutex mutex_;
  std::vector<bool> held_ PAGEKEEPER_GUARDED_BY(mutex_);
};

// The fast path reads a constant-initialized thread_local (no TLS guard); the first call on
// a thread takes an index from the registry and registers its return at thread exit.
namespace thread_index_detail {
inline thread_local std::uint32_t cached = 0;  // index + 1; 0: none yet

[[gnu::noinline]] inline std::uint32_t assign() noexcept {
  struct Holder {
    std::uint32_t index = ThreadIndexRegistry::instance().acquire();
    Holder() = default;
    Holder(const Holder&) = delete;
    Holder& operator=(const Holder&) = delete;
    ~Holder() {
      cached = 0;
      ThreadIndexRegistry::instance().release(index);
    }
  };
  thread_local const Holder holder;
  cached = holder.index + 1;
  return holder.index;
}
}  // namespace thread_index_detail

inline std::uint32_t thread_index() noexcept {
  const std::uint32_t c = thread_index_detail::cached;
  if (c != 0) [[likely]] return c - 1;
  return thread_index_detail::assign();
}

}  // namespace pagekeeper::pool_detail
