// VectorSlab: per-dimension chunk storage of the embedding cache (see vector_slab.hpp), and
// the return of an EmbeddingVector's chunk to its slab or the heap.

#include "pagekeeper/vector_slab.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace pagekeeper {

struct VectorSlab::Core {
  struct Block {
    std::byte* begin;
    std::size_t bytes;
  };

  Core(std::size_t chunk, std::size_t first_block, std::size_t max_block, bool ahead)
      : chunk_bytes(chunk), next_block_bytes(first_block), max_block_bytes(max_block), map_ahead(ahead) {}

  // The lock-free side, on its own cache line: chunks returned by any thread (linked through
  // Header::link), and the references keeping the core alive (the VectorSlab object plus one
  // per chunk handed out), changed by the same returns.
  alignas(64) std::atomic<Header*> returned{nullptr};
  std::atomic<std::size_t> refs{1};

  // Everything below is guarded by `mutex` (chunk_bytes and max_block_bytes are constant).
  alignas(64) mutable std::mutex mutex;
  const std::size_t chunk_bytes;
  std::size_t next_block_bytes;
  const std::size_t max_block_bytes;
  Header* free_list = nullptr;      // chunks ready to hand out, linked through Header::link
  std::byte* carve_block = nullptr;  // the block chunks are carved from (null: none)
  std::byte* carve_next = nullptr;   // the rest of it, not handed out yet
  std::byte* carve_end = nullptr;
  std::vector<Block> blocks;        // sorted by address (trim finds a chunk's block)

  // Mapping ahead (guarded by `mutex` too). The worker runs only while the VectorSlab object
  // lives: its destructor stops and joins it before dropping its reference.
  const bool map_ahead;
  Block spare{nullptr, 0};         // mapped ahead, not in `blocks` yet (null: none)
  bool ahead_requested = false;    // the worker has a request it has not finished
  // Bumped by trim(): a block requested before the slab was trimmed is not wanted (trim
  // returns memory; a spare installed after it would undo that).
  std::uint64_t trim_epoch = 0;
  std::uint64_t request_epoch = 0;  // trim_epoch when the pending request was made
  bool stopping = false;
  std::uint64_t blocks_mapped_ahead = 0;
  std::condition_variable wake;    // the worker waits here for a request or stopping
  std::thread worker;              // not joinable until the first request

  static std::byte* map(std::size_t bytes) noexcept {
    void* mapped = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return mapped == MAP_FAILED ? nullptr : static_cast<std::byte*>(mapped);
  }

  // The worker: maps and populates the next block outside the mutex, hands it over under it.
  void map_ahead_loop() {
    std::unique_lock lock(mutex);
    for (;;) {
      wake.wait(lock, [this] { return stopping || ahead_requested; });
      if (stopping) return;
      const std::size_t bytes = next_block_bytes;
      lock.unlock();
      std::byte* mapped = map(bytes);  // failure: the allocation maps when the time comes
      lock.lock();
      ahead_requested = false;
      if (mapped == nullptr) continue;
      if (stopping || spare.begin != nullptr || trim_epoch != request_epoch) {
        ::munmap(mapped, bytes);
        continue;
      }
      spare = Block{mapped, bytes};
    }
  }

  // Asks the worker for the next block once the one being carved is half used. Requires
  // `mutex`. Never throws: without a thread, blocks are mapped when needed.
  void maybe_request_ahead() noexcept {
    if (!map_ahead || ahead_requested || spare.begin != nullptr || stopping) return;
    const auto left = static_cast<std::size_t>(carve_end - carve_next);
    const auto carvable = static_cast<std::size_t>(carve_end - carve_block);
    if (left * 2 > carvable) return;
    if (!worker.joinable()) {
      try {
        worker = std::thread([this] { map_ahead_loop(); });
      } catch (const std::system_error&) {
        return;
      }
    }
    ahead_requested = true;
    request_epoch = trim_epoch;
    wake.notify_one();
  }

