#include "pagekeeper/rate_limited_embedder.hpp"

#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>

namespace pagekeeper {
namespace {

RateLimitedEmbedder::Clock::duration interval_of(double calls_per_second) {
  if (!(std::isfinite(calls_per_second) && calls_per_second > 0.0)) {
    throw std::invalid_argument("RateLimitedEmbedder: calls_per_second must be positive, got " +
                                std::to_string(calls_per_second));
  }
  return std::chrono::duration_cast<RateLimitedEmbedder::Clock::duration>(
      std::chrono::duration<double>(1.0 / calls_per_second));
}

RateLimitedEmbedder::Timing with_defaults(RateLimitedEmbedder::Timing timing) {
  if (!timing.now) timing.now = [] { return RateLimitedEmbedder::Clock::now(); };
  if (!timing.sleep_until) {
    timing.sleep_until = [](RateLimitedEmbedder::Clock::time_point t) {
      std::this_thread::sleep_until(t);
    };
  }
  return timing;
}

}  // namespace

RateLimitedEmbedder::RateLimitedEmbedder(std::shared_ptr<Embedder> inner, double calls_per_second,
                                         Timing timing)
    : inner_(std::move(inner)),
      calls_per_second_(calls_per_second),
      interval_(interval_of(calls_per_second)),
      timing_(with_defaults(std::move(timing))) {
  if (!inner_) throw std::invalid_argument("RateLimitedEmbedder: null embedder");
}

void RateLimitedEmbedder::wait_for_slot() {
  Clock::time_point start;
  Clock::time_point now;
  {
    MutexLock lock(mutex_);
    now = timing_.now();
    start = std::max(now, next_start_);
    next_start_ = start + interval_;
  }
  if (start > now) {
    delayed_.fetch_add(1, std::memory_order_relaxed);
    timing_.sleep_until(start);
  }
}

std::vector<std::vector<float>> RateLimitedEmbedder::embed(std::span<const std::string_view> texts) {
  wait_for_slot();
  return inner_->embed(texts);
}

std::vector<EmbeddingVector> RateLimitedEmbedder::embed_compact(
    std::span<const std::string_view> texts, VectorSlab& storage) {
  wait_for_slot();
  return inner_->embed_compact(texts, storage);
}

}  // namespace pagekeeper
