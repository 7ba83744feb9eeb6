// VectorSlab: per-dimension chunk storage of the embedding cache (see vector_slab.hpp), and
// the return of an EmbeddingVector's chunk to its slab or the heap.

#include "pagekeeper/detail/vector_slab.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "pagekeeper/detail/mutex.hpp"

namespace pagekeeper {

struct VectorSlab::Core {
  struct Block {
    std::byte* begin;
    std::size_t bytes;
    // Pages trim() returned to the kernel (MADV_DONTNEED) and no chunk has been handed out
    // over since: one bit per page, and their count. Empty until trim() first looks at the
    // block's free chunks.
    std::vector<std::uint64_t> released_pages{};
    std::size_t released_count = 0;

    bool page_released(std::size_t page) const noexcept {
      return released_count != 0 && ((released_pages[page / 64] >> (page % 64)) & 1U) != 0;
    }
    // Sets or clears page's bit; true when that changed it (released_count follows).
    bool set_page_released(std::size_t page, bool released) noexcept {
      std::uint64_t& word = released_pages[page / 64];
      const std::uint64_t bit = std::uint64_t{1} << (page % 64);
      if (((word & bit) != 0) == released) return false;
      word ^= bit;
      released ? ++released_count : --released_count;
      return true;
    }
  };

  Core(std::size_t chunk, std::size_t first_block, std::size_t max_block, bool ahead, std::size_t page)
      : chunk_bytes(chunk),
        page_bytes(page),
        next_block_bytes(first_block),
        max_block_bytes(max_block),
        map_ahead(ahead) {}

  // The lock-free side, on its own cache line: chunks returned by any thread (linked through
  // Header::link), and the references keeping the core alive (the VectorSlab object plus one
  // per chunk handed out), changed by the same returns.
  alignas(64) std::atomic<Header*> returned{nullptr};
  std::atomic<std::size_t> refs{1};

  // Everything below is guarded by `mutex` (chunk_bytes, page_bytes and max_block_bytes are
  // constant).
  alignas(64) mutable Mutex mutex;
  const std::size_t chunk_bytes;
  const std::size_t page_bytes;
  std::size_t next_block_bytes PAGEKEEPER_GUARDED_BY(mutex);
  const std::size_t max_block_bytes;
  // Free chunks come in two lists. free_list: resident, linked through Header::link (no
  // chunk on it overlaps a released page). released: chunks overlapping a page trim()
  // returned to the kernel; their headers may read as zero, so the list is kept outside
  // them. Handing one out brings its pages back (zero-filled), so it goes after free_list
  // and carving, before mapping a new block.
  Header* free_list PAGEKEEPER_GUARDED_BY(mutex) = nullptr;
  std::vector<Header*> released PAGEKEEPER_GUARDED_BY(mutex);
  // The block chunks are carved from (null: none), and the rest of it, not handed out yet.
  std::byte* carve_block PAGEKEEPER_GUARDED_BY(mutex) = nullptr;
  std::byte* carve_next PAGEKEEPER_GUARDED_BY(mutex) = nullptr;
  std::byte* carve_end PAGEKEEPER_GUARDED_BY(mutex) = nullptr;
  // Sorted by address (trim finds a chunk's block).
  std::vector<Block> blocks PAGEKEEPER_GUARDED_BY(mutex);

  // Mapping ahead (guarded by `mutex` too). The worker runs only while the VectorSlab object
  // lives: its destructor stops and joins it before dropping its reference.
  const bool map_ahead;
  // Mapped ahead, not in `blocks` yet (null: none).
  Block spare PAGEKEEPER_GUARDED_BY(mutex){nullptr, 0};
  // The worker has a request it has not finished.
  bool ahead_requested PAGEKEEPER_GUARDED_BY(mutex) = false;
  // Bumped by trim(): a block requested before the slab was trimmed is not wanted (trim
  // returns memory; a spare installed after it would undo that).
  std::uint64_t trim_epoch PAGEKEEPER_GUARDED_BY(mutex) = 0;
  // trim_epoch when the pending request was made.
  std::uint64_t request_epoch PAGEKEEPER_GUARDED_BY(mutex) = 0;
  bool stopping PAGEKEEPER_GUARDED_BY(mutex) = false;
  std::uint64_t blocks_mapped_ahead PAGEKEEPER_GUARDED_BY(mutex) = 0;
  CondVar wake;                    // the worker waits here for a request or stopping
  // Started under `mutex`; joined by stop_worker without it, once the worker has stopped.
  std::thread worker;              // not joinable until the first request

  static std::byte* map(std::size_t bytes) noexcept {
    void* mapped = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return mapped == MAP_FAILED ? nullptr : static_cast<std::byte*>(mapped);
  }

