// cli/trace.hpp (internal to the pagekeeper tool)
//
// TraceReader streams cache-access traces, one request at a time, for replaying through a
// pool (the `pagekeeper sim` command). Two text formats are understood, each either plain or
// zstd-compressed (detected by the zstd frame magic, not by the file name):
//
//   arc  The ARC paper's storage traces: one line per request,
//        `start_block n_blocks ignored request_number` (four unsigned integers separated by
//        blanks). Each of the n_blocks blocks from start_block on is one access to key
//        `block` with size 1; a line with n_blocks 0 yields no access.
//   kv   One request per line: `key,size`. The key is any non-empty text without a comma
//        (surrounding blanks are trimmed); size is an unsigned integer. Keys are interned:
//        the n-th distinct key text gets key id n-1, so equal texts always map to equal ids
//        and different texts never collide.
//
// In both formats blank lines and lines whose first non-blank character is '#' are skipped,
// and a trailing '\r' (CRLF files) is ignored. Format detection (TraceFormat::kAuto) looks
// at the first line that is neither blank nor a comment: a comma means kv, otherwise arc; a
// trace without any such line is an empty arc trace.
//
// The reader holds one decompression window and one line at a time, so memory stays bounded
// on traces of any length (the interning table of the kv format grows with distinct keys).
// Lines are limited to kMaxTraceLineBytes and an arc line to kMaxArcBlocksPerLine blocks, so
// hostile input can neither exhaust memory nor stall a replay in one line.
//
// Errors: any malformed or unreadable input throws TraceError naming the source, the 1-based
// line number (0 when the problem is not tied to a line, e.g. an unopenable file or a corrupt
// zstd frame) and the reason. The reader never crashes on bad input.
//
// Thread safety: a TraceReader is not safe for concurrent use; use one per thread.

#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "pagekeeper/errors.hpp"

namespace pagekeeper {

inline constexpr std::size_t kMaxTraceLineBytes = 4096;
inline constexpr std::uint64_t kMaxArcBlocksPerLine = std::uint64_t{1} << 20;

enum class TraceFormat { kAuto, kArc, kKeySize };

// "auto", "arc", "kv". Throws std::invalid_argument for any other text.
TraceFormat parse_trace_format(std::string_view text);
std::string_view trace_format_name(TraceFormat format);

// Bad trace input. what() reads "<source>:<line>: <reason>" (or "<source>: <reason>" when
// line is 0).
class TraceError : public Error {
 public:
  TraceError(std::string source, std::uint64_t line, std::string reason);
  std::string source;
  std::uint64_t line;  // 1-based; 0 when not tied to a line
  std::string reason;
};

// One access: a key and its size (1 for arc traces).
struct TraceRequest {
  std::uint64_t key = 0;
  std::uint64_t size = 0;
};

class TraceReader {
 public:
  // Opens a file. Throws TraceError if it cannot be opened, or if (for kAuto) reading up to
  // the first data line fails.
  static TraceReader open_file(const std::string& path, TraceFormat format = TraceFormat::kAuto);

  // Reads from memory (tests and fuzzing). `bytes` must outlive the reader. `source` names
  // the input in error messages.
  static TraceReader from_memory(std::string_view bytes, TraceFormat format = TraceFormat::kAuto,
                                 std::string source = "<memory>");

  TraceReader(TraceReader&&) noexcept;
  TraceReader& operator=(TraceReader&&) noexcept;
  ~TraceReader();

  // Stores the next request in `out` and returns true, or returns false at the end of the
  // trace (and on every later call). Throws TraceError on malformed input; after a throw
  // the reader must not be used again.
  bool next(TraceRequest& out);

  // The resolved format (never kAuto).
  TraceFormat format() const;
  // 1-based number of the line the last request came from; 0 before the first request.
  std::uint64_t line_number() const;
  // Distinct keys seen so far in a kv trace (0 for arc, whose keys are not tracked).
  std::uint64_t distinct_keys() const;

 private:
  class Impl;
  explicit TraceReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pagekeeper
