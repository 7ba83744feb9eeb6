// LmdbTier: the local durable tier on LMDB.

#include "pagekeeper/lmdb_tier.hpp"

#include <bit>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <lmdb.h>
#include <sys/statvfs.h>

#include "lookup_counts.hpp"

namespace pagekeeper {
namespace {

constexpr std::size_t kSeqBytes = 8;  // the sequence number in front of every stored record
constexpr char kBytesKey[] = "bytes";
constexpr char kSeqKey[] = "seq";

MDB_val val_of(std::string_view bytes) {
  return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}
std::string_view view_of(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

// Big-endian, so LMDB's byte order on `age` keys is write order.
std::string seq_key(std::uint64_t seq) {
  const std::uint64_t big = __builtin_bswap64(seq);  // std::byteswap is C++23
  return {reinterpret_cast<const char*>(&big), sizeof(big)};
}

std::uint64_t read_u64(std::string_view bytes) {
  std::uint64_t value = 0;
  if (bytes.size() >= sizeof(value)) std::memcpy(&value, bytes.data(), sizeof(value));
  return value;
}

}  // namespace

struct LmdbTier::Env {
  MDB_env* env = nullptr;
  MDB_dbi records = 0;
  MDB_dbi age = 0;
  MDB_dbi meta = 0;
  std::string tier;
  std::size_t max_key = 0;

  [[noreturn]] void fail(const std::string& what, int rc) const {
    throw TierUnavailable(tier, what + ": " + mdb_strerror(rc));
  }
  void check(int rc, const char* what) const {
    if (rc != MDB_SUCCESS) fail(what, rc);
  }

  // A transaction aborted on destruction unless committed.
  struct Txn {
    const Env* owner;
    MDB_txn* txn = nullptr;
    Txn(const Env& e, unsigned flags) : owner(&e) {
      e.check(mdb_txn_begin(e.env, nullptr, flags, &txn), "mdb_txn_begin");
    }
    Txn(const Txn&) = delete;
    Txn& operator=(const Txn&) = delete;
    ~Txn() {
      if (txn != nullptr) mdb_txn_abort(txn);
    }
    void commit() {
      const int rc = mdb_txn_commit(std::exchange(txn, nullptr));
      owner->check(rc, "mdb_txn_commit");
    }
  };

  std::uint64_t meta_u64(MDB_txn* txn, const char* name) const {
    MDB_val key = val_of(name);
    MDB_val value;
    const int rc = mdb_get(txn, meta, &key, &value);
    if (rc == MDB_NOTFOUND) return 0;
    check(rc, "mdb_get(meta)");
    return read_u64(view_of(value));
  }
  void set_meta_u64(MDB_txn* txn, const char* name, std::uint64_t value) const {
    MDB_val key = val_of(name);
    MDB_val data{sizeof(value), &value};
    check(mdb_put(txn, meta, &key, &data, 0), "mdb_put(meta)");
  }

  // Removes `key`'s record and age entry if present; returns the bytes it accounted for.
  std::uint64_t remove(MDB_txn* txn, std::string_view key_bytes) const {
    MDB_val key = val_of(key_bytes);
    MDB_val value;
    const int rc = mdb_get(txn, records, &key, &value);
    if (rc == MDB_NOTFOUND) return 0;
    check(rc, "mdb_get(records)");
    const std::uint64_t size = key_bytes.size() + value.mv_size;
    const std::string age_key = seq_key(read_u64(view_of(value)));
    MDB_val age_val = val_of(age_key);
    const int age_rc = mdb_del(txn, age, &age_val, nullptr);
    if (age_rc != MDB_NOTFOUND) check(age_rc, "mdb_del(age)");
    check(mdb_del(txn, records, &key, nullptr), "mdb_del(records)");
    return size;
  }

