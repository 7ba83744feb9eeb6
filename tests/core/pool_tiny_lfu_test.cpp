// EvictionPolicy::tiny_lfu(): W-TinyLFU in the pool. What it keeps (frequent keys through a
// scan; recency when the trace is recency-biased), and what holds for every policy (budget
// in bytes, pins, broker evictions, shards, invariants). The frequency sketch on its own.

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pagekeeper/detail/frequency_sketch.hpp"
#include "pagekeeper/detail/window_trials.hpp"
#include "pagekeeper/pool.hpp"

namespace pagekeeper {
namespace {

using U64Pool = PagedResourcePool<std::uint64_t, std::uint64_t>;

// Values weigh what they say.
std::unique_ptr<U64Pool> make_pool(std::uint64_t max_bytes, EvictionPolicy<std::uint64_t> policy,
                                   std::uint32_t shards = 1) {
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "tinylfu";
  c.max_bytes = max_bytes;
  c.sizer = [](const std::uint64_t& v) { return v; };
  c.policy = std::move(policy);
  c.shards = shards;
  return std::make_unique<U64Pool>(c);
}

// The simulator's loop: a lookup, and on a miss an insert of a unit-size value.
std::uint64_t replay(U64Pool& pool, const std::vector<std::uint64_t>& keys) {
  std::uint64_t hits = 0;
  for (std::uint64_t k : keys) {
    if (pool.get(k)) {
      ++hits;
    } else {
      pool.insert(k, 1);
    }
  }
  return hits;
}

TEST(PoolTinyLfu, FrequentKeysSurviveAScanThatFlushesLru) {
  // 100 hot keys read 20 times each, then a scan of 5,000 keys read once, then the hot keys
  // again: in a 200-key cache LRU has lost them all, W-TinyLFU keeps them.
  std::vector<std::uint64_t> warm;
  for (int round = 0; round < 20; ++round) {
    for (std::uint64_t k = 0; k < 100; ++k) warm.push_back(k);
  }
  std::vector<std::uint64_t> scan;
  for (std::uint64_t k = 1000; k < 6000; ++k) scan.push_back(k);
  std::vector<std::uint64_t> hot;
  for (std::uint64_t k = 0; k < 100; ++k) hot.push_back(k);

  for (const bool tiny : {false, true}) {
    auto pool = make_pool(200, tiny ? EvictionPolicy<std::uint64_t>::tiny_lfu() : EvictionPolicy<std::uint64_t>::lru());
    replay(*pool, warm);
    replay(*pool, scan);
    const std::uint64_t hot_hits = replay(*pool, hot);
    if (tiny) {
      EXPECT_GE(hot_hits, 95u);
    } else {
      EXPECT_EQ(hot_hits, 0u);
    }
    EXPECT_EQ(pool->verify_invariants(), "");
  }
}

TEST(PoolTinyLfu, RecencyBiasedTraceGrowsTheWindowTowardsLru) {
  // Each key is read a few times within a short span and never again: recency is all that
  // predicts. A fixed 1% window loses most of LRU's hits; trials and hill climbing both grow
  // it and get within a few percent of LRU.
  std::mt19937_64 rng(7);
  std::vector<std::uint64_t> keys;
  for (std::uint64_t base = 0; keys.size() < 400'000; base += 50) {
    for (int i = 0; i < 200; ++i) keys.push_back(base + rng() % 300);
  }
  auto lru = make_pool(500, EvictionPolicy<std::uint64_t>::lru());
  TinyLfuOptions fixed;
  fixed.adapt = TinyLfuOptions::Adapt::kFixed;
  fixed.window_fraction = 0.01;
  TinyLfuOptions climbing;
  climbing.adapt = TinyLfuOptions::Adapt::kHillClimbing;
  auto fixed_window = make_pool(500, EvictionPolicy<std::uint64_t>::tiny_lfu(fixed));
  auto trials = make_pool(500, EvictionPolicy<std::uint64_t>::tiny_lfu());
  auto climber = make_pool(500, EvictionPolicy<std::uint64_t>::tiny_lfu(climbing));
  const double lru_hits = static_cast<double>(replay(*lru, keys));
  const double fixed_hits = static_cast<double>(replay(*fixed_window, keys));
  const double trial_hits = static_cast<double>(replay(*trials, keys));
  const double climber_hits = static_cast<double>(replay(*climber, keys));
  std::printf("recency-biased: lru %.0f, fixed 1%% window %.0f, trials %.0f, hill climbing %.0f hits\n", lru_hits,
              fixed_hits, trial_hits, climber_hits);
  EXPECT_LT(fixed_hits, 0.5 * lru_hits);
  EXPECT_GE(trial_hits, 0.9 * lru_hits);
  EXPECT_GE(climber_hits, 0.9 * lru_hits);
  EXPECT_EQ(trials->verify_invariants(), "");
  EXPECT_EQ(climber->verify_invariants(), "");
}

TEST(PoolTinyLfu, WeightedEntriesKeepTheBudgetAndTheAccounts) {
  auto pool = make_pool(10'000, EvictionPolicy<std::uint64_t>::tiny_lfu());
  std::mt19937_64 rng(11);
  for (int i = 0; i < 50'000; ++i) {
    const std::uint64_t key = rng() % 3000;
    if (!pool->get(key)) pool->insert(key, 1 + rng() % 400);
    ASSERT_LE(pool->usage_bytes(), 10'000u);
    if (i % 5000 == 0) {
      ASSERT_EQ(pool->verify_invariants(), "") << i;
    }
  }
  EXPECT_EQ(pool->verify_invariants(), "");
  EXPECT_GT(pool->stats().hits, 0u);
}

TEST(PoolTinyLfu, PinsHoldAgainstTheBudgetAndTheBroker) {
  auto pool = make_pool(100, EvictionPolicy<std::uint64_t>::tiny_lfu());
  pool->insert(1, 10);
  pool->insert(2, 10);
  auto pin1 = pool->pin(1);
  auto pin2 = pool->pin(2);
  for (std::uint64_t k = 10; k < 500; ++k) pool->insert(k, 10);
  EXPECT_TRUE(pool->contains(1));
  EXPECT_TRUE(pool->contains(2));
  EXPECT_LE(pool->usage_bytes(), 100u);
  // The broker takes everything it can: all but the pinned.
  pool->evict_at_least(1000);
  EXPECT_EQ(pool->usage_bytes(), 20u);
  EXPECT_EQ(pool->stats().pinned_count, 2u);
  pin1.release();
  EXPECT_EQ(pool->evict_at_least(1), 10u);
  EXPECT_FALSE(pool->contains(1));
  EXPECT_EQ(pool->verify_invariants(), "");
}

TEST(PoolTinyLfu, ShardsEachCountTheirOwnKeys) {
  auto pool = make_pool(8'000, EvictionPolicy<std::uint64_t>::tiny_lfu(), 8);
  // Keys 0..99 are read often; 100..49,999 once.
  std::uint64_t hot_hits = 0;
  for (std::uint64_t k = 100; k < 50'000; ++k) {
    for (std::uint64_t h = 0; h < 100; h += 7) {
      if (pool->get(h)) {
        ++hot_hits;
      } else {
        pool->insert(h, 10);
      }
    }
    if (!pool->get(k)) pool->insert(k, 10);
  }
  EXPECT_LE(pool->usage_bytes(), 8'000u);
  EXPECT_GT(hot_hits, 49'000u * 15 * 99 / 100);  // the hot keys stay through the scan
  EXPECT_EQ(pool->verify_invariants(), "");
  // A smaller budget is shared out again.
  pool->set_max_bytes(800);
  EXPECT_LE(pool->usage_bytes(), 800u);
  EXPECT_EQ(pool->verify_invariants(), "");
}

TEST(PoolTinyLfu, ClearAndReplacementsKeepTheRegionsConsistent) {
  auto pool = make_pool(1'000, EvictionPolicy<std::uint64_t>::tiny_lfu());
  std::mt19937_64 rng(5);
  for (int i = 0; i < 20'000; ++i) {
    const std::uint64_t key = rng() % 200;
    const std::uint64_t op = rng() % 8;
    if (op == 0) {
      pool->insert(key, 1 + rng() % 50);  // a replacement when resident
    } else if (op == 1) {
      pool->erase(key);
    } else if (op == 2) {
      if (rng() % 50 == 0) pool->clear();
    } else if (!pool->get(key)) {
      pool->insert(key, 1 + rng() % 50);
    }
    if (i % 1000 == 0) {
      ASSERT_EQ(pool->verify_invariants(), "") << i;
    }
  }
  EXPECT_EQ(pool->verify_invariants(), "");
}

TEST(PoolTinyLfu, RejectsAWindowOutsideZeroToOne) {
  TinyLfuOptions o;
  o.window_fraction = 1.0;
  EXPECT_THROW(EvictionPolicy<std::uint64_t>::tiny_lfu(o), std::invalid_argument);
  o.window_fraction = -0.1;
  EXPECT_THROW(EvictionPolicy<std::uint64_t>::tiny_lfu(o), std::invalid_argument);
  EXPECT_STREQ(EvictionPolicy<std::uint64_t>::tiny_lfu().name(), "tinylfu");
}

TEST(FrequencySketch, CountsSaturateAtFifteenAndHalveAfterTheSample) {
  pool_detail::FrequencySketch sketch;
  EXPECT_EQ(sketch.frequency(42), 0u);
  sketch.increment(42);  // before sizing: counts nothing
  EXPECT_EQ(sketch.frequency(42), 0u);
  sketch.ensure_capacity(512);
  EXPECT_EQ(sketch.sample_size(), 10240u);  // twenty times the capacity
  const std::uint64_t hot = 0x1234567890abcdefULL;
  for (int i = 0; i < 20; ++i) sketch.increment(hot);
  EXPECT_EQ(sketch.frequency(hot), 15u);
  // Fill the sample with other keys: every counter is halved once.
  std::uint64_t k = 1;
  while (sketch.frequency(hot) == 15) sketch.increment(k++ * 0x9e3779b97f4a7c15ULL);
  EXPECT_EQ(sketch.frequency(hot), 7u);
  EXPECT_LE(k, 10240u);
}

// increment_later() only moves the work: a sketch fed through it, with reads, growth and
// halvings interleaved at random points (including runs longer than the pending queue), holds
// exactly the counts of one fed through increment() at every read.
TEST(FrequencySketch, DeferredIncrementsReadExactlyAsImmediateOnes) {
  pool_detail::FrequencySketch now;
  pool_detail::FrequencySketch later;
  later.increment_later(5);  // before sizing: counts nothing, as increment() does
  now.ensure_capacity(64);
  later.ensure_capacity(64);
  EXPECT_EQ(later.frequency(5), 0u);
  std::mt19937_64 rng(7);
  std::uint64_t reads = 0;
  for (int step = 0; step < 200'000; ++step) {
    const std::uint64_t key = (rng() % 300) * 0x9e3779b97f4a7c15ULL;
    const std::uint64_t roll = rng() % 1000;
    if (roll < 5) {
      // A burst past the pending queue's bound before anything reads.
      for (std::size_t i = 0; i < pool_detail::FrequencySketch::kMaxDeferred + 3; ++i) {
        now.increment(key + i);
        later.increment_later(key + i);
      }
    } else if (roll < 6 && step > 100'000 && now.capacity() < 1024) {
      now.ensure_capacity(now.capacity() * 2);  // growth drops what was counted, pending too
      later.ensure_capacity(later.capacity() * 2);
    } else if (roll < 300) {
      ++reads;
      ASSERT_EQ(later.frequency(key), now.frequency(key)) << "step " << step;
    } else if (roll < 500) {
      now.increment(key);
      later.increment(key);  // an immediate increment after deferred ones keeps their order
    } else {
      now.increment(key);
      later.increment_later(key);
    }
  }
  later.settle();
  for (std::uint64_t k = 0; k < 400; ++k) {
    ASSERT_EQ(later.frequency(k * 0x9e3779b97f4a7c15ULL), now.frequency(k * 0x9e3779b97f4a7c15ULL));
  }
  EXPECT_GT(reads, 50'000u);
}

TEST(FrequencySketch, DistinctKeysRarelyShareAllFourCounters) {
  pool_detail::FrequencySketch sketch;
  sketch.ensure_capacity(4096);
  for (std::uint64_t k = 0; k < 2048; ++k) {
    for (int i = 0; i < 3; ++i) sketch.increment(k);
  }
  std::uint64_t overestimated = 0;
  for (std::uint64_t k = 100'000; k < 102'048; ++k) overestimated += sketch.frequency(k) > 0;
  EXPECT_LT(overestimated, 2048u / 20);  // fewer than 5% of unseen keys look seen
}

// A sketch of 2 MiB or more lives in its own huge-page-aligned mapping rather than on the
// heap: growing from a heap array into one, counting, halving and estimating there behave
// as in a small sketch (ASan checks the mapping is released exactly once).
TEST(FrequencySketch, HugePageSketchCountsHalvesAndGrows) {
  pool_detail::FrequencySketch sketch;
  sketch.ensure_capacity(1024);  // 16 KiB: heap
  sketch.increment(7);
  EXPECT_EQ(sketch.frequency(7), 1u);
  constexpr std::size_t kEntries = std::size_t{1} << 17;  // 2 words each: exactly 2 MiB
  sketch.ensure_capacity(kEntries);
  EXPECT_EQ(sketch.capacity(), kEntries);
  EXPECT_EQ(sketch.frequency(7), 0u);  // growing drops what was counted
  sketch.prefetch(7);
  for (int i = 0; i < 20; ++i) sketch.increment(7);
  EXPECT_EQ(sketch.frequency(7), 15u);
  std::uint64_t seen = 0;
  for (std::uint64_t k = 1; k <= kEntries; ++k) seen += sketch.frequency(k * 0x9e3779b97f4a7c15ULL) > 0;
  EXPECT_LT(seen, kEntries / 20);  // fresh mapping: zeroed, bar the one key counted
  std::uint64_t k = 1;
  while (sketch.frequency(7) == 15) sketch.increment(k++ * 0xd6e8feb86659fd93ULL);
  EXPECT_EQ(sketch.frequency(7), 7u);
  EXPECT_LE(k, sketch.sample_size());
  sketch.ensure_capacity(2 * kEntries);  // mapped to a larger mapping
  EXPECT_EQ(sketch.frequency(7), 0u);
  sketch.increment(7);
  EXPECT_EQ(sketch.frequency(7), 1u);
}

// The trials' node table moves nodes when it grows and when a deletion shifts a probe run
// back: every move must leave the nodes findable by hash and the lists they are linked in
// intact. Random inserts, hits and removals against a std::map, with the list walked in
// both directions after each step.
TEST(TrialNodeTable, NodesStayFindableAndLinkedAcrossGrowthAndDeletion) {
  pool_detail::TrialNodeTable table;
  pool_detail::LinkList list;
  std::map<std::uint64_t, std::uint64_t> reference;  // hash -> size
  std::mt19937_64 rng(42);
  const auto check = [&] {
    ASSERT_EQ(table.size(), reference.size());
    std::size_t forward = 0;
    for (pool_detail::Link* l = list.front(); l != list.end(); l = l->next, ++forward) {
      ASSERT_EQ(l->next->prev, l);
      const auto* n = static_cast<const pool_detail::TrialNode*>(l);
      ASSERT_EQ(reference.count(n->hash), 1u);
      ASSERT_EQ(n->size, reference[n->hash]);
    }
    ASSERT_EQ(forward, reference.size());
  };
  for (int step = 0; step < 20'000; ++step) {
    // Few distinct hashes (dense, long probe runs), all sharing their low bits as the
    // sampled ones do; 60% inserts so the table grows several times.
    const std::uint64_t h = (rng() % 3000) << 20;
    pool_detail::TrialNode* found = table.find(h);
    ASSERT_EQ(found != nullptr, reference.count(h) == 1);
    if (found != nullptr && rng() % 5 < 2) {
      pool_detail::LinkList::unlink(found);
      table.erase(found);
      reference.erase(h);
    } else if (found != nullptr) {
      list.move_to_front(found);
    } else {
      pool_detail::TrialNode& n = table.emplace(h);
      n.size = h >> 20;
      list.push_front(&n);
      reference[h] = n.size;
    }
    if (step % 97 == 0) check();
  }
  check();
  // Drain it from the list's tail, as evictions do.
  while (!list.empty()) {
    auto* n = static_cast<pool_detail::TrialNode*>(list.back());
    reference.erase(n->hash);
    pool_detail::LinkList::unlink(n);
    table.erase(n);
  }
  check();
  EXPECT_EQ(table.find(std::uint64_t{7} << 20), nullptr);
}

}  // namespace
}  // namespace pagekeeper
