// The indexer behind `pagekeeper index`: walks a directory tree, splits its text files into
// chunks, and embeds every chunk through a running pagekeeperd or the process's own
// EmbeddingService, counting cache hits and misses.
//
// What is indexed: regular files up to max_file_bytes that are valid UTF-8 without NUL bytes
// (binary files are skipped), outside hidden directories, build*/ directories, third_party/
// and node_modules/. Chunks are runs of whole lines of at most chunk_bytes (a longer line is
// cut at UTF-8 character boundaries); whitespace-only chunks are dropped. The same tree
// always gives the same chunks, so a second run is all cache hits.
//
// Thread safety: single-threaded.

#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace pagekeeper::cli {

struct IndexOptions {
  std::filesystem::path root;
  std::size_t chunk_bytes = 1024;
  std::size_t max_file_bytes = 1 << 20;
  std::size_t batch = 64;  // chunks per request
  std::string model = "default";
  std::string server;  // empty: in-process
  std::string token;
};

struct Chunk {
  std::string text;
  std::size_t file = 0;  // index into ChunkSet::files
};

struct ChunkSet {
  std::vector<std::string> files;  // relative paths of the files indexed
  std::vector<Chunk> chunks;
  std::size_t skipped_files = 0;  // binary, too large or unreadable
};

ChunkSet collect_chunks(const IndexOptions& options);

// Splits `text` (valid UTF-8) into chunks as described above.
std::vector<std::string> split_chunks(std::string_view text, std::size_t chunk_bytes);

struct IndexProgress {
  std::size_t done = 0, total = 0, hits = 0, misses = 0;
  double seconds = 0;
};

struct IndexSummary {
  std::size_t files = 0, skipped_files = 0, chunks = 0, hits = 0, misses = 0;
  double seconds = 0;
  double hit_rate_percent() const { return chunks == 0 ? 0.0 : 100.0 * static_cast<double>(hits) / chunks; }
};

// Embeds every chunk in batches, calling `progress` after each batch.
IndexSummary run_index(const IndexOptions& options, const std::function<void(const IndexProgress&)>& progress);

}  // namespace pagekeeper::cli