  // Evicts the oldest records until `bytes` <= `target` or nothing is left; returns how many.
  std::uint64_t evict_oldest(MDB_txn* txn, std::uint64_t& bytes, std::uint64_t target) const {
    std::uint64_t evicted = 0;
    while (bytes > target) {
      MDB_cursor* cursor = nullptr;
      check(mdb_cursor_open(txn, age, &cursor), "mdb_cursor_open");
      MDB_val age_key;
      MDB_val key;
      const int rc = mdb_cursor_get(cursor, &age_key, &key, MDB_FIRST);
      std::string victim = rc == MDB_SUCCESS ? std::string(view_of(key)) : std::string();
      mdb_cursor_close(cursor);
      if (rc == MDB_NOTFOUND) {
        bytes = 0;  // nothing left: the total can only be 0
        break;
      }
      check(rc, "mdb_cursor_get(age)");
      const std::uint64_t freed = remove(txn, victim);
      if (freed == 0) {
        // An age entry without its record: drop it alone.
        check(mdb_del(txn, age, &age_key, nullptr), "mdb_del(age)");
        continue;
      }
      bytes -= std::min(bytes, freed);
      ++evicted;
    }
    return evicted;
  }
};

LmdbTier::LmdbTier(LmdbTierOptions options) : options_(std::move(options)), env_(std::make_unique<Env>()) {
  if (options_.max_bytes == 0) throw std::invalid_argument("LmdbTier: max_bytes must be > 0");
  env_->tier = options_.name;
  std::error_code ec;
  std::filesystem::create_directories(options_.directory, ec);
  if (ec) {
    throw TierUnavailable(options_.name, "cannot create directory '" + options_.directory.string() +
                                             "': " + ec.message());
  }
  Env& e = *env_;
  e.check(mdb_env_create(&e.env), "mdb_env_create");
  try {
    e.check(mdb_env_set_maxdbs(e.env, 3), "mdb_env_set_maxdbs");
    // Room for B-tree pages, overflow pages of large records and pages freed by transactions
    // still being read: twice the budget plus a margin. The file grows only as it fills.
    const std::uint64_t map_size = options_.max_bytes * 2 + (std::uint64_t{32} << 20);
    e.check(mdb_env_set_mapsize(e.env, map_size), "mdb_env_set_mapsize");
    const int rc = mdb_env_open(e.env, options_.directory.c_str(), MDB_NOSYNC | MDB_NOTLS, 0644);
    if (rc != MDB_SUCCESS) e.fail("cannot open LMDB environment in '" + options_.directory.string() + "'", rc);
    int dead = 0;
    e.check(mdb_reader_check(e.env, &dead), "mdb_reader_check");
    e.max_key = static_cast<std::size_t>(mdb_env_get_maxkeysize(e.env));
    Env::Txn txn(e, 0);
    e.check(mdb_dbi_open(txn.txn, "records", MDB_CREATE, &e.records), "mdb_dbi_open(records)");
    e.check(mdb_dbi_open(txn.txn, "age", MDB_CREATE, &e.age), "mdb_dbi_open(age)");
    e.check(mdb_dbi_open(txn.txn, "meta", MDB_CREATE, &e.meta), "mdb_dbi_open(meta)");
    txn.commit();
  } catch (...) {
    mdb_env_close(e.env);
    throw;
  }
}

LmdbTier::~LmdbTier() {
  mdb_env_sync(env_->env, 1);
  mdb_env_close(env_->env);
}

std::vector<std::optional<std::string>> LmdbTier::get_many(std::span<const std::string> keys) {
  std::vector<std::optional<std::string>> out(keys.size());
  if (keys.empty()) return out;
  Env::Txn txn(*env_, MDB_RDONLY);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].empty() || keys[i].size() > env_->max_key) continue;
    MDB_val key = val_of(keys[i]);
    MDB_val value;
    const int rc = mdb_get(txn.txn, env_->records, &key, &value);
    if (rc == MDB_NOTFOUND) continue;
    env_->check(rc, "mdb_get(records)");
    // A stored value shorter than its sequence number is damaged: an empty record, which
    // no decoder accepts.
    const std::string_view stored = view_of(value);
    out[i] = stored.size() < kSeqBytes ? std::string() : std::string(stored.substr(kSeqBytes));
  }
  count_lookups(out, hits_, misses_);
  return out;
}

