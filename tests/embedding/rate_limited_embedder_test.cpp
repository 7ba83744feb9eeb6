#include "pagekeeper/rate_limited_embedder.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "pagekeeper/lexical_embedder.hpp"

namespace pagekeeper {
namespace {

using namespace std::chrono_literals;
using Clock = RateLimitedEmbedder::Clock;

// A clock that moves only when a call waits: sleep_until jumps to the wake-up time.
struct ManualTime {
  Clock::time_point now = Clock::time_point{} + 1000s;
  std::vector<Clock::duration> waits;  // from the start of the test
  const Clock::time_point start = now;

  RateLimitedEmbedder::Timing timing() {
    return {[this] { return now; },
            [this](Clock::time_point t) {
              waits.push_back(t - start);
              if (t > now) now = t;
            }};
  }
};

const std::vector<std::string> kTexts = {"a text to embed"};

TEST(RateLimitedEmbedder, QueuesCallsOnePerIntervalInsteadOfFailing) {
  ManualTime time;
  auto inner = std::make_shared<LexicalEmbedder>();
  RateLimitedEmbedder limited(inner, 2.0, time.timing());  // one start every 500 ms
  for (int i = 0; i < 4; ++i) EXPECT_EQ(limited.embed(kTexts), inner->embed(kTexts));
  // The first call starts at once; the next three wait for 500, 1000 and 1500 ms.
  EXPECT_EQ(time.waits, (std::vector<Clock::duration>{500ms, 1000ms, 1500ms}));
  EXPECT_EQ(limited.calls_delayed(), 3u);

  time.now += 10s;  // idle: the next call starts at once, and only one
  limited.embed(kTexts);
  limited.embed(kTexts);
  EXPECT_EQ(time.waits.size(), 4u);
  EXPECT_EQ(time.waits.back(), time.now - time.start);
  EXPECT_EQ(limited.calls_delayed(), 4u);
}

TEST(RateLimitedEmbedder, ForwardsWhatItWraps) {
  ManualTime time;
  auto inner = std::make_shared<LexicalEmbedder>();
  RateLimitedEmbedder limited(inner, 1000.0, time.timing());
  EXPECT_EQ(limited.name(), inner->name());
  EXPECT_EQ(limited.dimensions(), inner->dimensions());
  EXPECT_EQ(limited.max_batch(), inner->max_batch());
  EXPECT_EQ(limited.identity(), inner->identity());
  EXPECT_DOUBLE_EQ(limited.calls_per_second(), 1000.0);
  VectorSlab storage(inner->dimensions());
  const std::vector<std::string_view> views = {kTexts[0]};
  const auto compact = limited.embed_compact(views, storage);
  ASSERT_EQ(compact.size(), 1u);
  EXPECT_EQ(compact[0].to_vector(), inner->embed(kTexts)[0]);
}

TEST(RateLimitedEmbedder, RefusesNonsense) {
  auto inner = std::make_shared<LexicalEmbedder>();
  EXPECT_THROW(RateLimitedEmbedder(nullptr, 1.0), std::invalid_argument);
  EXPECT_THROW(RateLimitedEmbedder(inner, 0.0), std::invalid_argument);
  EXPECT_THROW(RateLimitedEmbedder(inner, -1.0), std::invalid_argument);
  EXPECT_THROW(RateLimitedEmbedder(inner, std::nan("")), std::invalid_argument);
}

// Threads on the real clock: callers queue, every call succeeds.
TEST(RateLimitedEmbedder, ConcurrentCallersAllSucceed) {
  auto inner = std::make_shared<LexicalEmbedder>();
  // 5 ms apart: far longer than a call takes even under a sanitizer, so calls are delayed
  // however the threads are scheduled, and the 60 calls still take only 0.3 s.
  RateLimitedEmbedder limited(inner, 200.0);
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (limited.embed(kTexts).size() == 1) done.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(done.load(), 60);
  EXPECT_GT(limited.calls_delayed(), 0u);
}

}  // namespace
}  // namespace pagekeeper
