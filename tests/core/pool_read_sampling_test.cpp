// Read sampling under concurrent readers (pool.hpp, detail/read_buffer.hpp): while two threads
// read one shard at the same time, the policy is handed a sample of their hits; a thread that
// reads alone, or threads that take long turns, have every hit replayed. Threads take turns
// under a mutex, so what each drain finds is deterministic.
//
// A hit replayed into the policy adds one to its entry's access_count (snapshot()), which
// starts at 1 when the entry is inserted; stats().hits counts every hit, replayed or not.

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "pagekeeper/pool.hpp"

namespace pagekeeper {
namespace {

using Pool = PagedResourcePool<std::uint64_t, std::uint64_t>;
static_assert(Pool::lock_free_reads());

constexpr std::uint64_t kKeys = 256;

// One shard holding kKeys keys (room for twice as many).
std::unique_ptr<Pool> make_pool(EvictionPolicy<std::uint64_t> policy, double curve_sampling_rate = 0.0) {
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "sampling";
  c.max_bytes = kKeys * 2;
  c.sizer = [](const std::uint64_t&) { return std::uint64_t{1}; };
  c.policy = std::move(policy);
  c.shards = 1;
  c.curve_sampling_rate = curve_sampling_rate;
  auto pool = std::make_unique<Pool>(c);
  for (std::uint64_t k = 0; k < kKeys; ++k) pool->insert(k, k);
  return pool;
}

// Hits replayed into the policy so far (drains first: snapshot() takes each shard's lock).
std::uint64_t replayed_hits(Pool& pool) {
  std::uint64_t n = 0;
  for (const EntrySnapshot& e : pool.snapshot()) n += e.access_count - 1;
  return n;
}

// `turns` turns taken alternately by two threads (0, 1, 0, ...), each turn `hits_per_turn`
// hits on the pool: the threads never read at the same time, and each keeps its own stripe.
void take_turns(Pool& pool, int turns, std::uint64_t hits_per_turn) {
  std::mutex mutex;
  std::condition_variable turn_taken;
  int next = 0;
  auto reader = [&](int me) {
    for (;;) {
      std::unique_lock<std::mutex> lock(mutex);
      turn_taken.wait(lock, [&] { return next >= turns || next % 2 == me; });
      if (next >= turns) return;
      for (std::uint64_t i = 0; i < hits_per_turn; ++i) {
        if (!pool.get((static_cast<std::uint64_t>(next) + i * 7) % kKeys).has_value()) {
          ADD_FAILURE() << "miss on a resident key";
        }
      }
      ++next;
      turn_taken.notify_all();
    }
  };
  std::thread first(reader, 0);
  std::thread second(reader, 1);
  first.join();
  second.join();
}

// Turns of 50 hits: each drain (when a stripe's ring of 64 fills) finds the other thread's
// hits too, as it would if both read at the same time, so the stripes start sampling and
// the policy is handed about one hit in 16. Without sampling every hit would be replayed.
void expect_interleaved_readers_sample(EvictionPolicy<std::uint64_t> policy) {
  const auto pool = make_pool(std::move(policy));
  take_turns(*pool, 400, 50);
  const std::uint64_t hits = pool->stats().hits;
  const std::uint64_t replayed = replayed_hits(*pool);
  EXPECT_EQ(hits, 20'000u);
  EXPECT_GT(replayed, 0u);
  EXPECT_LT(replayed * 8, hits) << "interleaved readers had " << replayed << " of " << hits << " hits replayed";
  EXPECT_EQ(pool->verify_invariants(), "");
}

TEST(PoolReadSampling, InterleavedReadersHandTheLruPolicyASample) {
  expect_interleaved_readers_sample(EvictionPolicy<std::uint64_t>::lru());
}

TEST(PoolReadSampling, InterleavedReadersHandTinyLfuASample) {
  expect_interleaved_readers_sample(EvictionPolicy<std::uint64_t>::tiny_lfu());
}

// Turns of 1000 hits: a thread that reads alone for more than two rings' worth sees drains
// that find only its own hits, so sampling never starts and every hit is replayed, the
// leftovers of the previous thread included (1000 is not a multiple of the ring).
TEST(PoolReadSampling, ThreadsTakingLongTurnsHaveEveryHitReplayed) {
  const auto pool = make_pool(EvictionPolicy<std::uint64_t>::lru());
  take_turns(*pool, 20, 1000);
  EXPECT_EQ(pool->stats().hits, 20'000u);
  EXPECT_EQ(replayed_hits(*pool), 20'000u);
}

// The pool's miss-ratio curve needs every hit: a pool that samples it never samples reads.
TEST(PoolReadSampling, PoolsWithMissRatioCurvesReplayEveryHit) {
  const auto pool = make_pool(EvictionPolicy<std::uint64_t>::lru(), 1.0);
  take_turns(*pool, 400, 50);
  EXPECT_EQ(pool->stats().hits, 20'000u);
  EXPECT_EQ(replayed_hits(*pool), 20'000u);
}

}  // namespace
}  // namespace pagekeeper
