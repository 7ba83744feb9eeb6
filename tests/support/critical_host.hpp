// A host whose memory is critically full, for tests of what the broker sheds under host
// pressure: a SimulatedHostMemory of 1 GiB with 99% of it in use.
//
// Thread safety: as SimulatedHostMemory (any thread).

#pragma once

#include <cstdint>
#include <memory>

#include "pagekeeper/host_memory.hpp"

namespace pagekeeper::test_support {

inline std::shared_ptr<SimulatedHostMemory> critical_host() {
  constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
  return std::make_shared<SimulatedHostMemory>(kGiB, kGiB / 100 * 99);
}

}  // namespace pagekeeper::test_support
