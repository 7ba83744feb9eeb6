// Behaviour of PagedResourcePool: the original system's pool tests and what the
// pool adds to it (load_many, re-entrant loaders, clear() during a load, policies).

#include <atomic>
#include <cstring>
#include <functional>
#include <set>
#include <chrono>
#include <future>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "pagekeeper/pool.hpp"
#include "support/manual_clock.hpp"
#include "support/patience.hpp"

namespace pagekeeper {
namespace {

using namespace std::chrono_literals;
using StrPool = PagedResourcePool<std::string, std::uint64_t>;

// "prefix<i>" (built with append: GCC 12's -Wrestrict misfires on literal + std::string).
std::string numbered(const char* prefix, int i) {
  std::string s(prefix);
  s.append(std::to_string(i));
  return s;
}

// A pool whose values weigh what they say.
std::shared_ptr<StrPool> make_pool(std::uint64_t max_bytes, std::uint32_t shards = 1,
                                   double watermark = 1.0,
                                   EvictionPolicy<std::uint64_t> policy = EvictionPolicy<std::uint64_t>::lru(),
                                   std::function<std::int64_t()> clock = {}) {
  PoolConfig<std::string, std::uint64_t> c;
  c.name = "test";
  c.max_bytes = max_bytes;
  c.sizer = [](const std::uint64_t& v) { return v; };
  c.policy = policy;
  c.low_watermark = watermark;
  c.shards = shards;
  c.clock = std::move(clock);
  return std::make_shared<StrPool>(c);
}

TEST(Pool, MissThenHit) {
  auto pool = make_pool(1000);
  EXPECT_EQ(pool->get("a"), std::nullopt);
  pool->insert("a", 10);
  EXPECT_EQ(pool->get("a"), 10u);
  const auto st = pool->stats();
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.entry_count, 1u);
  EXPECT_EQ(st.total_bytes, 10u);
}

TEST(Pool, InvalidConfigNamesTheField) {
  PoolConfig<std::string, std::uint64_t> c;
  c.name = "x";
  c.max_bytes = 10;
  c.policy = EvictionPolicy<std::uint64_t>::lru();
  try {
    StrPool p(c);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("sizer"), std::string::npos);
  }
  c.sizer = [](const std::uint64_t& v) { return v; };
  c.low_watermark = 1.5;
  EXPECT_THROW(StrPool{c}, std::invalid_argument);
  c.low_watermark = 0.5;
  c.shards = 3;
  EXPECT_THROW(StrPool{c}, std::invalid_argument);
  c.shards = 0;
  c.name = "";
  EXPECT_THROW(StrPool{c}, std::invalid_argument);
  c.name = "x";
  c.policy.reset();
  EXPECT_THROW(StrPool{c}, std::invalid_argument);
}

TEST(Pool, SingleFlightThreeCallersOneLoad) {
  auto pool = make_pool(1000);
  std::atomic<int> loads{0};
  std::promise<void> started;
  auto started_future = started.get_future().share();
  auto loader = [&] {
    if (loads.fetch_add(1) == 0) {
      started.set_value();
      // Holds the load until both other callers have missed, so they find it in flight (or,
      // at worst, the loaded value): never a load of their own. Sleeps between polls: a spin
      // would take a core from the two callers it waits for.
      test_support::eventually([&] { return pool->stats().misses >= 3; });
    }
    return std::uint64_t{42};
  };
  auto first = std::async(std::launch::async, [&] { return pool->load_or_share("k", loader); });
  started_future.wait();
  auto second = std::async(std::launch::async, [&] { return pool->load_or_share("k", loader); });
  auto third = std::async(std::launch::async, [&] { return pool->load_or_share("k", loader); });
  EXPECT_EQ(first.get(), 42u);
  EXPECT_EQ(second.get(), 42u);
  EXPECT_EQ(third.get(), 42u);
  EXPECT_EQ(loads.load(), 1);
  EXPECT_EQ(pool->stats().misses, 3u);
  EXPECT_EQ(pool->stats().entry_count, 1u);
  EXPECT_EQ(pool->stats().inflight, 0u);
}

TEST(Pool, PinnedEntrySurvivesBudgetPressure) {
  auto pool = make_pool(100);
  pool->insert("pinned", 50);
  auto handle = pool->pin("pinned");
  ASSERT_TRUE(handle);
  for (int i = 0; i < 5; ++i) pool->insert(numbered("big", i), 80);
  EXPECT_TRUE(pool->contains("pinned"));
  EXPECT_EQ(*handle, 50u);
  EXPECT_EQ(pool->verify_invariants(), "");
}

