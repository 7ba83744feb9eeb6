// RedisTier: the fleet tier over hiredis, standalone or Cluster.

#include "pagekeeper/redis_tier.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <stdexcept>
#include <unordered_map>

#include "lookup_counts.hpp"
#include "pagekeeper/detail/mutex.hpp"
#include "pagekeeper/errors.hpp"

namespace pagekeeper {
namespace {

constexpr std::size_t kSlots = 16384;
constexpr int kMaxRounds = 4;

struct Endpoint {
  std::string host;
  int port = 6379;
  std::string address() const { return host + ':' + std::to_string(port); }
  bool operator==(const Endpoint&) const = default;
};

Endpoint parse_endpoint(std::string_view text) {
  std::string_view rest = text;
  if (rest.starts_with("redis://")) rest.remove_prefix(8);
  while (rest.ends_with('/')) rest.remove_suffix(1);
  Endpoint e;
  const std::size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) {
    e.host = std::string(rest);
  } else {
    e.host = std::string(rest.substr(0, colon));
    const std::string_view port = rest.substr(colon + 1);
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), e.port);
    if (ec != std::errc() || end != port.data() + port.size() || e.port <= 0 || e.port > 65535) {
      throw std::invalid_argument("redis: malformed port in '" + std::string(text) + "'");
    }
  }
  if (e.host.empty() || e.host.find_first_of("/@?") != std::string::npos) {
    throw std::invalid_argument("redis: malformed address '" + std::string(text) +
                                "' (expected redis://HOST:PORT)");
  }
  return e;
}

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381": the slot and the node.
bool parse_redirect(std::string_view error, std::string_view kind, std::uint16_t& slot,
                    Endpoint& to) {
  if (!error.starts_with(kind) || error.size() <= kind.size() || error[kind.size()] != ' ')
    return false;
  error.remove_prefix(kind.size() + 1);
  const std::size_t space = error.find(' ');
  if (space == std::string_view::npos) return false;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(error.data(), error.data() + space, value);
  if (ec != std::errc() || end != error.data() + space || value >= kSlots) return false;
  slot = static_cast<std::uint16_t>(value);
  try {
    to = parse_endpoint(error.substr(space + 1));
  } catch (const std::invalid_argument&) {
    return false;
  }
  return true;
}

constexpr std::array<std::uint16_t, 256> make_crc16_table() {
  std::array<std::uint16_t, 256> table{};
  for (unsigned i = 0; i < 256; ++i) {
    std::uint16_t crc = static_cast<std::uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<std::uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    table[i] = crc;
  }
  return table;
}
constexpr std::array<std::uint16_t, 256> kCrc16Table = make_crc16_table();

std::uint16_t crc16(std::string_view bytes) {
  std::uint16_t crc = 0;
  for (const char c : bytes) {
    crc = static_cast<std::uint16_t>(
        (crc << 8) ^ kCrc16Table[((crc >> 8) ^ static_cast<std::uint8_t>(c)) & 0xff]);
  }
  return crc;
}

timeval timeval_of(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// The idle connections of every node, by address, and the mutex that guards them. The tier's
// state extends it (its mode and slot table share the mutex); a Lease needs only this part.
struct ConnectionPools {
  Mutex mutex;
  std::unordered_map<std::string, std::vector<redisContext*>> idle PAGEKEEPER_GUARDED_BY(mutex);
};

}  // namespace

std::uint16_t redis_cluster_slot(std::string_view key) {
  const std::size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const std::size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return static_cast<std::uint16_t>(crc16(key) & (kSlots - 1));
}

struct RedisTier::Op {
  enum class Kind { kGet, kSet, kDel };
  Kind kind = Kind::kGet;
  std::string key;                 // with the prefix
  std::string_view value;          // kSet
  std::size_t index = 0;           // position in the caller's batch
  std::optional<Endpoint> target;  // set by a redirect
  bool asking = false;
  bool done = false;
  std::optional<std::string> result;  // kGet
};

struct RedisTier::State : ConnectionPools {
  explicit State(const RedisTierOptions& options) {
    for (const std::string& seed : options.seeds) seeds.push_back(parse_endpoint(seed));
  }