  // Unmaps the spare block, if any; returns its bytes. Requires `mutex`, or the last
  // reference (unref).
  std::uint64_t drop_spare() noexcept {
    if (spare.begin == nullptr) return 0;
    ::munmap(spare.begin, spare.bytes);
    const std::uint64_t bytes = spare.bytes;
    spare = Block{nullptr, 0};
    return bytes;
  }

  // Stops and joins the worker. Called by ~VectorSlab, without the mutex.
  void stop_worker() noexcept {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    if (worker.joinable()) worker.join();
  }

  // Pushes a chunk whose last reference is gone; any thread, no lock.
  void push_returned(Header* header) noexcept {
    Header* head = returned.load(std::memory_order_relaxed);
    do {
      header->link = head;
    } while (!returned.compare_exchange_weak(head, header, std::memory_order_release,
                                             std::memory_order_relaxed));
  }

  // Drops one reference; the last one unmaps every block and deletes the core.
  void unref() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    for (const Block& block : blocks) ::munmap(block.begin, block.bytes);
    drop_spare();
    delete this;
  }

  // Maps the next block and makes it the one chunks are carved from. Requires `mutex`.
  // Takes the spare block when the map-ahead thread has one ready.
  void map_block() {
    std::size_t bytes = next_block_bytes;
    std::byte* begin = nullptr;
    if (spare.begin != nullptr) {
      begin = spare.begin;
      bytes = spare.bytes;
      spare = Block{nullptr, 0};
      ++blocks_mapped_ahead;
    } else {
      begin = map(bytes);
      if (begin == nullptr) throw std::bad_alloc();
    }
    const Block block{begin, bytes};
    blocks.insert(std::upper_bound(blocks.begin(), blocks.end(), block,
                                   [](const Block& a, const Block& b) { return a.begin < b.begin; }),
                  block);
    carve_block = carve_next = begin;
    carve_end = begin + bytes / chunk_bytes * chunk_bytes;
    next_block_bytes = std::min(bytes * 2, std::max(max_block_bytes, bytes));
  }

  // Moves every returned chunk onto free_list. Requires `mutex`.
  void take_returned() noexcept {
    Header* taken = returned.exchange(nullptr, std::memory_order_acquire);
    while (taken != nullptr) {
      Header* next = static_cast<Header*>(taken->link);
      taken->link = free_list;
      free_list = taken;
      taken = next;
    }
  }

  // Index of the block holding `p`. Requires `mutex`; p lies in some block.
  std::size_t block_of(const void* p) const noexcept {
    const auto* byte = static_cast<const std::byte*>(p);
    const auto it = std::upper_bound(blocks.begin(), blocks.end(), byte,
                                     [](const std::byte* q, const Block& b) { return q < b.begin; });
    return static_cast<std::size_t>(it - blocks.begin()) - 1;
  }
};

namespace {

std::size_t round_up(std::size_t n, std::size_t unit) { return (n + unit - 1) / unit * unit; }

}  // namespace

VectorSlab::VectorSlab(std::size_t dimensions, Options options) : dimensions_(dimensions) {
  if (dimensions == 0 || dimensions > UINT32_MAX) {
    throw std::invalid_argument("VectorSlab: dimensions must be in [1, 2^32-1]");
  }
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t chunk = EmbeddingVector::chunk_bytes(dimensions);
  const std::size_t first = round_up(std::max(options.first_block_bytes, chunk), page);
  const std::size_t max = std::max(first, round_up(options.max_block_bytes, page));
  core_ = new Core(chunk, first, max, options.map_ahead);
}

VectorSlab::~VectorSlab() {
  core_->stop_worker();
  core_->unref();
}

VectorSlab::Header* VectorSlab::allocate() {
  Core& core = *core_;
  Header* header = nullptr;
  {
    std::lock_guard lock(core.mutex);
    if (core.free_list == nullptr && core.returned.load(std::memory_order_relaxed) != nullptr) {
      core.take_returned();
    }
    if (core.free_list != nullptr) {
      header = core.free_list;
      core.free_list = static_cast<Header*>(header->link);
    } else {
      if (static_cast<std::size_t>(core.carve_end - core.carve_next) < core.chunk_bytes) {
        core.map_block();
      }
      header = new (core.carve_next) Header{};
      core.carve_next += core.chunk_bytes;
      core.maybe_request_ahead();
    }
  }
  header->refs.store(1, std::memory_order_relaxed);
  header->link = core_;
  core.refs.fetch_add(1, std::memory_order_relaxed);
  return header;
}