TEST(Pool, BudgetHoldsAfterInserts) {
  auto pool = make_pool(100);
  for (int i = 0; i < 5; ++i) pool->insert(numbered("k", i), 30);
  const auto st = pool->stats();
  EXPECT_LE(st.total_bytes, 100u);
  EXPECT_GT(st.evictions, 0u);
}

TEST(Pool, LowWatermarkReproducesTheOriginal) {
  auto pool = make_pool(100, 1, 0.75);
  for (int i = 0; i < 3; ++i) pool->insert(numbered("k", i), 30);
  pool->insert("big", 50);
  EXPECT_LE(pool->stats().total_bytes, 75u);
}

TEST(Pool, DefaultWatermarkEvictsOnlyWhatIsNeeded) {
  auto pool = make_pool(100);
  for (int i = 0; i < 3; ++i) pool->insert(numbered("k", i), 30);
  pool->insert("big", 50);  // 140 > 100: evicting k0 and k1 (60) is needed
  EXPECT_EQ(pool->stats().total_bytes, 80u);
  EXPECT_EQ(pool->stats().evictions, 2u);
  EXPECT_TRUE(pool->contains("k2"));
}

TEST(Pool, DroppedPinHandleReleasesThePin) {
  auto pool = make_pool(100);
  pool->insert("a", 10);
  {
    auto h = pool->pin("a");
    EXPECT_EQ(pool->stats().pinned_count, 1u);
  }
  EXPECT_EQ(pool->stats().pinned_count, 0u);
}

TEST(Pool, ReleaseIsIdempotentAndHandlesMove) {
  auto pool = make_pool(100);
  pool->insert("a", 10);
  auto h = pool->pin("a");
  auto h2 = pool->pin("a");
  EXPECT_EQ(pool->snapshot().at(0).pin_count, 2u);
  auto moved = std::move(h);
  EXPECT_FALSE(h);  // NOLINT(bugprone-use-after-move): checking the moved-from state
  moved.release();
  moved.release();
  EXPECT_EQ(pool->snapshot().at(0).pin_count, 1u);
  EXPECT_EQ(pool->stats().pinned_count, 1u);
  h2.release();
  EXPECT_EQ(pool->stats().pinned_count, 0u);
  EXPECT_FALSE(pool->pin("missing"));
}

TEST(Pool, FailureReachesCallerAndIsNotCached) {
  auto pool = make_pool(100);
  EXPECT_THROW(pool->load_or_share("k", []() -> std::uint64_t { throw std::runtime_error("boom"); }),
               std::runtime_error);
  EXPECT_EQ(pool->stats().inflight, 0u);
  EXPECT_FALSE(pool->contains("k"));
  EXPECT_EQ(pool->load_or_share("k", [] { return std::uint64_t{12}; }), 12u);
}

TEST(Pool, FailureReachesEveryWaiter) {
  auto pool = make_pool(100);
  std::promise<void> release_loader;
  auto gate = release_loader.get_future().share();
  std::promise<void> started;
  auto loader_call = std::async(std::launch::async, [&] {
    return pool->load_or_share("k", [&]() -> std::uint64_t {
      started.set_value();
      gate.wait();
      throw std::runtime_error("boom");
    });
  });
  started.get_future().wait();
  auto waiter = std::async(std::launch::async, [&] {
    return pool->load_or_share("k", []() -> std::uint64_t { return 1; });
  });
  // The waiter has joined once inflight shows the slot and the waiter counted its miss.
  EXPECT_TRUE(test_support::eventually([&] { return pool->stats().misses >= 2; }));
  release_loader.set_value();
  EXPECT_THROW(loader_call.get(), std::runtime_error);
  try {
    waiter.get();
    // The waiter may have arrived after the failure cleared the slot and loaded itself.
    EXPECT_TRUE(pool->contains("k"));
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
    EXPECT_FALSE(pool->contains("k"));
  }
  EXPECT_EQ(pool->stats().inflight, 0u);
}

TEST(Pool, PressureIsUsageOverMax) {
  auto pool = make_pool(100);
  pool->insert("a", 25);
  EXPECT_DOUBLE_EQ(pool->stats().pressure, 0.25);
  EXPECT_DOUBLE_EQ(pool->pressure(), 0.25);
  auto empty = make_pool(0);
  EXPECT_FALSE(empty->insert("a", 1));
  EXPECT_DOUBLE_EQ(empty->stats().pressure, 0.0);
}

