// pagekeeper/detail/single_flight.hpp
//
// Flight: one load in flight, shared by the caller that runs the loader and every caller
// that joins it (the pool's single flight).
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.

#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>

namespace pagekeeper::pool_detail {

// One load in flight: the loader's caller completes it, joiners wait on it. Lighter than
// std::promise/shared_future (no call_once, no futex wake when nobody waits), which matters
// on the all-miss path of a batch: one slot per missing key.
template <class V>
struct Flight {
  std::mutex mutex;
  std::condition_variable ready;
  bool done = false;         // guarded by mutex
  std::size_t waiters = 0;   // guarded by mutex
  std::optional<V> value;    // written once, before done; immutable after
  std::exception_ptr error;  // likewise
  // Set under the shard's lock by a caller that joins this load. The loader's caller
  // completes the flight only if someone joined: the in-flight slot is removed under the
  // same lock first, so nobody can join after it reads this.
  bool joined = false;

  void set_value(const V& v) {
    bool notify = false;
    {
      std::lock_guard<std::mutex> lock(mutex);
      value.emplace(v);
      done = true;
      notify = waiters > 0;
    }
    if (notify) ready.notify_all();
  }
  void set_exception(std::exception_ptr e) {
    bool notify = false;
    {
      std::lock_guard<std::mutex> lock(mutex);
      error = std::move(e);
      done = true;
      notify = waiters > 0;
    }
    if (notify) ready.notify_all();
  }
  // Blocks until completed; returns the value or rethrows the loader's exception. The
  // reference stays valid while the caller holds its shared_ptr to this flight.
  const V& wait() {
    std::unique_lock<std::mutex> lock(mutex);
    ++waiters;
    ready.wait(lock, [this] { return done; });
    --waiters;
    if (error) std::rethrow_exception(error);
    return *value;
  }
};

}  // namespace pagekeeper::pool_detail
