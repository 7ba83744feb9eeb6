// Background relief and concurrency: the dedicated thread relieves without help from the
// test, stop() is prompt, and register/unregister/relieve/snapshot from many threads neither
// deadlock nor wait for evictions. Labelled `concurrent` (run under TSan).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <latch>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "broker/fake_tier.hpp"
#include "pagekeeper/broker.hpp"
#include "support/patience.hpp"

namespace pagekeeper {
namespace {

using namespace std::chrono_literals;
using testing::FakeTier;
using test_support::eventually;
using test_support::kPatience;
using Clock = std::chrono::steady_clock;

TEST(BrokerBackground, RelievesAPoolPushedPastItsBudgetWithoutAnyCall) {
  PressureBroker broker;
  auto kv = FakeTier::make("kv", 1000, 100);
  broker.register_pool(kv);
  broker.start(20ms);
  EXPECT_TRUE(broker.running());
  kv->set_usage(1500);  // past its budget
  EXPECT_TRUE(eventually([&] { return kv->usage_bytes() <= 600; }))
      << "usage " << kv->usage_bytes();
  EXPECT_TRUE(eventually([&] { return broker.snapshot().evictions_fired >= 1; }));
  broker.stop();
  EXPECT_FALSE(broker.running());
}

TEST(BrokerBackground, FirstPassComesOneIntervalAfterStart) {
  PressureBroker broker;
  auto kv = FakeTier::make("kv", 1000, 1100);
  broker.register_pool(kv);
  const auto started = Clock::now();
  broker.start(300ms);
  ASSERT_TRUE(eventually([&] { return !kv->requests().empty(); }));
  EXPECT_GE(Clock::now() - started, 290ms);
  broker.stop();
}

TEST(BrokerBackground, StopWakesTheThreadInsteadOfWaitingOutTheInterval) {
  PressureBroker broker;
  broker.register_pool(FakeTier::make("kv", 1000, 1100));
  broker.start(std::chrono::hours(1));
  ASSERT_TRUE(eventually([&] { return broker.waiting_for_next_pass(); }));
  const auto before = Clock::now();
  broker.stop();
  // A wake-up takes well under a millisecond; the bound leaves a loaded machine running
  // TSan a wide margin and still fails a thread that sleeps its interval (or slices of it).
  EXPECT_LT(Clock::now() - before, 2s);
  EXPECT_EQ(broker.snapshot().evictions_fired, 0u);  // no pass happened
}

TEST(BrokerBackground, StartTwiceIsRefusedAndRestartWorks) {
  PressureBroker broker;
  broker.start(5s);
  EXPECT_THROW(broker.start(5s), std::logic_error);
  broker.stop();
  broker.stop();  // idempotent
  EXPECT_THROW(broker.start(0ms), std::invalid_argument);
  broker.start(10ms);
  EXPECT_TRUE(broker.snapshot().running);
  // The destructor stops it.
}

// A pool whose eviction blocks until the test opens the gate.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool entered = false;
  bool open = false;
  void wait_inside() {
    std::unique_lock lock(mutex);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [this] { return open; });
  }
  void wait_entered() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [this] { return entered; });
  }
  void release() {
    std::lock_guard lock(mutex);
    open = true;
    cv.notify_all();
  }
};

class GatedTier final : public ResourcePool {
 public:
  GatedTier(Gate& gate, std::shared_ptr<FakeTier> inner) : gate_(gate), inner_(std::move(inner)) {}
  std::string tier_name() const override { return inner_->tier_name(); }
  std::uint64_t capacity_bytes() const override { return inner_->capacity_bytes(); }
  std::uint64_t usage_bytes() const override { return inner_->usage_bytes(); }
  std::uint64_t evict_at_least(std::uint64_t bytes) override {
    gate_.wait_inside();
    return inner_->evict_at_least(bytes);
  }
  std::vector<EntrySnapshot> snapshot() const override { return {}; }
  PoolStats stats() const override { return inner_->stats(); }

