// libFuzzer target: TraceReader on arbitrary bytes (plain or zstd, any format).
//
// The first byte picks the format (auto, arc, kv); the rest is the trace. Every input must
// either parse or throw TraceError: any other exception, crash, sanitizer report or leak is
// a bug. Requests pulled per input are capped so that huge-but-valid ARC ranges (up to
// kMaxArcBlocksPerLine per line) do not turn into fuzzer timeouts.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cli/trace.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  constexpr pagekeeper::TraceFormat kFormats[] = {pagekeeper::TraceFormat::kAuto,
                                                  pagekeeper::TraceFormat::kArc,
                                                  pagekeeper::TraceFormat::kKeySize};
  const pagekeeper::TraceFormat format = kFormats[data[0] % 3];
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  constexpr std::uint64_t kMaxRequests = 1 << 16;
  try {
    pagekeeper::TraceReader reader = pagekeeper::TraceReader::from_memory(bytes, format);
    pagekeeper::TraceRequest request;
    std::uint64_t previous_line = 0;
    for (std::uint64_t i = 0; i < kMaxRequests && reader.next(request); ++i) {
      // Line numbers never go backwards.
      if (reader.line_number() < previous_line) __builtin_trap();
      previous_line = reader.line_number();
      if (reader.format() == pagekeeper::TraceFormat::kArc && request.size != 1) __builtin_trap();
    }
  } catch (const pagekeeper::TraceError&) {
    // Expected for malformed input.
  }
  return 0;
}
