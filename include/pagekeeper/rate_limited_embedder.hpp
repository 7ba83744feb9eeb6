// pagekeeper/rate_limited_embedder.hpp
//
// RateLimitedEmbedder: an Embedder that lets at most `calls_per_second` calls of the embedder
// it wraps start per second, and queues the others rather than failing them. Each call
// reserves the next free start time (one every 1 / calls_per_second seconds, first come first
// served) and waits for it, so a model's CPU or remote quota is bounded (the original system's
// indexer once re-embedded the same texts at 0 hits with CPU above 1100%) while callers see
// latency, never an error. An idle embedder's next call starts at once; no burst beyond that.
//
// Thread safety: every method may be called from any thread. One mutex guards the next start
// time and is held only to reserve a slot; waits happen outside it. The wrapped embedder must
// be thread-safe, as every Embedder is.

#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/embedder.hpp"

namespace pagekeeper {

class RateLimitedEmbedder final : public Embedder {
 public:
  using Clock = std::chrono::steady_clock;
  // How the limiter reads the time and waits; the defaults are Clock::now and
  // std::this_thread::sleep_until. Tests inject a manual clock.
  struct Timing {
    std::function<Clock::time_point()> now;
    std::function<void(Clock::time_point)> sleep_until;
  };

  // Throws std::invalid_argument for a null `inner` or a rate that is not finite and > 0.
  RateLimitedEmbedder(std::shared_ptr<Embedder> inner, double calls_per_second,
                      Timing timing = {});

  std::string name() const override { return inner_->name(); }
  std::size_t dimensions() const override { return inner_->dimensions(); }
  std::size_t max_batch() const override { return inner_->max_batch(); }
  std::string identity() const override { return inner_->identity(); }

  // Waits for this call's start time, then calls the wrapped embedder (same results, same
  // errors).
  using Embedder::embed;
  std::vector<std::vector<float>> embed(std::span<const std::string_view> texts) override;
  std::vector<EmbeddingVector> embed_compact(std::span<const std::string_view> texts,
                                             VectorSlab& storage) override;

  double calls_per_second() const noexcept { return calls_per_second_; }
  // Calls that had to wait for their start time.
  std::uint64_t calls_delayed() const noexcept {
    return delayed_.load(std::memory_order_relaxed);
  }

 private:
  void wait_for_slot();

  const std::shared_ptr<Embedder> inner_;
  const double calls_per_second_;
  const Clock::duration interval_;
  const Timing timing_;
  Mutex mutex_;
  Clock::time_point next_start_ PAGEKEEPER_GUARDED_BY(mutex_){};
  std::atomic<std::uint64_t> delayed_{0};
};

}  // namespace pagekeeper
