// libFuzzer target: sequences of PagedResourcePool operations, checking the pool's own
// invariants (verify_invariants(): bytes accounted, table, policy and counters agree) as it
// goes, for every eviction policy.
//
// Byte 0 picks the policy (LRU, size-aware LRU, W-TinyLFU with a fixed window, with trials
// or with hill climbing, custom) and
// the shard count; then each operation takes two bytes: an opcode and an argument (a key
// among 64, a size, a fraction). Values encode their size, so the sizer needs no state.
// Any trap, crash or sanitizer report is a bug.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "pagekeeper/pool.hpp"

namespace {

using Pool = pagekeeper::PagedResourcePool<std::uint64_t, std::uint64_t>;
using Policy = pagekeeper::EvictionPolicy<std::uint64_t>;

Policy policy_for(std::uint8_t choice) {
  pagekeeper::TinyLfuOptions fixed;
  fixed.adapt = pagekeeper::TinyLfuOptions::Adapt::kFixed;
  fixed.window_fraction = 0.25;
  pagekeeper::TinyLfuOptions climbing;
  climbing.adapt = pagekeeper::TinyLfuOptions::Adapt::kHillClimbing;
  switch (choice % 6) {
    case 0: return Policy::lru();
    case 1: return Policy::size_aware_lru(4);
    case 2: return Policy::tiny_lfu(fixed);
    case 3: return Policy::tiny_lfu();
    case 4: return Policy::tiny_lfu(climbing);
    default:
      return Policy::custom([](const pagekeeper::EntryView& view, const std::uint64_t& value) {
        return value % 7 == 0 ? pagekeeper::kNeverEvict : static_cast<std::int64_t>(view.size_bytes);
      });
  }
}

void check(const Pool& pool) {
  if (!pool.verify_invariants().empty()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  pagekeeper::PoolConfig<std::uint64_t, std::uint64_t> config;
  config.name = "fuzz";
  config.max_bytes = 512;
  config.sizer = [](const std::uint64_t& value) { return value & 0xff; };
  config.policy = policy_for(data[0]);
  config.shards = (data[0] / 6) % 2 == 0 ? 1 : 4;
  Pool pool(config);
  std::vector<Pool::PinHandle> pins;
  std::uint64_t serial = 0;
  for (std::size_t i = 1; i + 1 < size; i += 2) {
    const std::uint8_t op = data[i];
    const std::uint8_t arg = data[i + 1];
    const std::uint64_t key = arg % 64;
    switch (op % 12) {
      case 0:
      case 1:
      case 2:
        (void)pool.get(key);
        break;
      case 3:
      case 4: {
        const std::uint64_t bytes = 1 + (op >> 4) * 9 + arg % 3;  // 1..138, some above max/4
        (void)pool.insert(key, ((++serial) << 8) | bytes);
        break;
      }
      case 5:
        if (auto handle = pool.pin(key)) pins.push_back(std::move(handle));
        break;
      case 6:
        if (!pins.empty()) pins.erase(pins.begin() + static_cast<std::ptrdiff_t>(arg % pins.size()));
        break;
      case 7:
        (void)pool.erase(key);
        break;
      case 8:
        (void)pool.evict_at_least(arg);
        break;
      case 9:
        (void)pool.set_max_bytes(64 + static_cast<std::uint64_t>(arg) * 4);
        break;
      case 10:
        try {
          (void)pool.load_or_share(key, [&]() -> std::uint64_t {
            if (arg % 5 == 0) throw std::runtime_error("load failed");
            return ((++serial) << 8) | (1 + arg % 40);
          });
        } catch (const std::runtime_error&) {
        }
        break;
      default:
        if (arg % 16 == 0) {
          (void)pool.clear();
        } else {
          (void)pool.evict_under_pressure(static_cast<double>(arg % 11) / 10.0);
        }
        break;
    }
    if (i % 16 == 1) check(pool);
  }
  check(pool);
  // Pinned values stay readable after everything above.
  for (const auto& handle : pins) {
    if ((*handle & 0xff) == 0) __builtin_trap();
  }
  return 0;
}
