// VectorSlab under threads (labelled `concurrent`, so TSan runs it): vectors made on some
// threads and dropped on others, chunks recycled between them, the slab dropped while
// vectors are still alive elsewhere.

#include "pagekeeper/detail/vector_slab.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace pagekeeper {
namespace {

constexpr std::size_t kDims = 64;

EmbeddingVector tagged(VectorSlab& slab, int tag) {
  return slab.make([&](std::span<float> out) {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(tag + static_cast<int>(i));
  });
}

bool holds_tag(const EmbeddingVector& v, int tag) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != static_cast<float>(tag + static_cast<int>(i))) return false;
  }
  return v.size() == kDims;
}

// Producers make vectors and hand them over a shared queue; consumers check and drop them.
// Every chunk is returned on a thread other than the one that made it, and reused.
TEST(VectorSlabConcurrency, MadeOnOneThreadDroppedOnAnother) {
  VectorSlab slab(kDims, VectorSlab::Options{.first_block_bytes = 16 << 10, .max_block_bytes = 16 << 10});
  constexpr int kProducers = 2;
  constexpr int kConsumers = 2;
  constexpr int kPerProducer = 20000;
  constexpr std::size_t kMaxQueued = 64;
  constexpr int kTotal = kProducers * kPerProducer;
  // Guards queue and taken. A full or empty queue is waited for on `changed`, not spun on:
  // a spinning thread would take a core from the one it waits for.
  std::mutex mutex;
  std::condition_variable changed;  // an item was queued or taken
  std::deque<std::pair<int, EmbeddingVector>> queue;
  int taken = 0;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        const int tag = p * kPerProducer + i;
        EmbeddingVector v = tagged(slab, tag);
        {
          std::unique_lock lock(mutex);
          changed.wait(lock, [&] { return queue.size() < kMaxQueued; });
          queue.emplace_back(tag, std::move(v));
        }
        changed.notify_all();
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      for (;;) {
        std::pair<int, EmbeddingVector> item{0, EmbeddingVector()};
        {
          std::unique_lock lock(mutex);
          changed.wait(lock, [&] { return !queue.empty() || taken == kTotal; });
          if (queue.empty()) break;  // every item was taken
          item = std::move(queue.front());
          queue.pop_front();
          ++taken;
        }
        changed.notify_all();
        if (!holds_tag(item.second, item.first)) bad.fetch_add(1);
      }  // item (the vector) dropped here, outside the queue's lock
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  const VectorSlab::Stats stats = slab.stats();
  EXPECT_EQ(stats.live_vectors, 0u);
  // At most kMaxQueued + a few in flight per thread were alive at once: recycled, not grown.
  const std::size_t per_block = (16 << 10) / EmbeddingVector::chunk_bytes(kDims);
  EXPECT_LE(stats.blocks, (kMaxQueued + 4 * (kProducers + kConsumers)) / per_block + 2);
}

// Copies of one vector dropped concurrently return its chunk exactly once; trim() runs
// beside makes and drops.
TEST(VectorSlabConcurrency, SharedCopiesDroppedTogetherAndTrimBeside) {
  VectorSlab slab(kDims, VectorSlab::Options{.first_block_bytes = 16 << 10, .max_block_bytes = 16 << 10});
  std::atomic<bool> stop{false};
  std::thread trimmer([&] {
    while (!stop.load()) slab.trim();
  });
  for (int round = 0; round < 2000; ++round) {
    EmbeddingVector v = tagged(slab, round);
    std::vector<EmbeddingVector> copies(4, v);
    v = EmbeddingVector();
    std::vector<std::thread> droppers;
    droppers.reserve(copies.size());
    for (EmbeddingVector& copy : copies) {
      droppers.emplace_back([&copy, round] {
        EXPECT_TRUE(holds_tag(copy, round));
        copy = EmbeddingVector();
      });
    }
    for (std::thread& t : droppers) t.join();
  }
  stop.store(true);
  trimmer.join();
  EXPECT_EQ(slab.stats().live_vectors, 0u);
}

// trim() gives pages back while 3 threads make and drop vectors, each keeping a random
// window of them: chunks over given-back pages are handed out again and come back whole, no
// held vector is touched, and at the end everything goes back. Runs until the trimmer has
// given pages back 100 times, or past a step limit once it has given back at least once: on
// a loaded machine the trimmer may not run at all while the workers take their steps, so
// they go on (up to a deadline) until it has.
TEST(VectorSlabConcurrency, PagesGivenBackBesideMakesAndDrops) {
  // 272-byte chunks: a run of 16 free neighbours covers a page.
  VectorSlab slab(kDims, VectorSlab::Options{.first_block_bytes = 64 << 10, .max_block_bytes = 256 << 10});
  std::atomic<bool> stop{false};
  std::atomic<int> trims_that_gave_back{0};
  std::thread trimmer([&] {
    while (!stop.load()) {
      if (slab.trim() > 0) trims_that_gave_back.fetch_add(1);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> workers;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(7 + t);
      std::vector<std::pair<EmbeddingVector, int>> window;
      int next_tag = t * 1000000;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      auto more_steps = [&](int step) {
        const int trims = trims_that_gave_back.load();
        if (trims >= 100) return false;
        if (step < 400000) return true;
        return trims == 0 && (step % 1024 != 0 || std::chrono::steady_clock::now() < deadline);
      };
      for (int step = 0; more_steps(step); ++step) {
        if (window.size() < 400 && rng() % 3 != 0) {
          window.emplace_back(tagged(slab, next_tag), next_tag);
          ++next_tag;
        } else if (!window.empty()) {
          // Drop a run of vectors made one after another, so whole pages may come free.
          const std::size_t at = rng() % window.size();
          const std::size_t n = std::min<std::size_t>(window.size() - at, 1 + rng() % 64);
          for (std::size_t k = at; k < at + n; ++k) {
            if (!holds_tag(window[k].first, window[k].second)) wrong.fetch_add(1);
          }
          window.erase(window.begin() + static_cast<std::ptrdiff_t>(at),
                       window.begin() + static_cast<std::ptrdiff_t>(at + n));
        }
      }
      for (const auto& [v, tag] : window) {
        if (!holds_tag(v, tag)) wrong.fetch_add(1);
      }
    });
  }
  for (std::thread& w : workers) w.join();
  stop.store(true);
  trimmer.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(trims_that_gave_back.load(), 0);
  EXPECT_EQ(slab.stats().live_vectors, 0u);
  slab.trim();
  EXPECT_EQ(slab.stats().mapped_bytes, 0u);
  EXPECT_EQ(slab.stats().released_bytes, 0u);
}

// The slab object goes away while other threads still hold and drop its vectors; the last
// drop releases the blocks.
TEST(VectorSlabConcurrency, SlabDroppedWhileVectorsLiveElsewhere) {
  for (int round = 0; round < 50; ++round) {
    auto slab = std::make_unique<VectorSlab>(kDims);
    std::vector<EmbeddingVector> a;
    std::vector<EmbeddingVector> b;
    for (int i = 0; i < 100; ++i) (i % 2 == 0 ? a : b).push_back(tagged(*slab, i));
    std::thread ta([&] { a.clear(); });
    std::thread tb([&] { b.clear(); });
    slab.reset();
    ta.join();
    tb.join();
  }
}

}  // namespace
}  // namespace pagekeeper