TEST(Pool, EvictAtLeastSkipsPinned) {
  auto pool = make_pool(1000);
  pool->insert("pinned", 100);
  auto h = pool->pin("pinned");
  pool->insert("a", 40);
  pool->insert("b", 50);
  pool->insert("c", 60);
  const auto freed = pool->evict_at_least(75);
  EXPECT_GE(freed, 75u);
  EXPECT_TRUE(pool->contains("pinned"));
  EXPECT_EQ(pool->stats().evictions, 2u);  // a (40) then b (50)
  EXPECT_EQ(pool->evict_at_least(0), 0u);
}

TEST(Pool, TraitSurface) {
  auto pool = make_pool(1000);
  pool->insert("a", 100);
  std::shared_ptr<ResourcePool> tier = pool;
  EXPECT_EQ(tier->tier_name(), "test");
  EXPECT_EQ(tier->capacity_bytes(), 1000u);
  EXPECT_EQ(tier->usage_bytes(), 100u);
  EXPECT_DOUBLE_EQ(tier->pressure(), 0.1);
  EXPECT_EQ(tier->stats().entry_count, 1u);
  ASSERT_EQ(tier->snapshot().size(), 1u);
  EXPECT_EQ(tier->snapshot()[0].key, "a");
  EXPECT_EQ(tier->snapshot()[0].size_bytes, 100u);
  EXPECT_EQ(tier->evict_at_least(1), 100u);
  EXPECT_EQ(tier->usage_bytes(), 0u);
}

// Regression for the original's sign bug: negated timestamps evicted the most recently used.
TEST(Pool, LruEvictsTheLeastRecentlyUsed) {
  for (std::uint32_t shards : {1u, 8u}) {
    const test_support::ManualClock clock(1'000'000);
    auto pool = make_pool(1000, shards, 1.0, EvictionPolicy<std::uint64_t>::lru(), clock.fn());
    pool->insert("old", 10);
    clock.advance(20);
    pool->insert("new", 10);
    clock.advance(20);
    ASSERT_TRUE(pool->get("new"));
    pool->evict_at_least(1);
    EXPECT_FALSE(pool->contains("old")) << shards << " shards";
    EXPECT_TRUE(pool->contains("new")) << shards << " shards";
  }
}

TEST(Pool, LruOrderFollowsReadsNotInserts) {
  auto pool = make_pool(30);
  pool->insert("a", 10);
  pool->insert("b", 10);
  pool->insert("c", 10);
  ASSERT_TRUE(pool->get("a"));  // b is now least recent
  pool->insert("d", 10);
  EXPECT_FALSE(pool->contains("b"));
  EXPECT_TRUE(pool->contains("a"));
  EXPECT_TRUE(pool->contains("c"));
  EXPECT_TRUE(pool->contains("d"));
}

TEST(Pool, PromotionDelaySkipsRecentReadsButCountsThem) {
  PoolConfig<std::string, std::uint64_t> c;
  c.name = "refresh";
  c.max_bytes = 30;
  c.sizer = [](const std::uint64_t& v) { return v; };
  c.policy = EvictionPolicy<std::uint64_t>::lru();
  c.shards = 1;
  c.lru_refresh_ms = 60'000;
  StrPool pool(c);
  pool.insert("a", 10);
  pool.insert("b", 10);
  pool.insert("c", 10);
  ASSERT_TRUE(pool.get("a"));  // a was refreshed at insert: counted, not promoted
  pool.insert("d", 10);
  EXPECT_FALSE(pool.contains("a"));  // still least recent (exact LRU would have kept it)
  EXPECT_EQ(pool.stats().hits, 1u);
  EXPECT_EQ(pool.verify_invariants(), "");
}