 private:
  Gate& gate_;
  std::shared_ptr<FakeTier> inner_;
};

TEST(BrokerConcurrency, RegistrationDoesNotWaitForAPassInProgress) {
  PressureBroker broker;
  Gate gate;
  broker.register_pool(std::make_shared<GatedTier>(gate, FakeTier::make("slow", 100, 139)));
  auto pass = std::async(std::launch::async, [&] { return broker.relieve(); });
  gate.wait_entered();  // the pass is now inside evict_at_least

  auto other = std::async(std::launch::async, [&] {
    broker.register_pool(FakeTier::make("new", 100, 10));
    const bool removed = broker.unregister_pool("slow");
    const auto snap = broker.snapshot();
    return removed && snap.pools.size() == 1;
  });
  // The gate stays closed: a registration that waited on the pass would never be ready.
  ASSERT_EQ(other.wait_for(kPatience), std::future_status::ready) << "registration waited on the pass";
  EXPECT_TRUE(other.get());
  gate.release();
  const auto report = pass.get();
  EXPECT_EQ(report.bytes_freed, 79u);  // the pass finished on the pool it had started with
  EXPECT_EQ(broker.pool_names(), std::vector<std::string>{"new"});
}

TEST(BrokerConcurrency, ASinkMayRegisterAndUnregisterDuringThePass) {
  PressureBroker broker;
  broker.add_alert_sink([&](const PressureAlert& alert) {
    broker.register_pool(FakeTier::make("added-by-sink-" + alert.tier_name, 100, 1));
    broker.unregister_pool(alert.tier_name);
  });
  broker.register_pool(FakeTier::make("a", 100, 199));
  broker.register_pool(FakeTier::make("b", 100, 198));
  auto pass = std::async(std::launch::async, [&] { return broker.relieve(); });
  ASSERT_EQ(pass.wait_for(kPatience), std::future_status::ready);
  EXPECT_EQ(pass.get().pools_acted.size(), 2u);
  EXPECT_EQ(broker.pool_names(),
            (std::vector<std::string>{"added-by-sink-a", "added-by-sink-b"}));
}

TEST(BrokerConcurrency, RegisterUnregisterRelieveSnapshotFromManyThreads) {
  PressureBroker broker;
  std::atomic<std::uint64_t> alerts{0};
  broker.add_alert_sink([&](const PressureAlert&) { alerts.fetch_add(1); });
  broker.start(1ms);
  // All five start together, without spinning while the others are created.
  std::latch go(1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      go.wait();
      for (int i = 0; i < 300; ++i) {
        const std::string name = "pool-" + std::to_string(t) + "-" + std::to_string(i % 7);
        auto pool = FakeTier::make(name, 1000, 500 + static_cast<std::uint64_t>((i * 37) % 500));
        broker.register_pool(pool);
        if (i % 3 == 0) broker.unregister_pool(name);
        pool->set_usage(1990);  // past its budget
      }
    });
  }
  threads.emplace_back([&] {
    go.wait();
    for (int i = 0; i < 200; ++i) broker.relieve();
  });
  threads.emplace_back([&] {
    go.wait();
    for (int i = 0; i < 200; ++i) {
      const auto snap = broker.snapshot();
      for (std::size_t k = 1; k < snap.pools.size(); ++k) {
        // Each pool's pressure is read once; order holds over what was read.
        EXPECT_GE(snap.pools[k - 1].pressure, snap.pools[k].pressure);
      }
      broker.global_pressure();
    }
  });
  go.count_down();
  for (auto& th : threads) th.join();
  broker.stop();
  // Every registered pool ends at or below its target after a final critical pass.
  broker.relieve();
  for (const auto& p : broker.snapshot().pools) EXPECT_LE(p.pressure, 0.95) << p.name;
  EXPECT_GT(alerts.load(), 0u);
  EXPECT_LE(broker.pool_names().size(), 21u);
}

}  // namespace
}  // namespace pagekeeper
