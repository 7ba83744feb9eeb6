// The read buffers' key hashes (detail/read_buffer.hpp): what the drain hands the policy for
// each recorded hit is that hit's key hash, the one the reader stored or, where a lap may
// have overwritten the cell while the drain read it, the entry's own hash recomputed.
// A lap during the drain is simulated from inside the drain's first pass, so the
// interleaving is exact and the test is deterministic.

#include <cstdint>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "pagekeeper/detail/read_buffer.hpp"

namespace pagekeeper::pool_detail {
namespace {

struct FakeEntry {
  std::uint64_t key_hash = 0;
};

using Stripe = ReadStripe<FakeEntry>;

std::vector<FakeEntry> entries_with_hashes(std::uint64_t first, std::size_t n) {
  std::vector<FakeEntry> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i].key_hash = first + i;
  return v;
}

// Drains st as the owner's stripe; returns (entry, hash) as applied, and counts rehashes.
// on_first_prefetch runs once, inside the first pass, after the first cell was read.
template <class Fn>
std::vector<std::pair<const FakeEntry*, std::uint64_t>> drain(Stripe& st, int& rehashes, Fn&& on_first_prefetch) {
  std::vector<std::pair<const FakeEntry*, std::uint64_t>> applied;
  bool first = true;
  drain_stripe(
      st, /*shared=*/false,
      [&](std::uint64_t) {
        if (first) on_first_prefetch();
        first = false;
      },
      [](const FakeEntry*) { return true; },
      [&](const FakeEntry* e) {
        ++rehashes;
        return e->key_hash;
      },
      [](const FakeEntry*, std::uint64_t) {}, [&](FakeEntry* e, std::uint64_t h) { applied.emplace_back(e, h); });
  return applied;
}

TEST(PoolReadBuffer, TheDrainGetsTheHashEachReaderStored) {
  Stripe st;
  st.carries_hashes = true;
  auto hits = entries_with_hashes(1000, 10);
  for (auto& e : hits) EXPECT_FALSE(record_read<FakeEntry>({st, true}, &e, e.key_hash));
  int rehashes = 0;
  const auto applied = drain(st, rehashes, [] {});
  ASSERT_EQ(applied.size(), hits.size());
  for (std::size_t i = 0; i < hits.size(); ++i) {
    EXPECT_EQ(applied[i].first, &hits[i]);
    EXPECT_EQ(applied[i].second, hits[i].key_hash);
  }
  EXPECT_EQ(rehashes, 0);  // no key was read
}

TEST(PoolReadBuffer, ACellALapOverwroteDuringTheDrainIsRehashed) {
  Stripe st;
  st.carries_hashes = true;
  auto first_lap = entries_with_hashes(1000, kRingSize);
  auto second_lap = entries_with_hashes(5000, kRingSize);
  for (auto& e : first_lap) record_read<FakeEntry>({st, true}, &e, e.key_hash);
  int rehashes = 0;
  const auto applied = drain(st, rehashes, [&] {
    // While the drain reads position 0's cell, the owner records positions 64 to 68 (cells
    // 0 to 4), and of position 69 it has stored the hash but not yet the entry: cell 5
    // now holds position 5's entry and position 69's hash, a torn cell.
    for (std::size_t i = 0; i < 5; ++i) record_read<FakeEntry>({st, true}, &second_lap[i], second_lap[i].key_hash);
    st.hashes[5].store(second_lap[5].key_hash, std::memory_order_release);
  });
  ASSERT_EQ(applied.size(), kRingSize);
  EXPECT_EQ(applied[0].first, &first_lap[0]);
  for (std::size_t i = 1; i < 5; ++i) EXPECT_EQ(applied[i].first, &second_lap[i]);
  EXPECT_EQ(applied[5].first, &first_lap[5]);
  for (const auto& [e, h] : applied) EXPECT_EQ(h, e->key_hash);
  // Positions 0 to 5 were within reach of the lap; 6 to 63 were not, and keep their hashes.
  EXPECT_EQ(rehashes, 6);
}

TEST(PoolReadBuffer, TheSharedStripesHashesAreNeverUsed) {
  Stripe st;
  st.carries_hashes = true;
  auto hits = entries_with_hashes(1000, 8);
  for (auto& e : hits) record_read<FakeEntry>({st, false}, &e, e.key_hash + 1);  // a wrong hash
  std::vector<std::uint64_t> seen;
  drain_stripe(
      st, /*shared=*/true, [](std::uint64_t) {}, [](const FakeEntry*) { return true; },
      [](const FakeEntry* e) { return e->key_hash; }, [](const FakeEntry*, std::uint64_t) {},
      [&](FakeEntry*, std::uint64_t h) { seen.push_back(h); });
  ASSERT_EQ(seen.size(), hits.size());
  for (std::size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(seen[i], hits[i].key_hash);
}

TEST(PoolReadBuffer, AStripeWithoutHashesStoresNoneAndPassesZero) {
  Stripe st;  // carries_hashes is false: LRU and the other policies that ignore the hash
  auto hits = entries_with_hashes(1000, 8);
  for (auto& e : hits) record_read<FakeEntry>({st, true}, &e, e.key_hash);
  for (const auto& h : st.hashes) EXPECT_EQ(h.load(), 0u);
  int rehashes = 0;
  const auto applied = drain(st, rehashes, [] {});
  ASSERT_EQ(applied.size(), hits.size());
  for (const auto& [e, h] : applied) EXPECT_EQ(h, 0u);
  EXPECT_EQ(rehashes, 0);
}

}  // namespace
}  // namespace pagekeeper::pool_detail