TEST(Pool, SizeAwareLruPrefersLargeAmongOld) {
  auto pool = make_pool(10'000'000, 1, 1.0, EvictionPolicy<std::uint64_t>::size_aware_lru(8));
  pool->insert("small", 1000);
  pool->insert("large", 1'000'000);
  pool->insert("mid", 10'000);
  pool->evict_at_least(1);
  EXPECT_FALSE(pool->contains("large"));
  EXPECT_TRUE(pool->contains("small"));
}

TEST(Pool, OversizeValueIsNotCachedAndDoesNotThrow) {
  auto pool = make_pool(100);
  pool->insert("k", 10);
  EXPECT_FALSE(pool->insert("k", 101));
  EXPECT_FALSE(pool->contains("k"));  // the stale value is gone too
  EXPECT_EQ(pool->stats().rejected_oversize, 1u);
  EXPECT_EQ(pool->load_or_share("big", [] { return std::uint64_t{500}; }), 500u);
  EXPECT_FALSE(pool->contains("big"));
  EXPECT_EQ(pool->verify_invariants(), "");
}

// A value whose moves throw std::bad_alloc once a per-thread allowance is used up: it
// makes every move an insert does a possible failure point (copies never throw).
struct FragileValue {
  static thread_local int moves_allowed;
  int id = 0;
  explicit FragileValue(int i) : id(i) {}
  FragileValue(const FragileValue&) = default;
  FragileValue& operator=(const FragileValue&) = default;
  FragileValue(FragileValue&& other) : id(other.id) {
    if (moves_allowed-- <= 0) throw std::bad_alloc();
  }
  FragileValue& operator=(FragileValue&& other) {
    if (moves_allowed-- <= 0) throw std::bad_alloc();
    id = other.id;
    return *this;
  }
  ~FragileValue() = default;
};
thread_local int FragileValue::moves_allowed = 1 << 30;

TEST(Pool, AReplacementThatFailsToBuildKeepsTheOldValue) {
  PoolConfig<std::string, FragileValue> c;
  c.name = "fragile";
  c.max_bytes = 1000;
  c.sizer = [](const FragileValue&) { return std::uint64_t{8}; };
  c.policy = EvictionPolicy<FragileValue>::lru();
  c.shards = 1;
  // Fail the replacement at its first move, then its second, ... until it goes through:
  // whichever step throws, the old value stays. A fresh pool each time, so the old entry is
  // still in the stage (where a replacement meets it) and nowhere else.
  int failures = 0;
  for (int allowed = 0;; ++allowed) {
    ASSERT_LT(allowed, 50);
    PagedResourcePool<std::string, FragileValue> pool(c);
    pool.insert("k", FragileValue(1));
    pool.insert("other", FragileValue(7));
    FragileValue::moves_allowed = allowed;
    try {
      pool.insert("k", FragileValue(2));
    } catch (const std::bad_alloc&) {
      FragileValue::moves_allowed = 1 << 30;
      ++failures;
      const auto v = pool.get("k");
      ASSERT_TRUE(v.has_value()) << "old value lost when move " << allowed << " failed";
      EXPECT_EQ(v->id, 1);
      EXPECT_EQ(pool.stats().entry_count, 2u);
      EXPECT_EQ(pool.verify_invariants(), "");
      continue;
    }
    FragileValue::moves_allowed = 1 << 30;
    EXPECT_EQ(pool.get("k")->id, 2);
    EXPECT_EQ(pool.get("other")->id, 7);
    EXPECT_EQ(pool.stats().entry_count, 2u);
    EXPECT_EQ(pool.verify_invariants(), "");
    break;
  }
  EXPECT_GT(failures, 0);
}

TEST(Pool, InsertReplacesAndOldPinsKeepTheOldValue) {
  auto pool = make_pool(100);
  pool->insert("k", 10);
  auto h = pool->pin("k");
  pool->insert("k", 20);
  EXPECT_EQ(*h, 10u);
  EXPECT_EQ(pool->get("k"), 20u);
  EXPECT_EQ(pool->stats().total_bytes, 20u);
  EXPECT_EQ(pool->stats().pinned_count, 0u);
  h.release();
  EXPECT_EQ(pool->verify_invariants(), "");
}

// New entries wait in a small per-shard stage before they reach the main table, and an
// insert looks for an older entry of its key only in the stage: one in the main table is
// replaced when the stage is flushed. These pin down what callers see meanwhile.
// push_out_of_stage() inserts enough other keys into a one-shard pool to flush "k" out of the stage.
void push_out_of_stage(StrPool& pool) {
  for (int i = 0; i < 40; ++i) pool.insert(numbered("filler", i), 1);
}

TEST(Pool, ReplacingAnEntryOfTheMainTableIsExactForObservers) {
  auto pool = make_pool(1000);
  pool->insert("k", 10);
  push_out_of_stage(*pool);
  pool->insert("k", 20);  // staged; the main table holds k=10 until the next flush
  EXPECT_EQ(pool->get("k"), 20u);
  EXPECT_TRUE(pool->contains("k"));
  const PoolStats st = pool->stats();
  EXPECT_EQ(st.entry_count, 41u);
  EXPECT_EQ(st.total_bytes, 60u);
  std::size_t k_rows = 0;
  for (const EntrySnapshot& e : pool->snapshot()) k_rows += e.key == "k" ? 1 : 0;
  EXPECT_EQ(k_rows, 1u);
  EXPECT_EQ(pool->verify_invariants(), "");
}

TEST(Pool, EvictingAStagedReplacementNeverResurrectsTheOldValue) {
  auto pool = make_pool(1000);
  pool->insert("k", 10);
  push_out_of_stage(*pool);
  pool->insert("k", 20);
  EXPECT_TRUE(pool->erase("k"));
  EXPECT_EQ(pool->get("k"), std::nullopt);
  EXPECT_FALSE(pool->erase("k"));
  EXPECT_EQ(pool->stats().total_bytes, 40u);
  EXPECT_EQ(pool->verify_invariants(), "");
}

TEST(Pool, LruEvictionOfAStagedReplacementTakesThePinnedOldEntryAlong) {
  auto pool = make_pool(1000);
  pool->insert("k", 10);
  push_out_of_stage(*pool);
  auto old = pool->pin("k");
  pool->insert("k", 20);
  // Evicts everything unpinned in LRU order: the new value goes, and the old one (replaced,
  // only kept by its pin) must go with it rather than become visible again.
  pool->evict_at_least(1'000'000);
  EXPECT_EQ(pool->get("k"), std::nullopt);
  EXPECT_EQ(*old, 10u);
  EXPECT_EQ(pool->stats().entry_count, 0u);
  EXPECT_EQ(pool->stats().pinned_count, 0u);
  old.release();
  EXPECT_EQ(pool->verify_invariants(), "");
}

TEST(SplitArena, ResetCarvesTheKeptBlocksAgainInOrderOnlyWhenNothingIsInUse) {
  pool_detail::SplitArena<16, 8, 40, 8> arena;
  std::vector<void*> headers;
  for (int i = 0; i < 100; ++i) headers.push_back(arena.allocate());
  void* kept = headers.back();
  headers.pop_back();
  for (void* p : headers) arena.deallocate(p);
  EXPECT_FALSE(arena.reset_if_unused());  // one entry is still in use
  arena.deallocate(kept);
  EXPECT_TRUE(arena.reset_if_unused());
  // Allocation starts over at the first block, in address order, not from the free list
  // (which would hand out the most recently freed entry, `kept`, first).
  EXPECT_EQ(arena.allocate(), headers.front());
  EXPECT_EQ(arena.allocate(), headers[1]);
}

TEST(SplitArena, RecordsAndHeadersLieInSeparateArraysAndFindEachOther) {
  using Arena = pool_detail::SplitArena<16, 8, 40, 8>;
  Arena arena;
  std::vector<void*> headers;
  // Past the first block and region, so that partner arithmetic is checked across blocks.
  const std::size_t n = 3 * Arena::kPerBlock + 5;
  for (std::size_t i = 0; i < n; ++i) headers.push_back(arena.allocate());
  std::set<std::uintptr_t> record_lines;
  std::set<std::uintptr_t> header_lines;
  for (void* h : headers) {
    void* r = Arena::record_of(h);
    EXPECT_EQ(Arena::header_of(r), h);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(r) % 8, 0u);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(h) % 8, 0u);
    // Each record and header is written whole: the test fails under ASan if a part
    // overlaps its neighbour's or lies outside the mapped block.
    std::memset(r, 0xab, 16);
    std::memset(h, 0xcd, 40);
    record_lines.insert(reinterpret_cast<std::uintptr_t>(r) / 64);
    record_lines.insert((reinterpret_cast<std::uintptr_t>(r) + 15) / 64);
    header_lines.insert(reinterpret_cast<std::uintptr_t>(h) / 64);
    header_lines.insert((reinterpret_cast<std::uintptr_t>(h) + 39) / 64);
  }
  for (void* h : headers) {
    const auto* r = static_cast<const unsigned char*>(Arena::record_of(h));
    for (int i = 0; i < 16; ++i) ASSERT_EQ(r[i], 0xab);  // no header write landed in a record
  }
  // No cache line holds both a record and a header.
  for (const std::uintptr_t line : record_lines) EXPECT_EQ(header_lines.count(line), 0u) << line;
  // Records are dense: four 16-byte records per line.
  EXPECT_LE(record_lines.size(), n / 4 + 4);
}

