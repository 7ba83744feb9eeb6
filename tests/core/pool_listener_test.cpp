// The pool's removal listener (every way an entry leaves, with its key, value, size and
// cause) and its injectable clock (recency, load times and the promotion delay follow it).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "pagekeeper/pool.hpp"
#include "support/manual_clock.hpp"

namespace pagekeeper {
namespace {

using StrPool = PagedResourcePool<std::string, std::uint64_t>;
using test_support::ManualClock;

struct Removal {
  std::string key;
  std::uint64_t value;
  std::uint64_t size;
  RemovalCause cause;
  bool operator==(const Removal&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Removal& r) {
  return os << r.key << "=" << r.value << " (" << r.size << " B, " << to_string(r.cause) << ")";
}

// A pool whose values weigh what they say, recording every removal (one shard: exact order).
struct ListenedPool {
  explicit ListenedPool(std::uint64_t max_bytes,
                        EvictionPolicy<std::uint64_t> policy = EvictionPolicy<std::uint64_t>::lru()) {
    PoolConfig<std::string, std::uint64_t> c;
    c.name = "listened";
    c.max_bytes = max_bytes;
    c.sizer = [](const std::uint64_t& v) { return v; };
    c.policy = std::move(policy);
    c.shards = 1;
    c.removal_listener = [this](const std::string& k, const std::uint64_t& v, std::uint64_t size,
                                RemovalCause cause) { removals.push_back({k, v, size, cause}); };
    pool = std::make_unique<StrPool>(c);
  }
  std::vector<Removal> take() { return std::exchange(removals, {}); }