  std::vector<Endpoint> seeds;
  // Guarded by `mutex` (with `idle`, in ConnectionPools):
  Mode mode PAGEKEEPER_GUARDED_BY(mutex) = Mode::kUnknown;
  // Cluster: reload the slot table before the next call.
  bool reload PAGEKEEPER_GUARDED_BY(mutex) = false;
  Endpoint standalone PAGEKEEPER_GUARDED_BY(mutex);  // the server in standalone mode
  // Cluster: masters, indexed by slot_node.
  std::vector<Endpoint> nodes PAGEKEEPER_GUARDED_BY(mutex);
  std::vector<std::int32_t> slot_node PAGEKEEPER_GUARDED_BY(mutex) =
      std::vector<std::int32_t>(kSlots, -1);
  std::uint64_t connects PAGEKEEPER_GUARDED_BY(mutex) = 0;

  ~State() {
    for (auto& [address, contexts] : idle) {
      for (redisContext* c : contexts) redisFree(c);
    }
  }
};

RedisTier::RedisTier(RedisTierOptions options) : options_(std::move(options)) {
  if (options_.seeds.empty()) throw std::invalid_argument("redis: no seed address");
  if (options_.timeout.count() <= 0) throw std::invalid_argument("redis: timeout must be > 0");
  if (options_.ttl.count() < 0) throw std::invalid_argument("redis: ttl must be >= 0");
  state_ = std::make_unique<State>(options_);
}

RedisTier::~RedisTier() = default;

namespace {

// A connection taken from its node's pool for one call; returned on destruction unless it
// failed (then closed).
class Lease {
 public:
  Lease(redisContext* context, std::string address, ConnectionPools& pools, std::size_t keep)
      : context_(context), address_(std::move(address)), pools_(&pools), keep_(keep) {}
  Lease(Lease&& other) noexcept
      : context_(std::exchange(other.context_, nullptr)),
        address_(std::move(other.address_)),
        pools_(other.pools_),
        keep_(other.keep_) {}
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Lease& operator=(Lease&&) = delete;
  ~Lease() {
    if (context_ == nullptr) return;
    if (context_->err == 0 && !discard_) {
      MutexLock lock(pools_->mutex);
      std::vector<redisContext*>& pool = pools_->idle[address_];
      if (pool.size() < keep_) {
        pool.push_back(context_);
        return;
      }
    }
    redisFree(context_);
  }
  redisContext* get() const { return context_; }
  const std::string& address() const { return address_; }
  // Closes the connection instead of pooling it (a call that stopped with replies unread).
  void discard() { discard_ = true; }

 private:
  redisContext* context_;
  std::string address_;
  ConnectionPools* pools_;
  std::size_t keep_;
  bool discard_ = false;
};

}  // namespace

namespace {

Lease acquire(const std::string& tier, RedisTierOptions const& options, ConnectionPools& pools,
              std::uint64_t& connects, const Endpoint& endpoint) {
  const std::string address = endpoint.address();
  {
    MutexLock lock(pools.mutex);
    auto it = pools.idle.find(address);
    if (it != pools.idle.end() && !it->second.empty()) {
      redisContext* c = it->second.back();
      it->second.pop_back();
      return Lease(c, address, pools, options.connections_per_node);
    }
  }
  const timeval tv = timeval_of(options.timeout);
  redisContext* c = redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, tv);
  if (c == nullptr) throw TierUnavailable(tier, "cannot connect to " + address + ": out of memory");
  if (c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK) {
    const std::string why = c->errstr;
    redisFree(c);
    throw TierUnavailable(tier, "cannot connect to " + address + ": " + why);
  }
  {
    MutexLock lock(pools.mutex);
    ++connects;
  }
  return Lease(c, address, pools, options.connections_per_node);
}

Reply command(const std::string& tier, Lease& lease, const char* text) {
  auto* raw = static_cast<redisReply*>(redisCommand(lease.get(), text));
  if (raw == nullptr) {
    throw TierUnavailable(tier, lease.address() + ": " + lease.get()->errstr);
  }
  return Reply(raw);
}

}  // namespace