TEST(Pool, ClearThenRefillReusesTheArenaInOrder) {
  auto pool = make_pool(1'000'000);
  for (int i = 0; i < 1000; ++i) pool->insert(numbered("a", i), 1);
  auto pinned = pool->pin("a1");
  pool->clear();  // a pinned entry stays alive: the arena must not start over under it
  for (int i = 0; i < 1000; ++i) pool->insert(numbered("b", i), 2);
  EXPECT_EQ(*pinned, 1u);
  EXPECT_EQ(pinned.key(), "a1");
  pinned.release();
  pool->clear();  // nothing in use: reset
  for (int i = 0; i < 1000; ++i) pool->insert(numbered("c", i), 1);
  EXPECT_EQ(pool->stats().entry_count, 1000u);
  EXPECT_EQ(pool->verify_invariants(), "");
}

TEST(Pool, ForcedEvictIgnoresPinsAndHandleStaysReadable) {
  auto pool = make_pool(100);
  pool->insert("k", 10);
  auto h = pool->pin("k");
  EXPECT_TRUE(pool->erase("k"));
  EXPECT_FALSE(pool->erase("k"));
  EXPECT_FALSE(pool->contains("k"));
  EXPECT_EQ(*h, 10u);
  EXPECT_EQ(pool->stats().pinned_count, 0u);
  EXPECT_EQ(pool->stats().evictions, 1u);
}

