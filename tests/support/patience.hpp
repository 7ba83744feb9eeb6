// How long tests wait for what happens on another thread or in another process (a broker
// pass, a server or redis-server start, a failover, a background trim). CI runs every test on
// a loaded two-core machine, under ASan (2-5x slower) and TSan (5-15x slower): a deadline
// that a slow run passes is a red build, while a generous one costs nothing when the test
// passes, because a wait ends as soon as its condition holds.
//
// Thread safety: eventually() touches only what its condition touches.

#pragma once

#include <chrono>
#include <thread>

namespace pagekeeper::test_support {

// The deadline of every wait for something another thread or process does.
inline constexpr std::chrono::seconds kPatience{60};

// Polls `condition` until it holds or `limit` passes; true when it held. Sleeps `period`
// between polls, so the thread or process it waits on gets the core.
template <typename Condition>
bool eventually(Condition&& condition, std::chrono::milliseconds period = std::chrono::milliseconds(1),
                std::chrono::steady_clock::duration limit = kPatience) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(period);
  }
  return condition();
}

}  // namespace pagekeeper::test_support
