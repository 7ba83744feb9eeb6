// The pool's hash table under keys whose hashes collide: probe runs many chunks long,
// overflow counts that saturate, erasures in the middle of a run, lock-free readers while
// the run changes. verify_invariants() audits the table (entry count, every chunk's
// overflow count) besides finding every listed entry through it.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include <gtest/gtest.h>

#include "pagekeeper/pool.hpp"

namespace pagekeeper {
namespace {

// Every key has the same hash: one probe run holds them all.
struct ConstantHash {
  std::size_t operator()(std::uint64_t) const noexcept { return 42; }
};
// Seven hashes in all: seven runs that meet and interleave.
struct SevenHashes {
  std::size_t operator()(std::uint64_t k) const noexcept { return k % 7; }
};

template <class Hash>
using U64Pool = PagedResourcePool<std::uint64_t, std::uint64_t, Hash>;

template <class Hash>
std::unique_ptr<U64Pool<Hash>> make_pool(std::uint64_t max_entries) {
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "colliding";
  c.max_bytes = max_entries * 8;
  c.sizer = [](const std::uint64_t&) { return std::uint64_t{8}; };
  c.policy = EvictionPolicy<std::uint64_t>::lru();
  c.shards = 1;
  return std::make_unique<U64Pool<Hash>>(c);
}

std::uint64_t value_of(std::uint64_t key) { return key * 3 + 1; }

TEST(PoolTable, OneHashForEveryKeyKeepsEveryKeyFindable) {
  // 2,000 keys in one run: about 286 chunks, so the home chunk's overflow count saturates.
  constexpr std::uint64_t kKeys = 2000;
  auto pool = make_pool<ConstantHash>(10 * kKeys);
  for (std::uint64_t k = 0; k < kKeys; ++k) ASSERT_TRUE(pool->insert(k, value_of(k)));
  EXPECT_EQ(pool->verify_invariants(), "");
  for (std::uint64_t k = 0; k < kKeys; ++k) ASSERT_EQ(pool->get(k), value_of(k)) << k;
  for (std::uint64_t k = kKeys; k < kKeys + 50; ++k) EXPECT_EQ(pool->get(k), std::nullopt);

  // Holes in the middle of the run: what lies beyond them stays reachable.
  for (std::uint64_t k = 0; k < kKeys; k += 3) pool->erase(k);
  EXPECT_EQ(pool->verify_invariants(), "");
  for (std::uint64_t k = 0; k < kKeys; ++k) {
    ASSERT_EQ(pool->get(k), k % 3 == 0 ? std::nullopt : std::optional<std::uint64_t>(value_of(k))) << k;
  }
  // Refilled holes, and replacements of keys deep in the run.
  for (std::uint64_t k = 0; k < kKeys; k += 3) pool->insert(k, value_of(k));
  for (std::uint64_t k = 1; k < kKeys; k += 5) pool->insert(k, value_of(k) + 7);
  EXPECT_EQ(pool->verify_invariants(), "");
  for (std::uint64_t k = 0; k < kKeys; ++k) {
    ASSERT_EQ(pool->get(k), value_of(k) + (k % 5 == 1 ? 7 : 0)) << k;
  }
  EXPECT_EQ(pool->stats().entry_count, kKeys);
}

// A table of 2 MiB or more is mapped from a huge-page boundary (with transparent huge pages
// where the kernel gives them): one shard grown through 1, 2 and 4 MiB tables keeps every key
// findable and its value right, through the growths, erasures and a clear (ASan checks each
// mapping is used within bounds and released once).
TEST(PoolTable, TablesGrownPastTheHugePageSizeKeepEveryKey) {
  constexpr std::uint64_t kKeys = 300'000;
  auto pool = make_pool<std::hash<std::uint64_t>>(2 * kKeys);
  for (std::uint64_t k = 0; k < kKeys; ++k) {
    ASSERT_TRUE(pool->insert(k * 0x9E3779B97F4A7C15ULL, value_of(k)));
    // Just past each power of two the table has just grown: every key must still be found.
    if (k > 1000 && (k & (k - 1)) == 0) {
      for (std::uint64_t j = 0; j <= k; j += 97) ASSERT_EQ(pool->get(j * 0x9E3779B97F4A7C15ULL), value_of(j)) << j;
    }
  }
  EXPECT_EQ(pool->verify_invariants(), "");
  for (std::uint64_t k = 0; k < kKeys; ++k) ASSERT_EQ(pool->get(k * 0x9E3779B97F4A7C15ULL), value_of(k)) << k;
  for (std::uint64_t k = 0; k < kKeys; k += 2) pool->erase(k * 0x9E3779B97F4A7C15ULL);
  EXPECT_EQ(pool->verify_invariants(), "");
  for (std::uint64_t k = 0; k < kKeys; ++k) {
    ASSERT_EQ(pool->get(k * 0x9E3779B97F4A7C15ULL), k % 2 == 0 ? std::nullopt : std::optional<std::uint64_t>(value_of(k)));
  }
  pool->clear();
  EXPECT_EQ(pool->stats().entry_count, 0u);
  EXPECT_EQ(pool->get(0x9E3779B97F4A7C15ULL), std::nullopt);
}

TEST(PoolTable, RandomOperationsOnCollidingKeysAgreeWithAModel) {
  constexpr std::uint64_t kKeySpace = 3000;
  auto pool = make_pool<SevenHashes>(10 * kKeySpace);  // no budget evictions: the model is exact
  std::unordered_map<std::uint64_t, std::uint64_t> model;
  std::mt19937_64 rng(7);
  for (int op = 0; op < 200000; ++op) {
    const std::uint64_t k = rng() % kKeySpace;
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2: {
        const std::uint64_t v = rng();
        pool->insert(k, v);
        model[k] = v;
        break;
      }
      case 3:
      case 4:
        pool->erase(k);
        model.erase(k);
        break;
      default: {
        const auto it = model.find(k);
        ASSERT_EQ(pool->get(k), it == model.end() ? std::nullopt : std::optional<std::uint64_t>(it->second))
            << "op " << op << " key " << k;
      }
    }
    if (op % 20000 == 0) {
      ASSERT_EQ(pool->verify_invariants(), "") << "op " << op;
    }
    if (op == 100000) {
      pool->clear();
      model.clear();
    }
  }
  EXPECT_EQ(pool->verify_invariants(), "");
  EXPECT_EQ(pool->stats().entry_count, model.size());
  for (const auto& [k, v] : model) ASSERT_EQ(pool->get(k), v);
}

TEST(PoolTable, BudgetEvictionsInsideOneRunKeepItConsistent) {
  // A budget of 500 entries over 5,000 keys of one run: every insert evicts from the run.
  auto pool = make_pool<ConstantHash>(500);
  std::mt19937_64 rng(11);
  for (int op = 0; op < 50000; ++op) {
    const std::uint64_t k = rng() % 5000;
    if (op % 2 == 0) {
      pool->insert(k, value_of(k));
    } else if (auto v = pool->get(k)) {
      ASSERT_EQ(*v, value_of(k));
    }
  }
  EXPECT_EQ(pool->verify_invariants(), "");
  EXPECT_LE(pool->stats().entry_count, 500u);
}

TEST(PoolTable, LockFreeReadersSeeRightValuesWhileTheRunChanges) {
  auto pool = make_pool<ConstantHash>(100000);
  // Resident for the whole test: always found.
  constexpr std::uint64_t kStableBegin = 10000;
  constexpr std::uint64_t kStableEnd = 10300;
  for (std::uint64_t k = kStableBegin; k < kStableEnd; ++k) pool->insert(k, value_of(k));
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> wrong{0};
  std::atomic<std::uint64_t> lost{0};
  std::atomic<std::uint64_t> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(100 + static_cast<std::uint64_t>(t));
      std::uint64_t n = 0;
      // At least 200 reads each, even if this thread is scheduled only after the writer
      // finished (a loaded CI machine): every check still holds then.
      while (!stop.load(std::memory_order_relaxed) || n < 200) {
        const std::uint64_t churn = rng() % 600;
        if (auto v = pool->get(churn); v && *v != value_of(churn)) wrong.fetch_add(1);
        const std::uint64_t stable = kStableBegin + rng() % (kStableEnd - kStableBegin);
        const auto v = pool->get(stable);
        if (!v) lost.fetch_add(1);
        if (v && *v != value_of(stable)) wrong.fetch_add(1);
        n += 2;
      }
      reads.fetch_add(n);
    });
  }
  // The writer inserts and removes keys inside the run the readers probe, so erasures and
  // placements (and growth, early on) happen under them.
  std::mt19937_64 rng(5);
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(400);
  std::uint64_t writes = 0;
  while (std::chrono::steady_clock::now() < until || writes < 2000) {
    const std::uint64_t k = rng() % 600;
    if (rng() % 2 == 0) {
      pool->insert(k, value_of(k));
    } else {
      pool->erase(k);
    }
    ++writes;
  }
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(lost.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(pool->verify_invariants(), "");
}

}  // namespace
}  // namespace pagekeeper
