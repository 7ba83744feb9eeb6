// VectorSlab: chunks are recycled (a refill maps no new block), vectors outlive the slab and
// stay valid while held, trim() returns only wholly free blocks.

#include "pagekeeper/detail/vector_slab.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/patience.hpp"

namespace pagekeeper {
namespace {

// A vector whose every float encodes (tag, index), so a chunk handed out twice or written by
// someone else shows up as a wrong value.
EmbeddingVector tagged(VectorSlab& slab, int tag) {
  return slab.make([&](std::span<float> out) {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(tag * 1000 + static_cast<int>(i));
  });
}

bool holds_tag(const EmbeddingVector& v, int tag) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != static_cast<float>(tag * 1000 + static_cast<int>(i))) return false;
  }
  return true;
}

constexpr std::size_t kDims = 384;
constexpr std::size_t kChunk = 16 + kDims * sizeof(float);

TEST(VectorSlab, ChunksAreExactlyHeaderAndFloats) {
  EXPECT_EQ(EmbeddingVector::chunk_bytes(384), kChunk);
  EXPECT_EQ(EmbeddingVector::chunk_bytes(3), 16u + 16u);  // 12 bytes of floats, rounded to 8
  EXPECT_EQ(EmbeddingVector::chunk_bytes(0), 0u);
  VectorSlab slab(kDims);
  EXPECT_EQ(slab.stats().chunk_bytes, kChunk);
  EXPECT_EQ(slab.stats().blocks, 0u);  // nothing mapped before the first vector
  const EmbeddingVector v = tagged(slab, 1);
  EXPECT_EQ(v.size(), kDims);
  EXPECT_EQ(v.memory_bytes(), sizeof(EmbeddingVector) + kChunk);
  EXPECT_TRUE(holds_tag(v, 1));
  EXPECT_EQ(slab.stats().live_vectors, 1u);
  EXPECT_EQ(slab.stats().blocks, 1u);
}

TEST(VectorSlab, RejectsBadSizes) {
  EXPECT_THROW(VectorSlab(0), std::invalid_argument);
  VectorSlab slab(4);
  EXPECT_THROW(slab.copy(std::vector<float>(5, 1.0f)), std::invalid_argument);
  EXPECT_EQ(slab.copy(std::vector<float>{1, 2, 3, 4}).to_vector(), (std::vector<float>{1, 2, 3, 4}));
}

TEST(VectorSlab, FreedChunkIsTheNextOneHandedOut) {
  VectorSlab slab(kDims);
  const float* first = nullptr;
  {
    const EmbeddingVector v = tagged(slab, 1);
    first = v.data();
    EXPECT_EQ(slab.stats().live_vectors, 1u);
  }
  EXPECT_EQ(slab.stats().live_vectors, 0u);
  const EmbeddingVector again = tagged(slab, 2);
  EXPECT_EQ(again.data(), first);
  EXPECT_TRUE(holds_tag(again, 2));
}

TEST(VectorSlab, CopiesShareTheChunkUntilTheLastGoes) {
  VectorSlab slab(kDims);
  EmbeddingVector a = tagged(slab, 3);
  EmbeddingVector b = a;
  EXPECT_TRUE(a.same_storage(b));
  a = EmbeddingVector();
  EXPECT_EQ(slab.stats().live_vectors, 1u);
  const EmbeddingVector other = tagged(slab, 4);  // must not reuse b's chunk
  EXPECT_FALSE(other.same_storage(b));
  EXPECT_TRUE(holds_tag(b, 3));
  b = EmbeddingVector();
  EXPECT_EQ(slab.stats().live_vectors, 1u);
}

TEST(VectorSlab, RefillingAfterReleaseMapsNoNewBlock) {
  VectorSlab slab(kDims, VectorSlab::Options{.first_block_bytes = 64 << 10, .max_block_bytes = 256 << 10});
  constexpr int kVectors = 1000;  // about 1.5 MB: several blocks
  std::vector<EmbeddingVector> held;
  for (int i = 0; i < kVectors; ++i) held.push_back(tagged(slab, i));
  const VectorSlab::Stats full = slab.stats();
  EXPECT_GT(full.blocks, 2u);
  EXPECT_EQ(full.live_vectors, static_cast<std::size_t>(kVectors));
  std::set<const float*> chunks;
  for (const EmbeddingVector& v : held) chunks.insert(v.data());
  for (int round = 0; round < 3; ++round) {
    held.clear();
    for (int i = 0; i < kVectors; ++i) held.push_back(tagged(slab, round * kVectors + i));
    EXPECT_EQ(slab.stats().blocks, full.blocks) << round;
    EXPECT_EQ(slab.stats().mapped_bytes, full.mapped_bytes) << round;
    for (const EmbeddingVector& v : held) EXPECT_TRUE(chunks.contains(v.data()));
  }
  for (int i = 0; i < kVectors; ++i) EXPECT_TRUE(holds_tag(held[i], 2 * kVectors + i)) << i;
}