void RedisTier::execute(std::vector<Op>& ops) {
  State& st = *state_;
  const std::string& tier = options_.name;
  auto fail = [&](const std::string& why) -> void {
    errors_.fetch_add(1, std::memory_order_relaxed);
    MutexLock lock(st.mutex);
    if (st.mode == Mode::kCluster) st.reload = true;
    throw TierUnavailable(tier, why);
  };

  // The mode and, for a Cluster, the slot table: from the first seed (or known node) that
  // answers.
  bool need_topology = false;
  std::vector<Endpoint> candidates;
  {
    MutexLock lock(st.mutex);
    need_topology = st.mode == Mode::kUnknown || st.reload;
    if (need_topology) {
      candidates = st.nodes;
      candidates.insert(candidates.begin(), st.seeds.begin(), st.seeds.end());
    }
  }
  if (need_topology) {
    std::string last_error = "no seed answered";
    bool found = false;
    for (const Endpoint& candidate : candidates) {
      try {
        std::uint64_t connects = 0;
        Lease lease = acquire(tier, options_, st, connects, candidate);
        Reply slots = command(tier, lease, "CLUSTER SLOTS");
        MutexLock lock(st.mutex);
        st.connects += connects;
        if (slots->type == REDIS_REPLY_ERROR) {
          st.mode = Mode::kStandalone;
          st.standalone = candidate;
        } else if (slots->type == REDIS_REPLY_ARRAY) {
          st.mode = Mode::kCluster;
          st.nodes.clear();
          std::fill(st.slot_node.begin(), st.slot_node.end(), -1);
          for (std::size_t i = 0; i < slots->elements; ++i) {
            const redisReply* range = slots->element[i];
            if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
                range->element[2]->type != REDIS_REPLY_ARRAY || range->element[2]->elements < 2) {
              continue;
            }
            const redisReply* master = range->element[2];
            Endpoint node{
                std::string(master->element[0]->str != nullptr ? master->element[0]->str : ""),
                static_cast<int>(master->element[1]->integer)};
            if (node.host.empty()) node.host = candidate.host;
            auto it = std::find(st.nodes.begin(), st.nodes.end(), node);
            const auto index = static_cast<std::int32_t>(it - st.nodes.begin());
            if (it == st.nodes.end()) st.nodes.push_back(node);
            const long long first = range->element[0]->integer;
            const long long last = range->element[1]->integer;
            for (long long s = std::max(0LL, first);
                 s <= last && s < static_cast<long long>(kSlots); ++s) {
              st.slot_node[static_cast<std::size_t>(s)] = index;
            }
          }
        } else {
          continue;
        }
        st.reload = false;
        found = true;
        break;
      } catch (const TierUnavailable& e) {
        last_error = e.what();
      }
    }
    if (!found) fail(last_error);
  }

  std::vector<Op*> pending;
  pending.reserve(ops.size());
  for (Op& op : ops) pending.push_back(&op);
  for (int round = 0; round < kMaxRounds && !pending.empty(); ++round) {
    // Group by node.
    std::vector<std::pair<Endpoint, std::vector<Op*>>> groups;
    {
      MutexLock lock(st.mutex);
      for (Op* op : pending) {
        Endpoint target;
        if (op->target) {
          target = *op->target;
        } else if (st.mode == Mode::kStandalone) {
          target = st.standalone;
        } else {
          const std::int32_t node = st.slot_node[redis_cluster_slot(op->key)];
          if (node < 0) {
            st.reload = true;
            errors_.fetch_add(1, std::memory_order_relaxed);
            throw TierUnavailable(
                tier, "no Cluster node serves slot " + std::to_string(redis_cluster_slot(op->key)));
          }
          target = st.nodes[static_cast<std::size_t>(node)];
        }
        auto it = std::find_if(groups.begin(), groups.end(),
                               [&](const auto& g) { return g.first == target; });
        if (it == groups.end()) {
          groups.emplace_back(target, std::vector<Op*>{});
          it = groups.end() - 1;
        }
        it->second.push_back(op);
      }
    }
    // Send every node's pipeline, then read the replies. A call that stops early closes its
    // connections: replies left unread would answer the next caller's commands.
    std::vector<Lease> leases;
    leases.reserve(groups.size());
    std::vector<Op*> again;
    try {
      std::uint64_t connects = 0;
      std::string failure;
      for (auto& [endpoint, group] : groups) {
        try {
          leases.push_back(acquire(tier, options_, st, connects, endpoint));
        } catch (const TierUnavailable& e) {
          failure = e.what();
          break;
        }
        redisContext* c = leases.back().get();
        const std::string ttl = std::to_string(options_.ttl.count());
        for (Op* op : group) {
          if (op->asking) redisAppendCommand(c, "ASKING");
          switch (op->kind) {
            case Op::Kind::kGet: {
              const char* argv[] = {"GET", op->key.data()};
              const std::size_t len[] = {3, op->key.size()};
              redisAppendCommandArgv(c, 2, argv, len);
              break;
            }
            case Op::Kind::kSet: {
              const char* argv[] = {"SET", op->key.data(), op->value.data(), "PX", ttl.data()};
              const std::size_t len[] = {3, op->key.size(), op->value.size(), 2, ttl.size()};
              redisAppendCommandArgv(c, options_.ttl.count() > 0 ? 5 : 3, argv, len);
              bytes_written_.fetch_add(op->key.size() + op->value.size(),
                                       std::memory_order_relaxed);
              break;
            }
            case Op::Kind::kDel: {
              const char* argv[] = {"DEL", op->key.data()};
              const std::size_t len[] = {3, op->key.size()};
              redisAppendCommandArgv(c, 2, argv, len);
              break;
            }
          }
        }
        int done = 0;
        while (done == 0) {
          if (redisBufferWrite(c, &done) != REDIS_OK) {
            failure = leases.back().address() + ": " + c->errstr;
            break;
          }
        }
        if (!failure.empty()) break;
      }
      {
        MutexLock lock(st.mutex);
        st.connects += connects;
      }
      if (!failure.empty()) fail(failure);

      for (std::size_t g = 0; g < groups.size(); ++g) {
        redisContext* c = leases[g].get();
        for (Op* op : groups[g].second) {
          void* raw = nullptr;
          if (op->asking) {
            if (redisGetReply(c, &raw) != REDIS_OK) fail(leases[g].address() + ": " + c->errstr);
            freeReplyObject(raw);
            raw = nullptr;
          }
          if (redisGetReply(c, &raw) != REDIS_OK) fail(leases[g].address() + ": " + c->errstr);
          const Reply reply(static_cast<redisReply*>(raw));
          op->asking = false;
          if (reply->type == REDIS_REPLY_ERROR) {
            const std::string_view error(reply->str, reply->len);
            std::uint16_t slot = 0;
            Endpoint to;
            if (parse_redirect(error, "MOVED", slot, to)) {
              redirects_.fetch_add(1, std::memory_order_relaxed);
              {
                MutexLock lock(st.mutex);
                auto it = std::find(st.nodes.begin(), st.nodes.end(), to);
                if (it == st.nodes.end()) it = st.nodes.insert(st.nodes.end(), to);
                st.slot_node[slot] = static_cast<std::int32_t>(it - st.nodes.begin());
                st.reload = true;  // a MOVED means the table is stale: refresh it next call
              }
              op->target = to;
              again.push_back(op);
            } else if (parse_redirect(error, "ASK", slot, to)) {
              redirects_.fetch_add(1, std::memory_order_relaxed);
              op->target = to;
              op->asking = true;
              again.push_back(op);
            } else if (error.starts_with("TRYAGAIN")) {
              again.push_back(op);
            } else {
              fail(leases[g].address() + ": " + std::string(error));
            }
            continue;
          }
          op->done = true;
          if (op->kind == Op::Kind::kGet && reply->type == REDIS_REPLY_STRING) {
            op->result.emplace(reply->str, reply->len);
            bytes_read_.fetch_add(reply->len, std::memory_order_relaxed);
          }
        }
      }
    } catch (...) {
      for (Lease& lease : leases) lease.discard();
      throw;
    }
    pending = std::move(again);
  }
  if (!pending.empty())
    fail("too many Cluster redirects for " + std::to_string(pending.size()) + " keys");
}

