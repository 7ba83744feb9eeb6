// CountingEmbedder: a real Embedder for tests. It wraps a LexicalEmbedder (real vectors),
// counts its calls and texts, and can be told to misbehave on its next call (throw, return
// the wrong number of vectors, the wrong dimension, a NaN) or to hold its next call until
// the test releases it (to make two requests overlap deterministically).

#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "pagekeeper/lexical_embedder.hpp"
#include "support/patience.hpp"

namespace pagekeeper::testing {

class CountingEmbedder final : public Embedder {
 public:
  enum class Fault { kNone, kThrow, kShortResult, kWrongDimension, kNaN };

  explicit CountingEmbedder(std::string name = "counting", std::size_t max_batch = 1024)
      : name_(std::move(name)), max_batch_(max_batch) {}

  std::string name() const override { return name_; }
  std::size_t dimensions() const override { return inner_.dimensions(); }
  std::size_t max_batch() const override { return max_batch_; }

  using Embedder::embed;
  std::vector<std::vector<float>> embed(std::span<const std::string_view> texts) override {
    calls_.fetch_add(1);
    texts_.fetch_add(texts.size());
    {
      std::unique_lock lock(mutex_);
      if (hold_next_) {
        hold_next_ = false;
        ++held_;
        held_cv_.notify_all();
        release_cv_.wait(lock, [&] { return released_; });
      }
    }
    const Fault fault = next_fault_.exchange(Fault::kNone);
    if (fault == Fault::kThrow) throw EmbedderError(name_ + ": injected failure");
    auto vectors = inner_.embed(texts);
    switch (fault) {
      case Fault::kShortResult: vectors.pop_back(); break;
      case Fault::kWrongDimension: vectors.front().push_back(0.0f); break;
      case Fault::kNaN: vectors.front()[0] = std::numeric_limits<float>::quiet_NaN(); break;
      default: break;
    }
    return vectors;
  }

  void fail_next(Fault fault) { next_fault_ = fault; }

  // The next embed() call blocks (after counting itself) until release().
  void hold_next() {
    std::lock_guard lock(mutex_);
    hold_next_ = true;
    released_ = false;
  }
  // Waits until a held call is blocked; false after the timeout.
  bool wait_until_held(std::chrono::milliseconds timeout = test_support::kPatience) {
    std::unique_lock lock(mutex_);
    return held_cv_.wait_for(lock, timeout, [&] { return held_ > 0; });
  }
  void release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    release_cv_.notify_all();
  }

  std::size_t calls() const { return calls_.load(); }
  std::size_t texts() const { return texts_.load(); }

 private:
  std::string name_;
  std::size_t max_batch_;
  LexicalEmbedder inner_;
  std::atomic<std::size_t> calls_{0};
  std::atomic<std::size_t> texts_{0};
  std::atomic<Fault> next_fault_{Fault::kNone};
  std::mutex mutex_;
  std::condition_variable held_cv_;
  std::condition_variable release_cv_;
  bool hold_next_ = false;  // guarded by mutex_
  bool released_ = false;   // guarded by mutex_
  int held_ = 0;            // guarded by mutex_
};

}  // namespace pagekeeper::testing