TEST(VectorSlab, BlocksGrowByDoublingUpToTheMaximum) {
  VectorSlab slab(kDims, VectorSlab::Options{.first_block_bytes = 64 << 10, .max_block_bytes = 256 << 10});
  std::vector<EmbeddingVector> held;
  while (slab.stats().blocks < 5) held.push_back(tagged(slab, 0));
  // 64 + 128 + 256 + 256 + 256 KiB.
  EXPECT_EQ(slab.stats().mapped_bytes, std::uint64_t{960} << 10);
}

TEST(VectorSlab, TrimReturnsWhollyFreeBlocksAndTheFreePagesOfTheOthers) {
  VectorSlab slab(kDims, VectorSlab::Options{.first_block_bytes = 64 << 10, .max_block_bytes = 64 << 10});
  std::vector<EmbeddingVector> held;
  for (int i = 0; i < 200; ++i) held.push_back(tagged(slab, i));  // 300 KB: 5 blocks of 64 KiB
  const std::size_t blocks = slab.stats().blocks;
  ASSERT_EQ(blocks, 5u);
  EmbeddingVector kept = held[100];  // lives in the third block
  held.clear();
  // Four blocks whole; in the third (42 chunks), the kept chunk 16 lies in page 6: the free
  // chunks before it cover pages 0-5 wholly, those after it pages 7-14 (page 15 holds the
  // block's uncarved tail).
  EXPECT_EQ(slab.trim(), std::uint64_t{4} * (64 << 10) + 14 * 4096);
  EXPECT_EQ(slab.stats().blocks, 1u);
  EXPECT_EQ(slab.stats().released_bytes, 14u * 4096);
  EXPECT_TRUE(holds_tag(kept, 100));
  EXPECT_EQ(slab.trim(), 0u);  // nothing more to give back
  EXPECT_EQ(slab.stats().released_bytes, 14u * 4096);
  // The kept block's free chunks are still handed out, and new blocks come when they run out.
  for (int i = 0; i < 200; ++i) held.push_back(tagged(slab, 1000 + i));
  EXPECT_TRUE(holds_tag(kept, 100));
  EXPECT_EQ(slab.stats().released_bytes, 0u);  // every released page is in use again
  for (int i = 0; i < 200; ++i) EXPECT_TRUE(holds_tag(held[i], 1000 + i)) << i;
  held.clear();
  kept = EmbeddingVector();
  EXPECT_GT(slab.trim(), 0u);
  EXPECT_EQ(slab.stats().blocks, 0u);
  EXPECT_EQ(slab.stats().mapped_bytes, 0u);
  EXPECT_TRUE(holds_tag(tagged(slab, 7), 7));  // maps again
}

// Pages trim() gives back are really gone from memory (mincore), their neighbours' vectors
// are intact, and the free chunks over them are handed out again, whole, in place of new
// blocks.
TEST(VectorSlab, ReleasedPagesLeaveMemoryAndComeBackWhenUsed) {
  constexpr std::size_t kBlockBytes = std::size_t{2} << 20;
  VectorSlab slab(kDims, VectorSlab::Options{.first_block_bytes = kBlockBytes, .max_block_bytes = kBlockBytes});
  std::vector<EmbeddingVector> held;
  const std::size_t per_block = kBlockBytes / kChunk;  // 1351
  for (std::size_t i = 0; i < per_block; ++i) held.push_back(tagged(slab, static_cast<int>(i)));
  ASSERT_EQ(slab.stats().blocks, 1u);
  auto* base = reinterpret_cast<std::byte*>(const_cast<float*>(held[0].data())) - 16;
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  auto resident_pages = [&] {
    std::vector<unsigned char> in_core(kBlockBytes / page);
    EXPECT_EQ(::mincore(base, kBlockBytes, in_core.data()), 0);
    std::size_t n = 0;
    for (const unsigned char c : in_core) n += c & 1U;
    return n;
  };
  EXPECT_EQ(resident_pages(), kBlockBytes / page);
  // Free every vector but one in ten: runs of nine free chunks (13,968 bytes), each covering
  // two or three whole pages.
  std::vector<EmbeddingVector> kept;
  for (std::size_t i = 0; i < held.size(); i += 10) kept.push_back(held[i]);
  held.clear();
  const std::uint64_t given_back = slab.trim();
  EXPECT_GE(given_back, std::uint64_t{kBlockBytes} / 2);
  EXPECT_EQ(slab.stats().released_bytes, given_back);
  EXPECT_EQ(slab.stats().blocks, 1u);
  EXPECT_EQ(resident_pages(), kBlockBytes / page - given_back / page);
  for (std::size_t k = 0; k < kept.size(); ++k) EXPECT_TRUE(holds_tag(kept[k], static_cast<int>(k * 10))) << k;
  // Refilling uses the freed chunks (no new block), bringing their pages back.
  for (std::size_t i = 0; i < per_block - kept.size(); ++i) held.push_back(tagged(slab, 5000 + static_cast<int>(i)));
  EXPECT_EQ(slab.stats().blocks, 1u);
  EXPECT_EQ(slab.stats().released_bytes, 0u);
  for (std::size_t i = 0; i < held.size(); ++i) EXPECT_TRUE(holds_tag(held[i], 5000 + static_cast<int>(i))) << i;
  for (std::size_t k = 0; k < kept.size(); ++k) EXPECT_TRUE(holds_tag(kept[k], static_cast<int>(k * 10))) << k;
  held.push_back(tagged(slab, 1));
  EXPECT_EQ(slab.stats().blocks, 2u);  // the block is full again: the next vector maps one
}