  std::vector<Removal> removals;  // written under the pool's lock, read by the test thread only
  std::unique_ptr<StrPool> pool;
};

TEST(PoolRemovalListener, HearsEveryCauseWithKeyValueAndSize) {
  ListenedPool lp(30);
  StrPool& pool = *lp.pool;
  pool.insert("a", 10);
  pool.insert("b", 10);
  pool.insert("c", 10);
  EXPECT_TRUE(lp.take().empty());

  pool.insert("d", 10);  // the budget needs room: a, the least recent, goes
  EXPECT_EQ(lp.take(), (std::vector<Removal>{{"a", 10, 10, RemovalCause::kEvicted}}));

  EXPECT_TRUE(pool.erase("c"));
  EXPECT_EQ(lp.take(), (std::vector<Removal>{{"c", 10, 10, RemovalCause::kErased}}));
  EXPECT_FALSE(pool.erase("c"));
  EXPECT_TRUE(lp.take().empty());

  pool.insert("b", 9);  // fits; b is still staged, so it is replaced at once
  EXPECT_EQ(lp.take(), (std::vector<Removal>{{"b", 10, 10, RemovalCause::kReplaced}}));

  EXPECT_EQ(pool.evict_at_least(1), 10u);  // d is now the least recent
  EXPECT_EQ(lp.take(), (std::vector<Removal>{{"d", 10, 10, RemovalCause::kExpiredByBroker}}));

  pool.insert("e", 5);
  EXPECT_EQ(pool.evict_under_pressure(0.2), 9u);  // b (9 B) goes, e (5 B) fits under 6 B
  EXPECT_EQ(lp.take(), (std::vector<Removal>{{"b", 9, 9, RemovalCause::kExpiredByBroker}}));

  pool.insert("f", 7);
  EXPECT_EQ(pool.clear(), 2u);
  auto cleared = lp.take();
  std::sort(cleared.begin(), cleared.end(), [](const Removal& x, const Removal& y) { return x.key < y.key; });
  EXPECT_EQ(cleared, (std::vector<Removal>{{"e", 5, 5, RemovalCause::kCleared},
                                           {"f", 7, 7, RemovalCause::kCleared}}));
  EXPECT_EQ(pool.verify_invariants(), "");
}

TEST(PoolRemovalListener, ReplacementInTheMainTableAndStaleOversizeAreReplacements) {
  ListenedPool lp(1000);
  StrPool& pool = *lp.pool;
  pool.insert("old", 10);
  for (int i = 0; i < 40; ++i) pool.insert("filler" + std::to_string(i), 1);  // flushes the stage
  pool.insert("old", 20);
  (void)pool.stats();  // flushes: the main table's entry is replaced now
  EXPECT_EQ(lp.take(), (std::vector<Removal>{{"old", 10, 10, RemovalCause::kReplaced}}));

  EXPECT_FALSE(pool.insert("old", 5000));  // not cached; the resident value is stale
  EXPECT_EQ(lp.take(), (std::vector<Removal>{{"old", 20, 20, RemovalCause::kReplaced}}));
  EXPECT_EQ(pool.stats().rejected_oversize, 1u);
}

TEST(PoolRemovalListener, SetMaxBytesEvictionsAreEvictions) {
  ListenedPool lp(100);
  StrPool& pool = *lp.pool;
  for (int i = 0; i < 5; ++i) pool.insert("k" + std::to_string(i), 20);
  EXPECT_EQ(pool.set_max_bytes(60), 40u);
  EXPECT_EQ(lp.take(), (std::vector<Removal>{{"k0", 20, 20, RemovalCause::kEvicted},
                                             {"k1", 20, 20, RemovalCause::kEvicted}}));
}

TEST(PoolRemovalListener, CustomPriorityEvictionsAreHeard) {
  ListenedPool lp(30, EvictionPolicy<std::uint64_t>::custom(
                          [](const EntryView&, const std::uint64_t& v) { return static_cast<std::int64_t>(v); }));
  StrPool& pool = *lp.pool;
  pool.insert("twelve", 12);
  pool.insert("eight", 8);
  pool.insert("ten", 10);
  pool.insert("nine", 9);  // 39 of 30 bytes: the lowest priorities go first, eight then nine
  EXPECT_EQ(lp.take(), (std::vector<Removal>{{"eight", 8, 8, RemovalCause::kEvicted},
                                             {"nine", 9, 9, RemovalCause::kEvicted}}));
}

TEST(PoolRemovalListener, APinnedValueIsHeardOnRemovalAndStaysReadable) {
  ListenedPool lp(100);
  StrPool& pool = *lp.pool;
  pool.insert("pinned", 10);
  auto handle = pool.pin("pinned");
  ASSERT_TRUE(handle);
  EXPECT_EQ(pool.evict_at_least(1), 0u);  // pins hold against pressure: nothing heard
  EXPECT_TRUE(lp.take().empty());
  EXPECT_TRUE(pool.erase("pinned"));
  EXPECT_EQ(lp.take(), (std::vector<Removal>{{"pinned", 10, 10, RemovalCause::kErased}}));
  EXPECT_EQ(*handle, 10u);
}

// A one-shard LRU pool of values that weigh what they say, on `clock`.
std::unique_ptr<StrPool> make_clocked_pool(const ManualClock& clock, std::uint64_t max_bytes,
                                           std::uint32_t lru_refresh_ms) {
  PoolConfig<std::string, std::uint64_t> c;
  c.name = "clocked";
  c.max_bytes = max_bytes;
  c.sizer = [](const std::uint64_t& v) { return v; };
  c.policy = EvictionPolicy<std::uint64_t>::lru();
  c.shards = 1;
  c.lru_refresh_ms = lru_refresh_ms;
  c.clock = clock;
  return std::make_unique<StrPool>(c);
}

TEST(PoolClock, RecencyAndLoadTimesFollowTheInjectedClock) {
  ManualClock clock{1'000'000};
  auto owned = make_clocked_pool(clock, 100, 0);
  StrPool& pool = *owned;
  clock.advance(5'000);
  pool.insert("a", 10);
  clock.advance(42);
  ASSERT_TRUE(pool.get("a"));
  const auto snap = pool.snapshot();  // replays the read: recency is the clock's at the drain
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].loaded_at_ms, 1'005'000);  // whole seconds since the pool's creation
  EXPECT_EQ(snap[0].last_access_at_ms, 1'005'042);
  EXPECT_EQ(snap[0].access_count, 2u);
}

TEST(PoolClock, PromotionDelayIsMeasuredOnTheInjectedClock) {
  ManualClock clock{1'000'000};
  auto owned = make_clocked_pool(clock, 30, 100);
  StrPool& pool = *owned;
  pool.insert("a", 10);
  pool.insert("b", 10);
  pool.insert("c", 10);
  clock.advance(99);
  ASSERT_TRUE(pool.get("a"));  // 99 ms after its insert: counted, not promoted
  pool.insert("d", 10);
  EXPECT_FALSE(pool.contains("a"));
  clock.advance(1);
  ASSERT_TRUE(pool.get("b"));  // 100 ms after its insert: promoted past c and d
  pool.insert("e", 10);
  EXPECT_TRUE(pool.contains("b"));
  EXPECT_FALSE(pool.contains("c"));
  EXPECT_EQ(pool.stats().hits, 2u);
}

}  // namespace
}  // namespace pagekeeper