TEST(Pool, HandleOutlivesThePool) {
  StrPool::PinHandle h;
  {
    auto pool = make_pool(100);
    pool->insert("k", 10);
    h = pool->pin("k");
  }
  EXPECT_EQ(*h, 10u);
  h.release();
}

TEST(Pool, ClearDropsEverythingAndResetsCounters) {
  auto pool = make_pool(100);
  pool->insert("a", 10);
  pool->insert("b", 10);
  auto h = pool->pin("a");
  (void)pool->get("a");
  (void)pool->get("zz");
  EXPECT_EQ(pool->clear(), 2u);
  const auto st = pool->stats();
  EXPECT_EQ(st.entry_count, 0u);
  EXPECT_EQ(st.total_bytes, 0u);
  EXPECT_EQ(st.hits, 0u);
  EXPECT_EQ(st.misses, 0u);
  EXPECT_EQ(st.evictions, 0u);
  EXPECT_EQ(st.pinned_count, 0u);
  EXPECT_EQ(*h, 10u);
}

TEST(Pool, ClearDuringALoadDetachesIt) {
  auto pool = make_pool(100);
  std::promise<void> started;
  std::promise<void> finish;
  auto finish_future = finish.get_future().share();
  auto loading = std::async(std::launch::async, [&] {
    return pool->load_or_share("k", [&] {
      started.set_value();
      finish_future.wait();
      return std::uint64_t{7};
    });
  });
  started.get_future().wait();
  EXPECT_EQ(pool->stats().inflight, 1u);
  pool->clear();
  EXPECT_EQ(pool->stats().inflight, 0u);
  // A load after clear() does not join the detached one.
  EXPECT_EQ(pool->load_or_share("k", [] { return std::uint64_t{9}; }), 9u);
  finish.set_value();
  EXPECT_EQ(loading.get(), 7u);    // the caller still gets its value...
  EXPECT_EQ(pool->get("k"), 9u);   // ...but it did not overwrite the post-clear state
  EXPECT_EQ(pool->verify_invariants(), "");
}

TEST(Pool, LoaderMayReadTheSamePool) {
  auto pool = make_pool(100);
  pool->insert("base", 5);
  const auto v = pool->load_or_share("derived", [&](const std::string&) {
    return *pool->get("base") + 1;  // re-entrant: the loader runs outside every lock
  });
  EXPECT_EQ(v, 6u);
  const auto many = pool->load_many({"x", "y"}, [&](const std::vector<std::string>& keys) {
    std::vector<std::uint64_t> out;
    for (std::size_t i = 0; i < keys.size(); ++i) out.push_back(*pool->get("base"));
    pool->insert("side", 1);
    return out;
  });
  EXPECT_EQ(many, (std::vector<std::uint64_t>{5, 5}));
}

