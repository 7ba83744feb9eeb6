// pagekeeper/clock.hpp
//
// The one clock pagekeeper uses for recency and ages: monotonic milliseconds, cheap enough
// to read on every cache hit (CLOCK_MONOTONIC_COARSE on Linux: a few ns, 1-4 ms resolution).
// Wall-clock time is never used for ordering, so clock steps cannot reorder an LRU.
//
// Thread safety: free functions without shared state.

#pragma once

#include <cstdint>
#include <ctime>

namespace pagekeeper {

// Milliseconds on a monotonic clock with coarse resolution (a few ms).
inline std::int64_t monotonic_ms() noexcept {
  timespec ts{};
#ifdef CLOCK_MONOTONIC_COARSE
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
  clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Wall-clock Unix milliseconds, for timestamps shown to people (alerts), never for ordering.
inline std::int64_t unix_ms() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace pagekeeper
