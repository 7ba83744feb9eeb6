// A randomized model check of the pool against a plain reference implementation: one shard,
// byte budgets and sizes, pins, replacements, forced evictions, clears, broker evictions and
// budget changes, for LRU and for W-TinyLFU (fixed window, fixed seed). After every
// operation the pool's observable state (which keys are resident with which values, bytes,
// entry, pin, hit, miss, eviction and rejection counts) must equal the model's.
//
// The reference keeps each order in a std::list and follows the pool's documented rules:
// room is made before an insert looks its key up (so a replaced value still counts while
// room is made), pinned entries met at a tail move to its front, an oversize value is
// rejected and removes the stale one. stats() is called after every operation, which
// flushes the pool's insert stage, so a replaced entry leaves right after its replacement.

#include <algorithm>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pagekeeper/detail/frequency_sketch.hpp"
#include "pagekeeper/detail/key_support.hpp"
#include "pagekeeper/pool.hpp"

namespace pagekeeper {
namespace {

using U64Pool = PagedResourcePool<std::uint64_t, std::uint64_t>;

struct ModelEntry {
  std::uint64_t key;
  std::uint64_t value;
  std::uint64_t size;
  std::uint32_t pins = 0;
  int region = 0;  // W-TinyLFU: 0 window, 1 probation, 2 protected; LRU: always 0
};
using Order = std::list<ModelEntry*>;  // front: most recent

class Model {
 public:
  Model(std::uint64_t max_bytes, bool tiny, double window_fraction, std::uint64_t seed)
      : max_(max_bytes), tiny_(tiny), window_fraction_(window_fraction), random_(seed | 1) {
    set_capacity();
  }
  ~Model() {
    for (auto& [k, e] : resident_) delete e;
    for (ModelEntry* e : detached_pinned_) delete e;
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  std::optional<std::uint64_t> get(std::uint64_t key) {
    const auto it = resident_.find(key);
    if (it == resident_.end()) {
      ++misses_;
      return std::nullopt;
    }
    ++hits_;
    access(it->second);
    return it->second->value;
  }

  bool insert(std::uint64_t key, std::uint64_t value, std::uint64_t size) {
    if (size > max_) {
      ++rejected_;
      if (auto it = resident_.find(key); it != resident_.end()) remove(it->second);
      return false;
    }
    // Room first (watermark 1.0: down to the budget).
    while (total_ + size > max_ && evict_victim()) {
    }
    ModelEntry* old = nullptr;
    if (auto it = resident_.find(key); it != resident_.end()) old = it->second;
    auto* e = new ModelEntry{key, value, size};
    if (old != nullptr) resident_.erase(key);
    resident_[key] = e;
    total_ += size;
    on_insert(e, old != nullptr);
    if (old != nullptr) detach(old);  // replaced at the flush that stats() causes
    // The budget after the insert (everything else pinned).
    while (total_ > max_ && evict_victim()) {
    }
    return true;
  }

  // Returns the pinned entry (nullptr when not resident).
  ModelEntry* pin(std::uint64_t key) {
    const auto it = resident_.find(key);
    if (it == resident_.end()) return nullptr;
    ModelEntry* e = it->second;
    ++e->pins;
    move_to_front(e);
    return e;
  }
  void unpin(ModelEntry* e) {
    --e->pins;
    if (e->pins == 0) {
      if (auto it = std::find(detached_pinned_.begin(), detached_pinned_.end(), e); it != detached_pinned_.end()) {
        detached_pinned_.erase(it);
        delete e;
      }
    }
  }

  bool erase(std::uint64_t key) {
    const auto it = resident_.find(key);
    if (it == resident_.end()) return false;
    remove(it->second);
    ++evictions_;
    return true;
  }

  void clear() {
    std::vector<ModelEntry*> all;
    for (auto& [k, e] : resident_) all.push_back(e);
    for (ModelEntry* e : all) remove(e);
    hits_ = misses_ = evictions_ = rejected_ = 0;
  }

  std::uint64_t evict_at_least(std::uint64_t want) {
    std::uint64_t freed = 0;
    while (want != 0 && freed < want && evict_victim(&freed)) {
    }
    return freed;
  }

  std::uint64_t set_max_bytes(std::uint64_t max) {
    max_ = max;
    set_capacity();
    std::uint64_t freed = 0;
    while (total_ > max_ && evict_victim(&freed)) {
    }
    return freed;
  }

  const std::map<std::uint64_t, ModelEntry*>& resident() const { return resident_; }
  std::uint64_t total() const { return total_; }
  std::uint64_t hits() const { return hits_; }
  std::uint64_t misses() const { return misses_; }
  std::uint64_t evictions() const { return evictions_; }
  std::uint64_t rejected() const { return rejected_; }
  std::uint64_t pinned() const {
    return static_cast<std::uint64_t>(std::count_if(resident_.begin(), resident_.end(),
                                                    [](const auto& kv) { return kv.second->pins > 0; }));
  }

 private:
  static std::uint64_t hash(std::uint64_t key) { return pool_detail::mix64(std::hash<std::uint64_t>{}(key)); }

  Order& list(int region) { return region == 0 ? window_ : region == 1 ? probation_ : protected_; }
  void move_to_front(ModelEntry* e) {
    Order& l = list(e->region);
    l.remove(e);
    l.push_front(e);
  }

  // The least recent unpinned entry of a list; pinned ones met on the way go to its front.
  ModelEntry* unpinned_tail(Order& l) {
    std::size_t steps = 0;
    const std::size_t limit = resident_.size();
    for (auto it = l.end(); it != l.begin() && steps < limit;) {
      --it;
      ++steps;
      ModelEntry* e = *it;
      if (e->pins == 0) return e;
      it = l.erase(it);
      l.push_front(e);
    }
    return nullptr;
  }

  ModelEntry* victim() {
    if (!tiny_) return unpinned_tail(window_);
    ModelEntry* candidate = unpinned_tail(window_);
    ModelEntry* main = unpinned_tail(probation_);
    if (main == nullptr) main = unpinned_tail(protected_);
    if (candidate == nullptr || main == nullptr) return candidate != nullptr ? candidate : main;
    const unsigned cf = sketch_.frequency(hash(candidate->key));
    bool admit = cf > sketch_.frequency(hash(main->key));
    if (!admit && cf >= 6) admit = (next_random() & 127) == 0;
    if (!admit) return candidate;
    window_.remove(candidate);
    window_bytes_ -= candidate->size;
    candidate->region = 1;
    probation_.push_front(candidate);
    return main;
  }

  // Evicts the policy's victim, adding its bytes to `*freed` when given; false when every
  // entry is pinned (or none is resident).
  bool evict_victim(std::uint64_t* freed = nullptr) {
    ModelEntry* v = victim();
    if (v == nullptr) return false;
    if (freed != nullptr) *freed += v->size;
    remove(v);
    ++evictions_;
    return true;
  }

  std::uint64_t next_random() {
    random_ ^= random_ << 13;
    random_ ^= random_ >> 7;
    random_ ^= random_ << 17;
    return random_;
  }

  void set_capacity() {
    window_max_ = max_ - static_cast<std::uint64_t>((1.0 - window_fraction_) * static_cast<double>(max_));
    protected_max_ = static_cast<std::uint64_t>(0.75 * static_cast<double>(max_ - window_max_));
  }

  // `replacing`: an older entry for e's key still counts (the policy sees it leave later).
  void on_insert(ModelEntry* e, bool replacing) {
    if (!tiny_) {
      window_.push_front(e);
      return;
    }
    if (2 * total_ >= max_ && total_ > 0) {
      const std::size_t entries = resident_.size() + (replacing ? 1 : 0);
      const auto want = static_cast<std::size_t>(static_cast<long double>(entries) *
                                                 static_cast<long double>(max_) / static_cast<long double>(total_));
      if (want > sketch_.capacity()) sketch_.ensure_capacity(want);
    }
    sketch_.increment(hash(e->key));
    e->region = 0;
    window_.push_front(e);
    window_bytes_ += e->size;
    while (window_bytes_ > window_max_ && window_.back() != e) demote_tail(window_, window_bytes_);
  }

  // The least recent entry of `from` (the window or protected) becomes probation's newest.
  void demote_tail(Order& from, std::uint64_t& from_bytes) {
    ModelEntry* oldest = from.back();
    from.pop_back();
    from_bytes -= oldest->size;
    oldest->region = 1;
    probation_.push_front(oldest);
  }

  void access(ModelEntry* e) {
    if (!tiny_) {
      move_to_front(e);
      return;
    }
    sketch_.increment(hash(e->key));
    if (e->region != 1 || e->size > protected_max_) {
      move_to_front(e);
      return;
    }
    probation_.remove(e);
    e->region = 2;
    protected_.push_front(e);
    protected_bytes_ += e->size;
    while (protected_bytes_ > protected_max_ && !protected_.empty()) demote_tail(protected_, protected_bytes_);
  }

  // Out of the order and the accounts; freed unless pinned.
  void detach(ModelEntry* e) {
    list(e->region).remove(e);
    total_ -= e->size;
    if (e->region == 0) window_bytes_ -= tiny_ ? e->size : 0;
    if (e->region == 2) protected_bytes_ -= e->size;
    if (e->pins > 0) {
      detached_pinned_.push_back(e);
    } else {
      delete e;
    }
  }
  void remove(ModelEntry* e) {
    resident_.erase(e->key);
    detach(e);
  }

  std::uint64_t max_;
  bool tiny_;
  double window_fraction_;
  std::uint64_t random_;
  std::map<std::uint64_t, ModelEntry*> resident_;
  std::vector<ModelEntry*> detached_pinned_;
  Order window_, probation_, protected_;  // LRU keeps everything in window_
  std::uint64_t window_bytes_ = 0, protected_bytes_ = 0, window_max_ = 0, protected_max_ = 0;
  std::uint64_t total_ = 0, hits_ = 0, misses_ = 0, evictions_ = 0, rejected_ = 0;
  pool_detail::FrequencySketch sketch_;
};

void run_model_check(bool tiny, std::uint64_t seed, int operations) {
  constexpr std::uint64_t kKeys = 40;
  constexpr std::uint64_t kMax = 200;
  TinyLfuOptions options;
  options.adapt = TinyLfuOptions::Adapt::kFixed;
  options.window_fraction = 0.2;
  options.seed = seed;
  PoolConfig<std::uint64_t, std::uint64_t> c;
  c.name = "model";
  c.max_bytes = kMax;
  c.shards = 1;
  c.policy = tiny ? EvictionPolicy<std::uint64_t>::tiny_lfu(options) : EvictionPolicy<std::uint64_t>::lru();
  // Values encode their size, so the sizer needs no table.
  c.sizer = [](const std::uint64_t& v) { return v % 1000; };
  U64Pool pool(c);
  Model model(kMax, tiny, options.window_fraction, seed);

  struct Held {
    U64Pool::PinHandle handle;
    ModelEntry* entry;
  };
  std::vector<Held> pins;
  std::mt19937_64 rng(seed);
  std::uint64_t serial = 0;
  for (int op = 0; op < operations; ++op) {
    const std::uint64_t key = rng() % kKeys;
    const int kind = static_cast<int>(rng() % 100);
    std::string what;
    if (kind < 45) {
      what = "get";
      ASSERT_EQ(pool.get(key), model.get(key)) << op;
    } else if (kind < 80) {
      const std::uint64_t size = rng() % 16 == 0 ? 150 + rng() % 100 : 1 + rng() % 30;  // some oversize
      const std::uint64_t value = (++serial) * 1000 + size;
      what = "insert";
      ASSERT_EQ(pool.insert(key, value), model.insert(key, value, size)) << op;
    } else if (kind < 86) {
      what = "pin";
      auto handle = pool.pin(key);
      ModelEntry* e = model.pin(key);
      ASSERT_EQ(static_cast<bool>(handle), e != nullptr) << op;
      if (e != nullptr) pins.push_back({std::move(handle), e});
    } else if (kind < 92) {
      what = "unpin";
      if (!pins.empty()) {
        const std::size_t i = rng() % pins.size();
        ASSERT_EQ(*pins[i].handle, pins[i].entry->value) << op;  // a pin keeps its value readable
        pins[i].handle.release();
        model.unpin(pins[i].entry);
        pins.erase(pins.begin() + static_cast<std::ptrdiff_t>(i));
      }
    } else if (kind < 95) {
      what = "evict";
      ASSERT_EQ(pool.erase(key), model.erase(key)) << op;
    } else if (kind < 97) {
      what = "evict_at_least";
      const std::uint64_t want = rng() % 60;
      ASSERT_EQ(pool.evict_at_least(want), model.evict_at_least(want)) << op;
    } else if (kind < 99) {
      what = "set_max_bytes";
      const std::uint64_t max = 120 + rng() % 120;
      ASSERT_EQ(pool.set_max_bytes(max), model.set_max_bytes(max)) << op;
    } else {
      what = "clear";
      ASSERT_EQ(pool.clear(), model.resident().size()) << op;
      model.clear();
    }
    const PoolStats st = pool.stats();
    ASSERT_EQ(st.total_bytes, model.total()) << op << " after " << what;
    ASSERT_EQ(st.entry_count, model.resident().size()) << op << " after " << what;
    ASSERT_EQ(st.pinned_count, model.pinned()) << op << " after " << what;
    ASSERT_EQ(st.hits, model.hits()) << op;
    ASSERT_EQ(st.misses, model.misses()) << op;
    ASSERT_EQ(st.evictions, model.evictions()) << op << " after " << what;
    ASSERT_EQ(st.rejected_oversize, model.rejected()) << op;
    for (std::uint64_t k = 0; k < kKeys; ++k) {
      ASSERT_EQ(pool.contains(k), model.resident().count(k) == 1) << op << " key " << k << " after " << what;
    }
    if (op % 64 == 0) {
      ASSERT_EQ(pool.verify_invariants(), "") << op;
    }
  }
  // Every resident value is the model's (get counts on both sides alike).
  for (const auto& [k, e] : model.resident()) ASSERT_EQ(pool.get(k), model.get(k));
  EXPECT_EQ(pool.verify_invariants(), "");
}

TEST(PoolModel, LruMatchesTheReference) {
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE(seed);
    run_model_check(false, seed, 6000);
  }
}

TEST(PoolModel, TinyLfuWithAFixedWindowMatchesTheReference) {
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE(seed);
    run_model_check(true, seed, 6000);
  }
}

}  // namespace
}  // namespace pagekeeper