TEST(VectorSlab, VectorsOutliveTheSlab) {
  std::vector<EmbeddingVector> held;
  {
    VectorSlab slab(kDims);
    for (int i = 0; i < 100; ++i) held.push_back(tagged(slab, i));
  }
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(holds_tag(held[i], i)) << i;
  held.clear();  // the last one unmaps the blocks (ASan and LeakSanitizer check it)
}

TEST(VectorSlab, AThrowingFillGivesItsChunkBack) {
  VectorSlab slab(kDims);
  const float* chunk = nullptr;
  EXPECT_THROW(slab.make([&](std::span<float> out) {
    chunk = out.data();
    throw std::runtime_error("fill failed");
  }),
               std::runtime_error);
  EXPECT_EQ(slab.stats().live_vectors, 0u);
  EXPECT_EQ(tagged(slab, 5).data(), chunk);
}

// Polls until the slab's map-ahead thread has a spare block ready (or kPatience passes).
bool wait_for_spare(const VectorSlab& slab) {
  return test_support::eventually([&] { return slab.stats().spare_bytes != 0; });
}

constexpr std::size_t kBlock = std::size_t{64} << 10;
constexpr std::size_t kChunksPerBlock = kBlock / kChunk;  // 42

TEST(VectorSlab, MapAheadHandsTheNextBlockOverReady) {
  VectorSlab slab(kDims, VectorSlab::Options{.first_block_bytes = kBlock, .max_block_bytes = kBlock, .map_ahead = true});
  std::vector<EmbeddingVector> held;
  for (std::size_t i = 0; i < kChunksPerBlock / 2; ++i) held.push_back(tagged(slab, static_cast<int>(i)));
  EXPECT_EQ(slab.stats().blocks_mapped_ahead, 0u);
  // The block being carved is half used: the slab's thread maps the next one.
  ASSERT_TRUE(wait_for_spare(slab));
  VectorSlab::Stats st = slab.stats();
  EXPECT_EQ(st.spare_bytes, kBlock);
  EXPECT_EQ(st.blocks, 2u);  // the spare is counted: it is resident memory
  EXPECT_EQ(st.mapped_bytes, 2 * kBlock);
  // Filling past the first block takes the spare instead of mapping.
  for (std::size_t i = held.size(); i < kChunksPerBlock + 1; ++i) held.push_back(tagged(slab, static_cast<int>(i)));
  st = slab.stats();
  EXPECT_EQ(st.blocks_mapped_ahead, 1u);
  EXPECT_EQ(st.blocks, 2u);
  EXPECT_EQ(st.spare_bytes, 0u);
  // And again for the third block.
  for (std::size_t i = held.size(); i < 3 * kChunksPerBlock / 2 + 1; ++i) held.push_back(tagged(slab, static_cast<int>(i)));
  ASSERT_TRUE(wait_for_spare(slab));
  for (std::size_t i = held.size(); i < 2 * kChunksPerBlock + 1; ++i) held.push_back(tagged(slab, static_cast<int>(i)));
  EXPECT_EQ(slab.stats().blocks_mapped_ahead, 2u);
  for (std::size_t i = 0; i < held.size(); ++i) EXPECT_TRUE(holds_tag(held[i], static_cast<int>(i))) << i;
}

