// pagekeeper/tier_chain.hpp
//
// TierChain: the tiers below a pool's memory, in order (the local LMDB tier, then Redis), as
// one thing a pool can ask. It works on byte keys and records; a codec above it
// (EmbeddingTiers for the embedding cache) turns the pool's keys and values into them.
//
//   - lookup(): asks each tier in order for the keys no tier above it held, all at once. A
//     tier that throws is skipped for that call (its keys go on to the next tier) and
//     counted; after `failures_to_open` consecutive failures it is bypassed (circuit breaker)
//     for a back-off that doubles on each further failure up to `max_backoff`, then tried
//     again. A failing or slow tier therefore costs a request at most one timeout per
//     back-off period, never an error.
//   - write(): queues records to be written to the tiers above `above` (all of them for
//     values the loader produced; the tiers above the one that held a value, to promote it)
//     and returns at once. One background thread drains the queue in batches. The queue is
//     bounded (`queue_records`): when full, new records are dropped and counted.
//   - corrupt(): a record the codec refused; counted and erased from its tier (queued).
//   - Per tier: hits, misses, errors, corrupt records, lookups skipped by the breaker, writes,
//     write errors, records dropped, bytes read and written, and a histogram of lookup
//     latency.
//
// Thread safety: every method may be called concurrently from any thread. Locking rule: the
// queue and the breakers are guarded by one mutex, never held during a tier call; counters
// are atomics; the writer thread is the only caller of put_many()/erase().

#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/tier_store.hpp"

namespace pagekeeper {

struct TierChainOptions {
  // Records waiting to be written down, at most; beyond, writes are dropped and counted.
  std::size_t queue_records = 16384;
  // Records per put_many() call of the writer thread.
  std::size_t write_batch = 256;
  // Consecutive failures that open a tier's breaker.
  std::uint32_t failures_to_open = 3;
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
};

class TierChain {
 public:
  // Upper bounds of the lookup latency buckets, in seconds (+Inf is implicit).
  static constexpr std::array<double, 12> kLatencyBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0};

  struct TierStats {
    std::string name;
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t errors = 0;        // lookups and writes that failed
    std::uint64_t corrupt = 0;       // records the codec refused (then erased)
    std::uint64_t skipped = 0;       // lookups and write batches the open breaker bypassed
    std::uint64_t writes = 0;        // records written
    std::uint64_t dropped = 0;       // records dropped: queue full, or breaker open
    std::uint64_t bytes_read = 0;
    std::uint64_t bytes_written = 0;
    bool open = false;               // breaker open now
    std::array<std::uint64_t, kLatencyBuckets.size() + 1> latency{};  // per bucket, last +Inf
    double latency_sum_seconds = 0;
    std::uint64_t lookups = 0;
  };

  // What lookup() found: one entry per key.
  struct Found {
    std::optional<std::string> record;
    std::size_t tier = 0;  // index of the tier that held it (meaningful when record is set)
  };

  // `tiers` in lookup order (nearest first). Starts the writer thread.
  // Throws std::invalid_argument for an empty list, a null tier or a zero queue or batch.
  TierChain(std::vector<std::shared_ptr<TierStore>> tiers, TierChainOptions options = {});
  // Writes what is still queued (a tier whose breaker is open drops its share at once), then
  // stops the writer thread, so a process that exits keeps what it embedded.
  ~TierChain();
  TierChain(const TierChain&) = delete;
  TierChain& operator=(const TierChain&) = delete;

  std::vector<Found> lookup(const std::vector<std::string>& keys);

  // Queues `records` for the tiers with index < `above` (tiers().size() for all).
  void write(std::vector<std::pair<std::string, std::string>> records, std::size_t above);

  // A record from tier `tier` under `key` was refused by the codec: counts it and queues its
  // removal.
  void corrupt(std::size_t tier, std::string key);

  // Waits until every record queued before the call has been written (or dropped). For
  // tests, benchmarks and shutdown.
  void flush();

  std::vector<TierStats> stats() const;
  std::size_t size() const { return tiers_.size(); }
  const std::vector<std::shared_ptr<TierStore>>& tiers() const { return tiers_; }

 private:
  struct Counters;
  struct Breaker {
    std::uint32_t failures = 0;
    std::chrono::steady_clock::time_point open_until{};
    std::chrono::milliseconds backoff{0};
  };
  struct Job {
    std::size_t tier;
    bool erase = false;
    std::vector<std::pair<std::string, std::string>> records;  // erase: keys in .first
  };

  // Whether tier `i` may be called now (breaker closed, or its back-off is over).
  bool admit(std::size_t i);
  void succeeded(std::size_t i);
  void failed(std::size_t i);
  void enqueue_locked(Job job) PAGEKEEPER_REQUIRES(mutex_);
  void run_writer();

  const std::vector<std::shared_ptr<TierStore>> tiers_;
  const TierChainOptions options_;
  std::unique_ptr<Counters[]> counters_;

  mutable Mutex mutex_;
  CondVar work_;  // the writer waits for jobs or stop
  CondVar idle_;  // flush() waits for the queue to drain
  std::vector<Breaker> breakers_ PAGEKEEPER_GUARDED_BY(mutex_);
  std::deque<Job> queue_ PAGEKEEPER_GUARDED_BY(mutex_);
  std::size_t queued_records_ PAGEKEEPER_GUARDED_BY(mutex_) = 0;
  std::uint64_t enqueued_jobs_ PAGEKEEPER_GUARDED_BY(mutex_) = 0;  // jobs ever queued
  std::uint64_t finished_jobs_ PAGEKEEPER_GUARDED_BY(mutex_) = 0;  // jobs ever finished
  bool stop_ PAGEKEEPER_GUARDED_BY(mutex_) = false;
  std::thread writer_;
};

}  // namespace pagekeeper