  // The worker: maps and populates the next block outside the mutex, hands it over under it.
  void map_ahead_loop() {
    MutexLock lock(mutex);
    for (;;) {
      wake.wait(lock, [this] {
        mutex.assert_held();
        return stopping || ahead_requested;
      });
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
  void maybe_request_ahead() noexcept PAGEKEEPER_REQUIRES(mutex) {
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
  std::uint64_t drop_spare() noexcept PAGEKEEPER_REQUIRES(mutex) {
    if (spare.begin == nullptr) return 0;
    ::munmap(spare.begin, spare.bytes);
    const std::uint64_t bytes = spare.bytes;
    spare = Block{nullptr, 0};
    return bytes;
  }

  // Stops and joins the worker. Called by ~VectorSlab, without the mutex.
  void stop_worker() noexcept {
    {
      MutexLock lock(mutex);
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

  // Drops one reference; the last one unmaps every block and deletes the core. Reads the
  // guarded members without `mutex`: the last reference has no other thread to exclude,
  // which the analysis cannot know.
  void unref() noexcept PAGEKEEPER_NO_THREAD_SAFETY_ANALYSIS {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    for (const Block& block : blocks) ::munmap(block.begin, block.bytes);
    drop_spare();
    delete this;
  }

  // Maps the next block and makes it the one chunks are carved from. Requires `mutex`.
  // Takes the spare block when the map-ahead thread has one ready.
  void map_block() PAGEKEEPER_REQUIRES(mutex) {
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
    Block block{begin, bytes};
    const auto at = std::upper_bound(blocks.begin(), blocks.end(), begin,
                                     [](const std::byte* q, const Block& b) { return q < b.begin; });
    blocks.insert(at, std::move(block));
    carve_block = carve_next = begin;
    carve_end = begin + bytes / chunk_bytes * chunk_bytes;
    next_block_bytes = std::min(bytes * 2, std::max(max_block_bytes, bytes));
  }

  // Moves every returned chunk onto free_list. Requires `mutex`.
  void take_returned() noexcept PAGEKEEPER_REQUIRES(mutex) {
    Header* taken = returned.exchange(nullptr, std::memory_order_acquire);
    while (taken != nullptr) {
      Header* next = static_cast<Header*>(taken->link);
      taken->link = free_list;
      free_list = taken;
      taken = next;
    }
  }

  // The first and last page (indices within its block) that the chunk at byte `offset` of
  // a block touches.
  std::pair<std::size_t, std::size_t> pages_of_chunk(std::size_t offset) const noexcept {
    return {offset / page_bytes, (offset + chunk_bytes - 1) / page_bytes};
  }

  // Takes a chunk from `released` and clears the released bits of the pages it covers: the
  // caller's writes bring them back. Requires `mutex` and a non-empty `released`.
  Header* take_released() noexcept PAGEKEEPER_REQUIRES(mutex) {
    Header* header = released.back();
    released.pop_back();
    Block& block = blocks[block_of(header)];
    if (block.released_count != 0) {
      const auto [first, last] =
          pages_of_chunk(static_cast<std::size_t>(reinterpret_cast<std::byte*>(header) - block.begin));
      for (std::size_t p = first; p <= last; ++p) block.set_page_released(p, false);
    }
    return new (header) Header{};  // its bytes may be a fresh zero page
  }

  // Index of the block holding `p`. Requires `mutex`; p lies in some block.
  std::size_t block_of(const void* p) const noexcept PAGEKEEPER_REQUIRES(mutex) {
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
  core_ = new Core(chunk, first, max, options.map_ahead, page);
}

VectorSlab::~VectorSlab() {
  core_->stop_worker();
  core_->unref();
}

VectorSlab::Header* VectorSlab::allocate() {
  Core& core = *core_;
  Header* header = nullptr;
  {
    MutexLock lock(core.mutex);
    if (core.free_list == nullptr && core.returned.load(std::memory_order_relaxed) != nullptr) {
      core.take_returned();
    }
    if (core.free_list != nullptr) {
      header = core.free_list;
      core.free_list = static_cast<Header*>(header->link);
    } else {
      const bool carve_full = static_cast<std::size_t>(core.carve_end - core.carve_next) < core.chunk_bytes;
      if (carve_full && !core.released.empty()) {
        header = core.take_released();
      } else {
        if (carve_full) core.map_block();
        header = new (core.carve_next) Header{};
        core.carve_next += core.chunk_bytes;
        core.maybe_request_ahead();
      }
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
  MutexLock lock(core.mutex);
  core.take_returned();
  ++core.trim_epoch;  // a block requested before now is unmapped when it arrives
  std::uint64_t returned_bytes = core.drop_spare();
  // Every free chunk (both lists) as a bit per chunk index of its block.
  const std::size_t block_count = core.blocks.size();
  std::vector<std::size_t> carved(block_count);
  std::vector<std::vector<std::uint64_t>> free_bits(block_count);
  std::vector<std::size_t> free_count(block_count, 0);
  for (std::size_t i = 0; i < block_count; ++i) {
    const Core::Block& block = core.blocks[i];
    carved[i] = block.begin == core.carve_block
                    ? static_cast<std::size_t>(core.carve_next - block.begin) / core.chunk_bytes
                    : block.bytes / core.chunk_bytes;
    free_bits[i].assign((carved[i] + 63) / 64, 0);
  }
  auto mark_free = [&](const Header* h) {
    core.mutex.assert_held();  // called below, under the lock
    const std::size_t b = core.block_of(h);
    const auto index = static_cast<std::size_t>(reinterpret_cast<const std::byte*>(h) - core.blocks[b].begin) /
                       core.chunk_bytes;
    free_bits[b][index / 64] |= std::uint64_t{1} << (index % 64);
    ++free_count[b];
  };
  for (const Header* h = core.free_list; h != nullptr; h = static_cast<const Header*>(h->link)) mark_free(h);
  for (const Header* h : core.released) mark_free(h);
  auto is_free = [&](std::size_t b, std::size_t index) {
    return ((free_bits[b][index / 64] >> (index % 64)) & 1U) != 0;
  };

  // Everything below that allocates is done first: once a block is unmapped or a list
  // rebuilt, nothing may throw (a half-done trim would lose chunks or keep unmapped blocks).
  std::vector<Core::Block> kept;
  kept.reserve(block_count);
  std::size_t total_free = 0;
  for (std::size_t b = 0; b < block_count; ++b) {
    total_free += free_count[b];
    Core::Block& block = core.blocks[b];
    if (free_count[b] != 0 && free_count[b] != carved[b] && block.released_pages.empty()) {
      block.released_pages.assign((block.bytes / core.page_bytes + 63) / 64, 0);
    }
  }
  core.released.reserve(total_free);

  // Blocks none of whose carved chunks is in use go back whole. In the others, the pages
  // that lie wholly inside a run of free chunks go back (MADV_DONTNEED: the mapping stays,
  // a later touch gets a zero page), so an eviction that freed neighbouring vectors returns
  // their memory even when their block keeps other vectors.
  core.free_list = nullptr;
  core.released.clear();
  for (std::size_t b = 0; b < block_count; ++b) {
    Core::Block& block = core.blocks[b];
    if (free_count[b] == carved[b]) {
      if (block.begin == core.carve_block) core.carve_block = core.carve_next = core.carve_end = nullptr;
      ::munmap(block.begin, block.bytes);
      returned_bytes += block.bytes - block.released_count * core.page_bytes;
      continue;
    }
    if (free_count[b] != 0) {
      for (std::size_t run_begin = 0; run_begin < carved[b];) {
        if (!is_free(b, run_begin)) {
          ++run_begin;
          continue;
        }
        std::size_t run_end = run_begin;
        while (run_end < carved[b] && is_free(b, run_end)) ++run_end;
        const std::size_t first_page = (run_begin * core.chunk_bytes + core.page_bytes - 1) / core.page_bytes;
        const std::size_t end_page = run_end * core.chunk_bytes / core.page_bytes;
        if (first_page < end_page &&
            ::madvise(block.begin + first_page * core.page_bytes, (end_page - first_page) * core.page_bytes,
                      MADV_DONTNEED) == 0) {
          for (std::size_t p = first_page; p < end_page; ++p) {
            if (block.set_page_released(p, true)) returned_bytes += core.page_bytes;
          }
        }
        run_begin = run_end;
      }
      // Rebuild the lists: a free chunk over a released page goes on `released`.
      for (std::size_t index = 0; index < carved[b]; ++index) {
        if (!is_free(b, index)) continue;
        auto* h = reinterpret_cast<Header*>(block.begin + index * core.chunk_bytes);
        const auto [first, last] = core.pages_of_chunk(index * core.chunk_bytes);
        bool over_released = false;
        for (std::size_t p = first; p <= last && !over_released; ++p) over_released = block.page_released(p);
        if (over_released) {
          core.released.push_back(h);
        } else {
          h->link = core.free_list;
          core.free_list = h;
        }
      }
    }
    kept.push_back(std::move(block));
  }
  core.blocks = std::move(kept);
  return returned_bytes;
}

VectorSlab::Stats VectorSlab::stats() const {
  MutexLock lock(core_->mutex);
  Stats stats;
  stats.dimensions = dimensions_;
  stats.blocks = core_->blocks.size();
  for (const Core::Block& block : core_->blocks) {
    stats.mapped_bytes += block.bytes;
    stats.released_bytes += block.released_count * core_->page_bytes;
  }
  if (core_->spare.begin != nullptr) {
    ++stats.blocks;
    stats.mapped_bytes += core_->spare.bytes;
    stats.spare_bytes = core_->spare.bytes;
  }
  stats.blocks_mapped_ahead = core_->blocks_mapped_ahead;
  stats.map_ahead_pending = core_->ahead_requested;
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