void LmdbTier::put_many(std::span<const std::pair<std::string, std::string>> records) {
  if (records.empty()) return;
  std::uint64_t incoming = 0;
  for (const auto& [key, record] : records) incoming += key.size() + kSeqBytes + record.size();
  struct statvfs fs{};
  if (::statvfs(options_.directory.c_str(), &fs) != 0) {
    throw TierUnavailable(options_.name, "statvfs('" + options_.directory.string() + "') failed");
  }
  const std::uint64_t capacity = std::uint64_t{fs.f_blocks} * fs.f_frsize;
  const std::uint64_t used = (std::uint64_t{fs.f_blocks} - fs.f_bavail) * fs.f_frsize;
  try {
    ensure_projected_disk_capacity(options_.name, used, capacity, incoming,
                                   options_.disk_pressure_basis_points);
  } catch (const DiskCapacity&) {
    refused_disk_.fetch_add(records.size(), std::memory_order_relaxed);
    return;
  }

  const Env& e = *env_;
  // One write transaction for the batch; returns LMDB's code (MDB_MAP_FULL is retried).
  auto write_batch = [&]() -> int {
    Env::Txn txn(e, 0);
    std::uint64_t bytes = e.meta_u64(txn.txn, kBytesKey);
    std::uint64_t seq = e.meta_u64(txn.txn, kSeqKey);
    std::uint64_t written = 0;
    std::uint64_t evicted = 0;
    std::uint64_t oversize = 0;
    std::string stored;
    for (const auto& [key_bytes, record] : records) {
      const std::uint64_t size = key_bytes.size() + kSeqBytes + record.size();
      if (size > options_.max_bytes || key_bytes.empty() || key_bytes.size() > e.max_key) {
        ++oversize;
        continue;
      }
      bytes -= std::min(bytes, e.remove(txn.txn, key_bytes));
      if (bytes + size > options_.max_bytes) {
        evicted += e.evict_oldest(txn.txn, bytes, options_.max_bytes - size);
      }
      stored.assign(reinterpret_cast<const char*>(&seq), sizeof(seq));
      stored.append(record);
      const std::string age_key = seq_key(seq);
      MDB_val key = val_of(key_bytes);
      MDB_val value = val_of(stored);
      MDB_val age_val = val_of(age_key);
      int rc = mdb_put(txn.txn, e.records, &key, &value, 0);
      if (rc == MDB_SUCCESS) rc = mdb_put(txn.txn, e.age, &age_val, &key, 0);
      if (rc != MDB_SUCCESS) return rc;
      bytes += size;
      ++seq;
      ++written;
    }
    e.set_meta_u64(txn.txn, kBytesKey, bytes);
    e.set_meta_u64(txn.txn, kSeqKey, seq);
    txn.commit();
    writes_.fetch_add(written, std::memory_order_relaxed);
    evictions_.fetch_add(evicted, std::memory_order_relaxed);
    refused_oversize_.fetch_add(oversize, std::memory_order_relaxed);
    return MDB_SUCCESS;
  };
  int rc = write_batch();
  if (rc == MDB_MAP_FULL) {
    // The file filled before the budget did (page overhead of small records, pages held by
    // long readers): make room by an eighth of the budget and try the batch once more.
    evict_at_least(options_.max_bytes / 8 + incoming);
    rc = write_batch();
  }
  if (rc != MDB_SUCCESS) e.fail("mdb_put(records)", rc);
}

void LmdbTier::erase(std::string_view key_bytes) {
  if (key_bytes.empty() || key_bytes.size() > env_->max_key) return;
  Env::Txn txn(*env_, 0);
  const std::uint64_t freed = env_->remove(txn.txn, key_bytes);
  if (freed == 0) return;
  const std::uint64_t bytes = env_->meta_u64(txn.txn, kBytesKey);
  env_->set_meta_u64(txn.txn, kBytesKey, bytes - std::min(bytes, freed));
  txn.commit();
  erased_.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t LmdbTier::usage_bytes() const {
  Env::Txn txn(*env_, MDB_RDONLY);
  return env_->meta_u64(txn.txn, kBytesKey);
}

std::uint64_t LmdbTier::evict_at_least(std::uint64_t bytes) {
  if (bytes == 0) return 0;
  Env::Txn txn(*env_, 0);
  std::uint64_t total = env_->meta_u64(txn.txn, kBytesKey);
  const std::uint64_t before = total;
  const std::uint64_t evicted = env_->evict_oldest(txn.txn, total, before > bytes ? before - bytes : 0);
  env_->set_meta_u64(txn.txn, kBytesKey, total);
  txn.commit();
  evictions_.fetch_add(evicted, std::memory_order_relaxed);
  return before - total;
}

LmdbTier::Stats LmdbTier::tier_stats() const {
  Stats s;
  {
    Env::Txn txn(*env_, MDB_RDONLY);
    MDB_stat st{};
    env_->check(mdb_stat(txn.txn, env_->records, &st), "mdb_stat");
    s.entries = st.ms_entries;
    s.bytes = env_->meta_u64(txn.txn, kBytesKey);
  }
  s.max_bytes = options_.max_bytes;
  s.hits = hits_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.writes = writes_.load(std::memory_order_relaxed);
  s.evictions = evictions_.load(std::memory_order_relaxed);
  s.refused_oversize = refused_oversize_.load(std::memory_order_relaxed);
  s.refused_disk = refused_disk_.load(std::memory_order_relaxed);
  s.erased = erased_.load(std::memory_order_relaxed);
  return s;
}

PoolStats LmdbTier::stats() const {
  const Stats s = tier_stats();
  PoolStats p;
  p.name = options_.name;
  p.entry_count = s.entries;
  p.total_bytes = s.bytes;
  p.max_bytes = s.max_bytes;
  p.pressure = s.max_bytes == 0 ? 0.0 : static_cast<double>(s.bytes) / static_cast<double>(s.max_bytes);
  p.hits = s.hits;
  p.misses = s.misses;
  p.evictions = s.evictions;
  p.rejected_oversize = s.refused_oversize;
  return p;
}

}  // namespace pagekeeper