TEST(Pool, LoadManyLoadsExactlyTheDistinctMissingKeysOnce) {
  auto pool = make_pool(1000);
  pool->insert("cached", 1);
  std::vector<std::vector<std::string>> calls;
  LoadManyStats st;
  const auto values = pool->load_many(
      {"a", "cached", "b", "a", "c", "b"},
      [&](const std::vector<std::string>& keys) {
        calls.push_back(keys);
        std::vector<std::uint64_t> out;
        for (const auto& k : keys) out.push_back(k[0] - 'a' + 10);
        return out;
      },
      &st);
  ASSERT_EQ(calls.size(), 1u);
  std::vector<std::string> got = calls[0];
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(values, (std::vector<std::uint64_t>{10, 1, 11, 10, 12, 11}));
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.loaded, 5u);
  EXPECT_EQ(st.loader_keys, 3u);
  EXPECT_EQ(st.joined, 0u);
  const auto ps = pool->stats();
  EXPECT_EQ(ps.hits + ps.misses, 6u);
  EXPECT_EQ(ps.entry_count, 4u);
  // All resident now: the loader is not called.
  int more_calls = 0;
  pool->load_many({"a", "b"}, [&](const std::vector<std::string>&) {
    ++more_calls;
    return std::vector<std::uint64_t>{};
  });
  EXPECT_EQ(more_calls, 0);
}