EmbeddingVector VectorSlab::copy(std::span<const float> values) {
  if (values.size() != dimensions_) {
    throw std::invalid_argument("VectorSlab::copy: " + std::to_string(values.size()) +
                                " floats for a slab of " + std::to_string(dimensions_));
  }
  return make([&](std::span<float> out) { std::copy(values.begin(), values.end(), out.begin()); });
}

std::uint64_t VectorSlab::trim() {
  Core& core = *core_;
  std::lock_guard lock(core.mutex);
  core.take_returned();
  ++core.trim_epoch;  // a block requested before now is unmapped when it arrives
  const std::uint64_t spare_unmapped = core.drop_spare();
  // Free chunks per block; a block none of whose carved chunks is in use goes back.
  std::vector<std::size_t> free_chunks(core.blocks.size(), 0);
  for (const Header* h = core.free_list; h != nullptr; h = static_cast<const Header*>(h->link)) {
    ++free_chunks[core.block_of(h)];
  }
  std::vector<bool> release(core.blocks.size(), false);
  bool any = false;
  for (std::size_t i = 0; i < core.blocks.size(); ++i) {
    const Core::Block& block = core.blocks[i];
    const bool carving = block.begin == core.carve_block;
    const std::size_t carved = carving ? static_cast<std::size_t>(core.carve_next - block.begin) / core.chunk_bytes
                                       : block.bytes / core.chunk_bytes;
    release[i] = free_chunks[i] == carved;
    any = any || release[i];
  }
  if (!any) return spare_unmapped;
  // Unlink the chunks of the released blocks (before unmapping them: the links live there).
  Header* kept_head = nullptr;
  Header* kept_tail = nullptr;
  for (Header* h = core.free_list; h != nullptr; h = static_cast<Header*>(h->link)) {
    if (release[core.block_of(h)]) continue;
    if (kept_tail != nullptr) {
      kept_tail->link = h;  // already walked past: the loop reads h->link next, not this
    } else {
      kept_head = h;
    }
    kept_tail = h;
  }
  if (kept_tail != nullptr) kept_tail->link = nullptr;
  core.free_list = kept_head;
  std::uint64_t unmapped = spare_unmapped;
  std::vector<Core::Block> kept;
  kept.reserve(core.blocks.size());
  for (std::size_t i = 0; i < core.blocks.size(); ++i) {
    const Core::Block& block = core.blocks[i];
    if (!release[i]) {
      kept.push_back(block);
      continue;
    }
    if (block.begin == core.carve_block) core.carve_block = core.carve_next = core.carve_end = nullptr;
    ::munmap(block.begin, block.bytes);
    unmapped += block.bytes;
  }
  core.blocks = std::move(kept);
  return unmapped;
}

VectorSlab::Stats VectorSlab::stats() const {
  std::lock_guard lock(core_->mutex);
  Stats stats;
  stats.dimensions = dimensions_;
  stats.blocks = core_->blocks.size();
  for (const Core::Block& block : core_->blocks) stats.mapped_bytes += block.bytes;
  if (core_->spare.begin != nullptr) {
    ++stats.blocks;
    stats.mapped_bytes += core_->spare.bytes;
    stats.spare_bytes = core_->spare.bytes;
  }
  stats.blocks_mapped_ahead = core_->blocks_mapped_ahead;
  stats.live_vectors = core_->refs.load(std::memory_order_relaxed) - 1;  // less this object's
  stats.chunk_bytes = core_->chunk_bytes;
  return stats;
}

void EmbeddingVector::free_chunk(Header* header) noexcept {
  auto* core = static_cast<VectorSlab::Core*>(header->link);
  if (core == nullptr) {
    ::operator delete(header);
    return;
  }
  core->push_returned(header);
  core->unref();
}

}  // namespace pagekeeper
