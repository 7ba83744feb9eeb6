// A clock tests move by hand, in milliseconds, for the pool's and the adapter pager's
// injectable clocks (std::function<std::int64_t()>). Copies share one time, so a test keeps a
// copy and advances what the component reads.
//
// Thread safety: every method may be called from any thread.

#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

namespace pagekeeper::test_support {

class ManualClock {
 public:
  explicit ManualClock(std::int64_t start_ms = 0) : now_(std::make_shared<std::atomic<std::int64_t>>(start_ms)) {}
  void set(std::int64_t ms) const { now_->store(ms); }
  void advance(std::int64_t ms) const { now_->fetch_add(ms); }
  std::int64_t now() const { return now_->load(); }
  std::int64_t operator()() const { return now(); }
  std::function<std::int64_t()> fn() const {
    return [now = now_] { return now->load(); };
  }

 private:
  std::shared_ptr<std::atomic<std::int64_t>> now_;
};

}  // namespace pagekeeper::test_support