std::vector<std::optional<std::string>> RedisTier::get_many(std::span<const std::string> keys) {
  std::vector<std::optional<std::string>> out(keys.size());
  if (keys.empty()) return out;
  std::vector<Op> ops(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    ops[i].kind = Op::Kind::kGet;
    ops[i].key = options_.key_prefix + keys[i];
    ops[i].index = i;
  }
  execute(ops);
  for (Op& op : ops) out[op.index] = std::move(op.result);
  count_lookups(out, hits_, misses_);
  return out;
}

void RedisTier::put_many(std::span<const std::pair<std::string, std::string>> records) {
  if (records.empty()) return;
  std::vector<Op> ops(records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    ops[i].kind = Op::Kind::kSet;
    ops[i].key = options_.key_prefix + records[i].first;
    ops[i].value = records[i].second;
    ops[i].index = i;
  }
  execute(ops);
}

void RedisTier::erase(std::string_view key) {
  std::vector<Op> ops(1);
  ops[0].kind = Op::Kind::kDel;
  ops[0].key = options_.key_prefix + std::string(key);
  execute(ops);
}

RedisTier::Mode RedisTier::mode() const {
  MutexLock lock(state_->mutex);
  return state_->mode;
}

RedisTier::Stats RedisTier::stats() const {
  Stats s;
  s.hits = hits_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.errors = errors_.load(std::memory_order_relaxed);
  s.redirects = redirects_.load(std::memory_order_relaxed);
  s.bytes_read = bytes_read_.load(std::memory_order_relaxed);
  s.bytes_written = bytes_written_.load(std::memory_order_relaxed);
  {
    MutexLock lock(state_->mutex);
    s.connects = state_->connects;
  }
  return s;
}

}  // namespace pagekeeper
