// A minimal ResourcePool for broker tests: a byte counter against a capacity, whose
// evict_at_least really lowers usage (in whole `entry_bytes` steps, like a pool evicting
// whole entries) down to a `pinned_bytes` floor it can never go below. It records every
// request so tests can check what the broker asked for.
//
// Thread safety: every member is guarded by one mutex, so TSan tests may use it from many
// threads.

#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pagekeeper/resource_pool.hpp"

namespace pagekeeper::testing {

class FakeTier : public ResourcePool {
 public:
  FakeTier(std::string name, std::uint64_t capacity, std::uint64_t usage,
           std::uint64_t entry_bytes = 1, std::uint64_t pinned_bytes = 0)
      : name_(std::move(name)),
        capacity_(capacity),
        usage_(usage),
        entry_bytes_(std::max<std::uint64_t>(entry_bytes, 1)),
        pinned_bytes_(pinned_bytes) {}

  static std::shared_ptr<FakeTier> make(std::string name, std::uint64_t capacity,
                                        std::uint64_t usage, std::uint64_t entry_bytes = 1,
                                        std::uint64_t pinned_bytes = 0) {
    return std::make_shared<FakeTier>(std::move(name), capacity, usage, entry_bytes,
                                      pinned_bytes);
  }

  std::string tier_name() const override { return name_; }
  std::uint64_t capacity_bytes() const override {
    std::lock_guard lock(mutex_);
    return capacity_;
  }
  std::uint64_t usage_bytes() const override {
    std::lock_guard lock(mutex_);
    return usage_;
  }

  std::uint64_t evict_at_least(std::uint64_t bytes) override {
    std::lock_guard lock(mutex_);
    requests_.push_back(bytes);
    std::uint64_t freed = 0;
    while (freed < bytes && usage_ >= pinned_bytes_ + entry_bytes_) {
      usage_ -= entry_bytes_;
      freed += entry_bytes_;
    }
    if (freed > 0) ++evictions_;
    return freed;
  }

  std::vector<EntrySnapshot> snapshot() const override { return {}; }

  PoolStats stats() const override {
    std::lock_guard lock(mutex_);
    PoolStats s;
    s.name = name_;
    s.entry_count = usage_ / entry_bytes_;
    s.total_bytes = usage_;
    s.max_bytes = capacity_;
    s.pressure = capacity_ == 0 ? 0.0 : static_cast<double>(usage_) / capacity_;
    s.evictions = evictions_;
    return s;
  }

  void set_usage(std::uint64_t usage) {
    std::lock_guard lock(mutex_);
    usage_ = usage;
  }
  // A new capacity; usage above it is dropped, as a pool trims to a lower budget.
  void set_capacity(std::uint64_t capacity) {
    std::lock_guard lock(mutex_);
    capacity_ = capacity;
    usage_ = std::min(usage_, capacity);
  }
  std::vector<std::uint64_t> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  const std::string name_;
  mutable std::mutex mutex_;
  std::uint64_t capacity_;
  std::uint64_t usage_;
  const std::uint64_t entry_bytes_;
  const std::uint64_t pinned_bytes_;
  std::uint64_t evictions_ = 0;
  std::vector<std::uint64_t> requests_;
};

}  // namespace pagekeeper::testing
