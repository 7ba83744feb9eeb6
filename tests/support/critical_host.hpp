// For tests of what the broker sheds under host pressure: a host whose memory is critically
// full (a SimulatedHostMemory of 1 GiB with 99% of it in use), and a broker configuration
// with the shedding bounds a test wants.
//
// Thread safety: as SimulatedHostMemory (any thread).

#pragma once

#include <cstdint>
#include <memory>

#include "pagekeeper/broker.hpp"
#include "pagekeeper/host_memory.hpp"

namespace pagekeeper::test_support {

inline std::shared_ptr<SimulatedHostMemory> critical_host() {
  constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
  return std::make_shared<SimulatedHostMemory>(kGiB, kGiB / 100 * 99);
}

// Defaults but for host shedding: a pass may take `per_pool_per_pass` of each pool, an
// episode `total` of what the pools hold.
inline BrokerConfig shedding_config(double per_pool_per_pass, double total) {
  BrokerConfig config;
  config.host_shedding.max_pool_fraction_per_pass = per_pool_per_pass;
  config.host_shedding.max_total_fraction = total;
  return config;
}

}  // namespace pagekeeper::test_support