TEST(VectorSlab, WithoutMapAheadNothingIsMappedBeforeItIsNeeded) {
  VectorSlab slab(kDims, VectorSlab::Options{.first_block_bytes = kBlock, .max_block_bytes = kBlock});
  std::vector<EmbeddingVector> held;
  for (std::size_t i = 0; i < kChunksPerBlock; ++i) held.push_back(tagged(slab, static_cast<int>(i)));
  // Without map-ahead there is no thread and no request: nothing can arrive later.
  EXPECT_FALSE(slab.stats().map_ahead_pending);
  EXPECT_EQ(slab.stats().blocks, 1u);
  EXPECT_EQ(slab.stats().spare_bytes, 0u);
  held.push_back(tagged(slab, 0));
  EXPECT_EQ(slab.stats().blocks, 2u);
  EXPECT_EQ(slab.stats().blocks_mapped_ahead, 0u);
}

TEST(VectorSlab, TrimReturnsTheSpareBlockToo) {
  VectorSlab slab(kDims, VectorSlab::Options{.first_block_bytes = kBlock, .max_block_bytes = kBlock, .map_ahead = true});
  {
    std::vector<EmbeddingVector> held;
    for (std::size_t i = 0; i < kChunksPerBlock / 2 + 1; ++i) held.push_back(tagged(slab, 1));
    ASSERT_TRUE(wait_for_spare(slab));
  }
  EXPECT_EQ(slab.trim(), 2 * kBlock);
  EXPECT_EQ(slab.stats().mapped_bytes, 0u);
  EXPECT_EQ(slab.stats().blocks, 0u);
  // Still usable, and maps ahead again.
  std::vector<EmbeddingVector> held;
  for (std::size_t i = 0; i < kChunksPerBlock; ++i) held.push_back(tagged(slab, static_cast<int>(i)));
  ASSERT_TRUE(wait_for_spare(slab));
  for (std::size_t i = 0; i < held.size(); ++i) EXPECT_TRUE(holds_tag(held[i], static_cast<int>(i)));
}

// trim() returns memory for good: a block the slab's thread was mapping ahead when trim ran
// is unmapped when it arrives, not kept as a spare (it used to be, so that a cleared cache
// could show a block more than it holds).
TEST(VectorSlab, TrimCancelsABlockBeingMappedAhead) {
  constexpr std::size_t kBigBlock = std::size_t{1} << 20;  // the next, mapped ahead, is 2 MiB
  constexpr std::size_t kBigChunks = kBigBlock / kChunk;
  for (int round = 0; round < 10; ++round) {
    VectorSlab slab(kDims, VectorSlab::Options{.first_block_bytes = kBigBlock, .max_block_bytes = 4 * kBigBlock,
                                               .map_ahead = true});
    std::vector<EmbeddingVector> held;
    for (std::size_t i = 0; i < kBigChunks / 2 + 1; ++i) held.push_back(tagged(slab, round));
    held.resize(1);  // one live vector keeps the first block
    slab.trim();     // the request for the next block is out (the thread may not have started)
    // Once the thread has finished the request, its block has arrived and been dealt with.
    test_support::eventually([&] { return !slab.stats().map_ahead_pending; });
    ASSERT_FALSE(slab.stats().map_ahead_pending) << round;
    const VectorSlab::Stats st = slab.stats();
    EXPECT_EQ(st.spare_bytes, 0u) << round;
    EXPECT_EQ(st.blocks, 1u) << round;
    EXPECT_TRUE(holds_tag(held[0], round));
  }
}

// The slab object may go while its thread is mapping, and its vectors may outlive both.
TEST(VectorSlab, DestroyedWhileMappingAhead) {
  std::vector<EmbeddingVector> kept;
  for (int round = 0; round < 50; ++round) {
    VectorSlab slab(kDims, VectorSlab::Options{.first_block_bytes = kBlock, .max_block_bytes = std::size_t{2} << 20,
                                               .map_ahead = true});
    for (std::size_t i = 0; i < kChunksPerBlock / 2 + 1; ++i) kept.push_back(tagged(slab, round));
  }
  for (std::size_t i = 0; i < kept.size(); ++i) {
    EXPECT_TRUE(holds_tag(kept[i], static_cast<int>(i / (kChunksPerBlock / 2 + 1)))) << i;
  }
}

TEST(EmbeddingVector, HeapVectorsBehaveAsSlabOnes) {
  const EmbeddingVector heap(std::vector<float>{1.5f, -2.0f, 3.0f});
  EXPECT_EQ(heap.memory_bytes(), sizeof(EmbeddingVector) + 32u);
  const EmbeddingVector copy = heap;
  EXPECT_TRUE(copy.same_storage(heap));
  VectorSlab slab(3);
  const EmbeddingVector in_slab = slab.copy(heap.values());
  EXPECT_EQ(in_slab, heap);
  EXPECT_FALSE(in_slab.same_storage(heap));
  EXPECT_TRUE(EmbeddingVector().empty());
  EXPECT_EQ(EmbeddingVector().memory_bytes(), sizeof(EmbeddingVector));
}

}  // namespace
}  // namespace pagekeeper
