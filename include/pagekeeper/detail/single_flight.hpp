// pagekeeper/detail/single_flight.hpp
//
// Flight: one load in flight, shared by the caller that runs the loader and every caller
// that joins it (the pool's single flight).
//
// Internal to PagedResourcePool (pagekeeper/pool.hpp): not part of the public API.

#pragma once

#include <cstddef>
#include <exception>
#include <optional>

#include "pagekeeper/detail/mutex.hpp"

namespace pagekeeper::pool_detail {

// One load in flight: the loader's caller completes it, joiners wait on it. Lighter than
// std::promise/shared_future (no call_once, no futex wake when nobody waits), which matters
// on the all-miss path of a batch: one slot per missing key.
template <class V>
struct Flight {
  Mutex mutex;
  CondVar ready;
  bool done PAGEKEEPER_GUARDED_BY(mutex) = false;
  std::size_t waiters PAGEKEEPER_GUARDED_BY(mutex) = 0;
  // Written once under `mutex`, before done; immutable after, so wait() returns a reference
  // that outlives its lock.
  std::optional<V> value PAGEKEEPER_GUARDED_BY(mutex);
  std::exception_ptr error PAGEKEEPER_GUARDED_BY(mutex);
  // Set under the shard's lock by a caller that joins this load (the analysis cannot name
  // a lock outside this object). The loader's caller completes the flight only if someone
  // joined: the in-flight slot is removed under the same lock first, so nobody can join
  // after it reads this.
  bool joined = false;

  void set_value(const V& v) PAGEKEEPER_EXCLUDES(mutex) {
    bool notify = false;
    {
      MutexLock lock(mutex);
      value.emplace(v);
      done = true;
      notify = waiters > 0;
    }
    if (notify) ready.notify_all();
  }
  void set_exception(std::exception_ptr e) PAGEKEEPER_EXCLUDES(mutex) {
    bool notify = false;
    {
      MutexLock lock(mutex);
      error = std::move(e);
      done = true;
      notify = waiters > 0;
    }
    if (notify) ready.notify_all();
  }
  // Blocks until completed; returns the value or rethrows the loader's exception. The
  // reference stays valid while the caller holds its shared_ptr to this flight.
  const V& wait() PAGEKEEPER_EXCLUDES(mutex) {
    MutexLock lock(mutex);
    ++waiters;
    ready.wait(lock, [this] {
      mutex.assert_held();
      return done;
    });
    --waiters;
    if (error) std::rethrow_exception(error);
    return *value;
  }
};

}  // namespace pagekeeper::pool_detail