TEST(Pool, LoadOrShareJoinsAKeyInABatchInFlight) {
  auto pool = make_pool(1000);
  std::promise<void> started;
  std::promise<void> finish;
  auto finish_future = finish.get_future().share();
  std::atomic<int> batch_calls{0};
  auto batch = std::async(std::launch::async, [&] {
    return pool->load_many({"a", "b"}, [&](const std::vector<std::string>& keys) {
      ++batch_calls;
      started.set_value();
      finish_future.wait();
      return std::vector<std::uint64_t>(keys.size(), 3);
    });
  });
  started.get_future().wait();
  std::atomic<int> single_calls{0};
  auto single = std::async(std::launch::async, [&] {
    return pool->load_or_share("b", [&] {
      ++single_calls;
      return std::uint64_t{99};
    });
  });
  // A second batch overlapping the first joins "a" and loads only "z". Its loader runs after
  // it has claimed or joined every key, so the first batch is released only then.
  std::vector<std::string> second_keys;
  std::promise<void> second_claimed;
  auto second = std::async(std::launch::async, [&] {
    LoadManyStats st;
    auto v = pool->load_many({"a", "z"}, [&](const std::vector<std::string>& keys) {
      second_keys = keys;
      second_claimed.set_value();
      return std::vector<std::uint64_t>(keys.size(), 4);
    }, &st);
    EXPECT_EQ(st.joined, 1u);
    return v;
  });
  second_claimed.get_future().wait();
  // The single call looked up b.
  EXPECT_TRUE(test_support::eventually([&] { return pool->stats().misses >= 5; }));
  finish.set_value();
  EXPECT_EQ(batch.get(), (std::vector<std::uint64_t>{3, 3}));
  EXPECT_EQ(single.get(), 3u);
  EXPECT_EQ(second.get(), (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(second_keys, std::vector<std::string>{"z"});
  EXPECT_EQ(batch_calls.load(), 1);
  EXPECT_EQ(single_calls.load(), 0);
}

TEST(Pool, LoadManyFailureCachesNothing) {
  auto pool = make_pool(1000);
  EXPECT_THROW(pool->load_many({"a", "b"}, [](const std::vector<std::string>&) -> std::vector<std::uint64_t> {
    throw std::runtime_error("embedder down");
  }), std::runtime_error);
  EXPECT_EQ(pool->stats().entry_count, 0u);
  EXPECT_EQ(pool->stats().inflight, 0u);
  // A loader returning the wrong count is a LoadError, not a crash.
  EXPECT_THROW(pool->load_many({"a", "b"}, [](const std::vector<std::string>&) {
    return std::vector<std::uint64_t>{1};
  }), LoadError);
  EXPECT_EQ(pool->stats().entry_count, 0u);
  EXPECT_EQ(pool->stats().inflight, 0u);
  EXPECT_EQ(pool->load_many({"a"}, [](const std::vector<std::string>&) {
    return std::vector<std::uint64_t>{8};
  }), std::vector<std::uint64_t>{8});
}

TEST(Pool, CustomPriorityHonoursNeverEvict) {
  auto policy = EvictionPolicy<std::uint64_t>::custom([](const EntryView&, const std::uint64_t& v) {
    return v == 50 ? kNeverEvict : static_cast<std::int64_t>(100 - v);
  });
  auto pool = make_pool(100, 0, 1.0, policy);
  pool->insert("keep", 50);
  pool->insert("a", 20);
  pool->insert("b", 30);
  // Priority of a = 80, b = 70: b goes first.
  EXPECT_EQ(pool->evict_at_least(1), 30u);
  EXPECT_TRUE(pool->contains("a"));
  EXPECT_EQ(pool->evict_under_pressure(0.0), 20u);
  EXPECT_TRUE(pool->contains("keep"));  // skipped, not merely sorted last
  EXPECT_EQ(pool->stats().total_bytes, 50u);
}

TEST(Pool, SetMaxBytesResizesAndEvictsDownToTheNewBudget) {
  auto pool = make_pool(100);
  for (int i = 0; i < 10; ++i) pool->insert(numbered("k", i), 10);
  EXPECT_EQ(pool->set_max_bytes(50), 50u);
  EXPECT_EQ(pool->capacity_bytes(), 50u);
  EXPECT_EQ(pool->stats().max_bytes, 50u);
  EXPECT_DOUBLE_EQ(pool->stats().pressure, 1.0);
  EXPECT_TRUE(pool->contains("k9"));  // the most recent survive
  EXPECT_FALSE(pool->contains("k0"));
  EXPECT_FALSE(pool->insert("big", 60));  // larger than the new budget: not cached
  EXPECT_EQ(pool->set_max_bytes(1000), 0u);
  EXPECT_TRUE(pool->insert("big", 60));
  EXPECT_EQ(pool->config().max_bytes, 100u);
}

TEST(Pool, NeverEvictBytesCountAgainstTheBudgetLikePins) {
  auto policy = EvictionPolicy<std::uint64_t>::custom(
      [](const EntryView&, const std::uint64_t& v) { return v >= 40 ? kNeverEvict : 0; });
  auto pool = make_pool(100, 0, 1.0, policy);
  pool->insert("critical-a", 40);
  pool->insert("critical-b", 45);
  // Admitted, then its own victim: nothing else may go.
  EXPECT_TRUE(pool->insert("small", 20));
  EXPECT_FALSE(pool->contains("small"));
  EXPECT_TRUE(pool->contains("critical-a"));
  EXPECT_TRUE(pool->contains("critical-b"));
  EXPECT_EQ(pool->stats().total_bytes, 85u);
}

TEST(Pool, EvictUnderPressureRunsBelowMax) {
  auto pool = make_pool(100);
  for (int i = 0; i < 8; ++i) pool->insert(numbered("k", i), 10);
  EXPECT_EQ(pool->evict_under_pressure(0.5), 30u);
  EXPECT_EQ(pool->stats().total_bytes, 50u);
  EXPECT_THROW(pool->evict_under_pressure(-1.0), std::invalid_argument);
}

TEST(Pool, SnapshotReportsEntries) {
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "ints";
  c.max_bytes = 100;
  c.sizer = [](const std::uint64_t&) { return 8; };
  c.policy = EvictionPolicy<std::uint64_t>::lru();
  PagedResourcePool<std::uint64_t, std::uint64_t> pool(c);
  pool.insert(7, 70);
  (void)pool.get(7);
  auto h = pool.pin(7);
  const auto snap = pool.snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].key, "7");
  EXPECT_EQ(snap[0].size_bytes, 8u);
  EXPECT_EQ(snap[0].pin_count, 1u);
  EXPECT_EQ(snap[0].access_count, 2u);
  EXPECT_GE(snap[0].last_access_at_ms, snap[0].loaded_at_ms);
}

TEST(Pool, ManyEntriesAcrossShardsKeepInvariants) {
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "big";
  c.max_bytes = 8 * 5000;
  c.sizer = [](const std::uint64_t&) { return 8; };
  c.policy = EvictionPolicy<std::uint64_t>::lru();
  c.shards = 16;
  PagedResourcePool<std::uint64_t, std::uint64_t> pool(c);
  for (std::uint64_t i = 0; i < 20000; ++i) {
    pool.insert(i, i);
    if (i % 3 == 0) (void)pool.get(i / 2);
    if (i % 97 == 0) pool.erase(i - 5);
  }
  EXPECT_LE(pool.stats().total_bytes, c.max_bytes);
  EXPECT_EQ(pool.verify_invariants(), "");
  for (std::uint64_t i = 19990; i < 20000; ++i) EXPECT_EQ(pool.get(i), i);
}

}  // namespace
}  // namespace pagekeeper
