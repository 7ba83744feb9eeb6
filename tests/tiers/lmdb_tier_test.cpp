// LmdbTier against real LMDB directories: records survive reopening and kill -9 at any
// moment, the byte budget evicts oldest first, the disk guard refuses writes, corrupt
// records are caught by the record checksum and removed.

#include "pagekeeper/lmdb_tier.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pagekeeper/tier_record.hpp"
#include "tiers/tier_test_support.hpp"

namespace pagekeeper {
namespace {

using testing::TempDir;
using testing::key_of;
using testing::keys_for;
using testing::records_for;
using testing::vector_for;

TEST(LmdbTier, StoresReadsAndSurvivesReopening) {
  TempDir dir;
  {
    LmdbTier tier({.directory = dir.path(), .max_bytes = 1 << 20});
    tier.put_many(records_for(0, 10, 32));
    const auto got = tier.get_many(keys_for(0, 12));
    for (std::size_t i = 0; i < 10; ++i) {
      ASSERT_TRUE(got[i].has_value());
      EXPECT_EQ(decode_vector_record(key_of(i), *got[i], 32)->to_vector(), vector_for(i, 32));
    }
    EXPECT_FALSE(got[10].has_value());
    EXPECT_FALSE(got[11].has_value());
    EXPECT_EQ(tier.tier_stats().hits, 10u);
    EXPECT_EQ(tier.tier_stats().misses, 2u);
  }
  LmdbTier reopened({.directory = dir.path(), .max_bytes = 1 << 20});
  const LmdbTier::Stats s = reopened.tier_stats();
  EXPECT_EQ(s.entries, 10u);
  const std::uint64_t one = key_of(0).size() + 8 + kTierRecordHeaderBytes + 32 * 4;
  EXPECT_EQ(s.bytes, 10 * one);
  const auto got = reopened.get_many(keys_for(0, 10));
  for (std::size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(decode_vector_record(key_of(i), got[i].value(), 32)->to_vector(), vector_for(i, 32));
  }
}

TEST(LmdbTier, BudgetEvictsOldestFirstAndRewritesMakeYoung) {
  TempDir dir;
  const std::uint64_t one = key_of(0).size() + 8 + kTierRecordHeaderBytes + 32 * 4;
  LmdbTier tier({.directory = dir.path(), .max_bytes = 10 * one});
  tier.put_many(records_for(0, 10, 32));
  tier.put_many(records_for(0, 1, 32));   // key 0 rewritten: now the youngest
  tier.put_many(records_for(10, 3, 32));  // evicts 1, 2, 3
  const auto got = tier.get_many(keys_for(0, 13));
  EXPECT_TRUE(got[0].has_value());
  EXPECT_FALSE(got[1].has_value());
  EXPECT_FALSE(got[2].has_value());
  EXPECT_FALSE(got[3].has_value());
  for (std::size_t i = 4; i < 13; ++i) EXPECT_TRUE(got[i].has_value()) << i;
  const LmdbTier::Stats s = tier.tier_stats();
  EXPECT_EQ(s.bytes, 10 * one);
  EXPECT_EQ(s.entries, 10u);
  EXPECT_EQ(s.evictions, 3u);
}

TEST(LmdbTier, RefusesARecordLargerThanTheBudget) {
  TempDir dir;
  LmdbTier tier({.directory = dir.path(), .max_bytes = 1000});
  tier.put_many(records_for(0, 1, 1024));
  EXPECT_EQ(tier.tier_stats().refused_oversize, 1u);
  EXPECT_EQ(tier.tier_stats().entries, 0u);
}

TEST(LmdbTier, FullDiskBudgetStillServesAndKeepsTheBudget) {
  TempDir dir;
  const std::uint64_t one = key_of(0).size() + 8 + kTierRecordHeaderBytes + 384 * 4;
  LmdbTier tier({.directory = dir.path(), .max_bytes = 50 * one});
  for (std::size_t round = 0; round < 20; ++round) tier.put_many(records_for(round * 25, 25, 384));
  const LmdbTier::Stats s = tier.tier_stats();
  EXPECT_LE(s.bytes, 50 * one);
  EXPECT_EQ(s.entries, 50u);
  EXPECT_EQ(s.evictions, 450u);
  const auto got = tier.get_many(keys_for(450, 50));
  for (std::size_t i = 0; i < 50; ++i) ASSERT_TRUE(got[i].has_value()) << i;
}

TEST(LmdbTier, DiskGuardRefusesWritesPastTheFilesystemThreshold) {
  TempDir dir;
  // 1 basis point: any real filesystem is already past 0.01% used.
  LmdbTier tier({.directory = dir.path(), .max_bytes = 1 << 20, .disk_pressure_basis_points = 1});
  tier.put_many(records_for(0, 5, 32));
  EXPECT_EQ(tier.tier_stats().refused_disk, 5u);
  EXPECT_EQ(tier.tier_stats().entries, 0u);
  EXPECT_FALSE(tier.get_many(keys_for(0, 1))[0].has_value());
}

TEST(LmdbTier, CorruptRecordIsRefusedByTheDecoderAndErased) {
  TempDir dir;
  LmdbTier tier({.directory = dir.path(), .max_bytes = 1 << 20});
  auto records = records_for(0, 2, 32);
  records[1].second[40] ^= 0x10;  // damaged on its way down
  tier.put_many(records);
  const auto got = tier.get_many(keys_for(0, 2));
  EXPECT_TRUE(decode_vector_record(key_of(0), *got[0], 32).has_value());
  EXPECT_FALSE(decode_vector_record(key_of(1), *got[1], 32).has_value());
  tier.erase(key_of(1));
  EXPECT_FALSE(tier.get_many(keys_for(1, 1))[0].has_value());
  EXPECT_EQ(tier.tier_stats().erased, 1u);
  EXPECT_EQ(tier.tier_stats().entries, 1u);
}

TEST(LmdbTier, CorruptBytesInTheDataFileAreCaughtByTheChecksum) {
  TempDir dir;
  const std::vector<float> marker(64, 1234.5f);
  {
    LmdbTier tier({.directory = dir.path(), .max_bytes = 1 << 20});
    tier.put_many(std::vector<std::pair<std::string, std::string>>{
        {"k", encode_vector_record("k", marker)}});
  }
  // Flip one byte inside the stored floats, in the file itself.
  std::fstream file(dir.path() / "data.mdb", std::ios::in | std::ios::out | std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const std::string needle(reinterpret_cast<const char*>(marker.data()), 16);
  const std::size_t at = bytes.find(needle);
  ASSERT_NE(at, std::string::npos);
  file.seekp(static_cast<std::streamoff>(at + 5));
  file.put(static_cast<char>(bytes[at + 5] ^ 0x01));
  file.close();
  LmdbTier tier({.directory = dir.path(), .max_bytes = 1 << 20});
  const auto got = tier.get_many(std::vector<std::string>{"k"});
  ASSERT_TRUE(got[0].has_value());
  EXPECT_FALSE(decode_vector_record("k", *got[0], 64).has_value());
}

TEST(LmdbTier, BrokerEvictionFreesOldestRecords) {
  TempDir dir;
  const std::uint64_t one = key_of(0).size() + 8 + kTierRecordHeaderBytes + 32 * 4;
  LmdbTier tier({.directory = dir.path(), .max_bytes = 100 * one, .name = "tier-disk"});
  tier.put_many(records_for(0, 10, 32));
  ResourcePool& pool = tier;
  EXPECT_EQ(pool.tier_name(), "tier-disk");
  EXPECT_EQ(pool.capacity_bytes(), 0u);  // disk bytes are not memory: the broker only lists it
  EXPECT_EQ(pool.stats().max_bytes, 100 * one);
  EXPECT_EQ(pool.usage_bytes(), 10 * one);
  EXPECT_EQ(pool.evict_at_least(0), 0u);
  EXPECT_EQ(pool.evict_at_least(one + 1), 2 * one);
  const auto got = tier.get_many(keys_for(0, 3));
  EXPECT_FALSE(got[0].has_value());
  EXPECT_FALSE(got[1].has_value());
  EXPECT_TRUE(got[2].has_value());
  EXPECT_EQ(pool.stats().entry_count, 8u);
  EXPECT_EQ(pool.stats().evictions, 2u);
}

TEST(LmdbTier, UnopenableDirectoryIsATierUnavailable) {
  TempDir dir;
  std::ofstream(dir.path() / "file") << "x";
  EXPECT_THROW(LmdbTier({.directory = dir.path() / "file" / "sub", .max_bytes = 1 << 20}),
               TierUnavailable);
  EXPECT_THROW(LmdbTier({.directory = dir.path(), .max_bytes = 0}), std::invalid_argument);
}

// A writer child killed with SIGKILL in the middle of its writes, three times over one
// directory: afterwards every record acknowledged before the kill reads back as the vector
// written for its key, and every other key is absent or its own vector, never another.
TEST(LmdbTier, SurvivesKillNineDuringWrites) {
  TempDir dir;
  constexpr std::size_t kDims = 96;
  constexpr std::size_t kBatch = 16;
  // [first, acknowledged) of each round: committed before the kill.
  std::vector<std::pair<std::size_t, std::size_t>> acknowledged_ranges;
  std::size_t first = 0;
  for (int round = 0; round < 3; ++round) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(pipe_fds[0]);
      try {
        LmdbTier tier({.directory = dir.path(), .max_bytes = std::uint64_t{64} << 20});
        for (std::size_t next = first;; next += kBatch) {
          tier.put_many(records_for(next, kBatch, kDims));
          const std::uint64_t done = next + kBatch;
          if (::write(pipe_fds[1], &done, sizeof(done)) != sizeof(done)) ::_exit(3);
        }
      } catch (...) {
        ::_exit(2);
      }
    }
    ::close(pipe_fds[1]);
    // Let the child commit a different number of batches each round, then kill it while it
    // keeps writing.
    const std::uint64_t wanted = first + kBatch * (20 + 37 * static_cast<std::uint64_t>(round));
    std::uint64_t acknowledged = first;
    while (acknowledged < wanted) {
      ASSERT_EQ(::read(pipe_fds[0], &acknowledged, sizeof(acknowledged)),
                static_cast<ssize_t>(sizeof(acknowledged)));
    }
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));
    // Acknowledgements still in the pipe were committed too.
    std::uint64_t more = 0;
    while (::read(pipe_fds[0], &more, sizeof(more)) == static_cast<ssize_t>(sizeof(more))) acknowledged = more;
    ::close(pipe_fds[0]);

    LmdbTier tier({.directory = dir.path(), .max_bytes = std::uint64_t{64} << 20});
    const std::size_t probe = acknowledged + 4 * kBatch;  // beyond: maybe being written
    const auto got = tier.get_many(keys_for(0, probe));
    acknowledged_ranges.emplace_back(first, acknowledged);
    for (std::size_t i = 0; i < probe; ++i) {
      if (!got[i].has_value()) {
        for (const auto& [begin, end] : acknowledged_ranges) {
          ASSERT_FALSE(i >= begin && i < end) << "acknowledged record " << i << " lost";
        }
        continue;
      }
      auto decoded = decode_vector_record(key_of(i), *got[i], kDims);
      ASSERT_TRUE(decoded.has_value()) << "record " << i << " damaged";
      ASSERT_EQ(decoded->to_vector(), vector_for(i, kDims)) << "record " << i;
    }
    first = acknowledged + 8 * kBatch;  // the next child starts past anything half-written
  }
  EXPECT_GT(first, 100u * kBatch);
}

}  // namespace
}  // namespace pagekeeper
