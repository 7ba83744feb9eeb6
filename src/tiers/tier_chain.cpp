// TierChain: ordered lookups with circuit breakers, and background write-down.

#include "pagekeeper/tier_chain.hpp"

#include <algorithm>
#include <stdexcept>

namespace pagekeeper {

struct TierChain::Counters {
  std::atomic<std::uint64_t> hits{0}, misses{0}, errors{0}, corrupt{0}, skipped{0}, writes{0},
      dropped{0}, bytes_read{0}, bytes_written{0}, lookups{0}, latency_nanos{0};
  std::array<std::atomic<std::uint64_t>, kLatencyBuckets.size() + 1> latency{};
};

TierChain::TierChain(std::vector<std::shared_ptr<TierStore>> tiers, TierChainOptions options)
    : tiers_(std::move(tiers)), options_(options) {
  if (tiers_.empty()) throw std::invalid_argument("TierChain: no tier");
  for (const auto& tier : tiers_) {
    if (!tier) throw std::invalid_argument("TierChain: null tier");
  }
  if (options_.queue_records == 0 || options_.write_batch == 0) {
    throw std::invalid_argument("TierChain: queue_records and write_batch must be > 0");
  }
  counters_ = std::make_unique<Counters[]>(tiers_.size());
  breakers_.resize(tiers_.size());
  writer_ = std::thread([this] { run_writer(); });
}

TierChain::~TierChain() {
  {
    MutexLock lock(mutex_);
    stop_ = true;
  }
  work_.notify_all();
  writer_.join();
}

bool TierChain::admit(std::size_t i) {
  MutexLock lock(mutex_);
  const Breaker& b = breakers_[i];
  return b.failures < options_.failures_to_open || std::chrono::steady_clock::now() >= b.open_until;
}

void TierChain::succeeded(std::size_t i) {
  MutexLock lock(mutex_);
  breakers_[i].failures = 0;
  breakers_[i].backoff = std::chrono::milliseconds(0);
}

void TierChain::failed(std::size_t i) {
  counters_[i].errors.fetch_add(1, std::memory_order_relaxed);
  MutexLock lock(mutex_);
  Breaker& b = breakers_[i];
  ++b.failures;
  if (b.failures >= options_.failures_to_open) {
    // Open (or, after a failed retry, re-open with twice the back-off).
    b.backoff = b.backoff.count() == 0 ? options_.initial_backoff
                                       : std::min(b.backoff * 2, options_.max_backoff);
    b.open_until = std::chrono::steady_clock::now() + b.backoff;
  }
}

std::vector<TierChain::Found> TierChain::lookup(const std::vector<std::string>& keys) {
  std::vector<Found> found(keys.size());
  std::vector<std::size_t> wanted(keys.size());  // positions still missing
  for (std::size_t i = 0; i < keys.size(); ++i) wanted[i] = i;
  std::vector<std::string> asked;
  for (std::size_t t = 0; t < tiers_.size() && !wanted.empty(); ++t) {
    Counters& c = counters_[t];
    if (!admit(t)) {
      c.skipped.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    asked.clear();
    for (const std::size_t i : wanted) asked.push_back(keys[i]);
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::optional<std::string>> records;
    try {
      records = tiers_[t]->get_many(asked);
      if (records.size() != asked.size()) throw std::length_error("tier returned a wrong count");
    } catch (const std::exception&) {
      failed(t);
      continue;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    succeeded(t);
    const std::size_t bucket = static_cast<std::size_t>(
        std::lower_bound(kLatencyBuckets.begin(), kLatencyBuckets.end(), seconds) - kLatencyBuckets.begin());
    c.latency[bucket].fetch_add(1, std::memory_order_relaxed);
    c.latency_nanos.fetch_add(static_cast<std::uint64_t>(seconds * 1e9), std::memory_order_relaxed);
    c.lookups.fetch_add(1, std::memory_order_relaxed);
    std::vector<std::size_t> still;
    std::uint64_t hits = 0;
    std::uint64_t bytes = 0;
    for (std::size_t j = 0; j < records.size(); ++j) {
      if (records[j]) {
        bytes += records[j]->size();
        found[wanted[j]] = Found{std::move(records[j]), t};
        ++hits;
      } else {
        still.push_back(wanted[j]);
      }
    }
    c.hits.fetch_add(hits, std::memory_order_relaxed);
    c.misses.fetch_add(records.size() - hits, std::memory_order_relaxed);
    c.bytes_read.fetch_add(bytes, std::memory_order_relaxed);
    wanted = std::move(still);
  }
  return found;
}

void TierChain::enqueue_locked(Job job) {
  queued_records_ += job.records.size();
  ++enqueued_jobs_;
  queue_.push_back(std::move(job));
}

void TierChain::write(std::vector<std::pair<std::string, std::string>> records, std::size_t above) {
  above = std::min(above, tiers_.size());
  if (records.empty() || above == 0) return;
  {
    MutexLock lock(mutex_);
    if (queued_records_ + records.size() * above > options_.queue_records) {
      for (std::size_t t = 0; t < above; ++t) {
        counters_[t].dropped.fetch_add(records.size(), std::memory_order_relaxed);
      }
      return;
    }
    for (std::size_t t = 0; t + 1 < above; ++t) enqueue_locked(Job{t, false, records});
    enqueue_locked(Job{above - 1, false, std::move(records)});
  }
  work_.notify_one();
}

void TierChain::corrupt(std::size_t tier, std::string key) {
  if (tier >= tiers_.size()) return;
  counters_[tier].corrupt.fetch_add(1, std::memory_order_relaxed);
  {
    MutexLock lock(mutex_);
    Job job{tier, true, {}};
    job.records.emplace_back(std::move(key), std::string());
    enqueue_locked(std::move(job));
  }
  work_.notify_one();
}

void TierChain::flush() {
  MutexLock lock(mutex_);
  const std::uint64_t target = enqueued_jobs_;
  idle_.wait(lock, [&] {
    mutex_.assert_held();
    return finished_jobs_ >= target || stop_;
  });
}

void TierChain::run_writer() {
  MutexLock lock(mutex_);
  while (true) {
    work_.wait(lock, [&] {
      mutex_.assert_held();
      return stop_ || !queue_.empty();
    });
    if (queue_.empty()) break;  // stopping, and everything queued is written
    Job job = std::move(queue_.front());
    queue_.pop_front();
    queued_records_ -= job.records.size();
    lock.unlock();
    const std::size_t t = job.tier;
    Counters& c = counters_[t];
    if (!admit(t)) {
      c.skipped.fetch_add(1, std::memory_order_relaxed);
      if (!job.erase) c.dropped.fetch_add(job.records.size(), std::memory_order_relaxed);
    } else {
      try {
        if (job.erase) {
          for (const auto& [key, unused] : job.records) tiers_[t]->erase(key);
        } else {
          for (std::size_t begin = 0; begin < job.records.size(); begin += options_.write_batch) {
            const std::size_t n = std::min(options_.write_batch, job.records.size() - begin);
            const std::span<const std::pair<std::string, std::string>> batch(job.records.data() + begin, n);
            tiers_[t]->put_many(batch);
            std::uint64_t bytes = 0;
            for (const auto& [key, record] : batch) bytes += key.size() + record.size();
            c.writes.fetch_add(n, std::memory_order_relaxed);
            c.bytes_written.fetch_add(bytes, std::memory_order_relaxed);
          }
        }
        succeeded(t);
      } catch (const std::exception&) {
        failed(t);
        if (!job.erase) c.dropped.fetch_add(job.records.size(), std::memory_order_relaxed);
      }
    }
    lock.lock();
    ++finished_jobs_;
    idle_.notify_all();
  }
  finished_jobs_ = enqueued_jobs_;
  idle_.notify_all();
}

std::vector<TierChain::TierStats> TierChain::stats() const {
  std::vector<TierStats> out(tiers_.size());
  const auto now = std::chrono::steady_clock::now();
  MutexLock lock(mutex_);
  for (std::size_t t = 0; t < tiers_.size(); ++t) {
    const Counters& c = counters_[t];
    TierStats& s = out[t];
    s.name = tiers_[t]->name();
    s.hits = c.hits.load(std::memory_order_relaxed);
    s.misses = c.misses.load(std::memory_order_relaxed);
    s.errors = c.errors.load(std::memory_order_relaxed);
    s.corrupt = c.corrupt.load(std::memory_order_relaxed);
    s.skipped = c.skipped.load(std::memory_order_relaxed);
    s.writes = c.writes.load(std::memory_order_relaxed);
    s.dropped = c.dropped.load(std::memory_order_relaxed);
    s.bytes_read = c.bytes_read.load(std::memory_order_relaxed);
    s.bytes_written = c.bytes_written.load(std::memory_order_relaxed);
    s.lookups = c.lookups.load(std::memory_order_relaxed);
    s.latency_sum_seconds = static_cast<double>(c.latency_nanos.load(std::memory_order_relaxed)) / 1e9;
    for (std::size_t b = 0; b < s.latency.size(); ++b) s.latency[b] = c.latency[b].load(std::memory_order_relaxed);
    const Breaker& br = breakers_[t];
    s.open = br.failures >= options_.failures_to_open && now < br.open_until;
  }
  return out;
}

}  // namespace pagekeeper
