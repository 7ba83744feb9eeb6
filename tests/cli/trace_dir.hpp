// Where the test traces are.
//
// The OLTP trace (2.3 MB) is part of the repository, in tests/data/ (its README cites the
// source). The larger ARC traces (P2, P3, P6, P12; hundreds of MB together) are not: they
// come from the directory $PAGEKEEPER_TRACE_DIR names. A test that needs one of them starts
// with PAGEKEEPER_LARGE_TRACE_OR_SKIP, which skips the test with a message saying what is
// missing, or fails it when PAGEKEEPER_REQUIRE_TRACES=1 (CI has the traces, so there a
// missing trace is a broken setup, not a reason to skip).

#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace pagekeeper::testing_support {

// A trace shipped with the repository (tests/data/<file>).
inline std::string bundled_trace_path(const std::string& file) {
  return std::string(PAGEKEEPER_SOURCE_DIR) + "/tests/data/" + file;
}

// $PAGEKEEPER_TRACE_DIR/<file> when the variable is set and the file exists, else "".
inline std::string large_trace_path(const std::string& file) {
  const char* dir = std::getenv("PAGEKEEPER_TRACE_DIR");
  if (dir == nullptr || *dir == '\0') return {};
  std::string path = std::string(dir) + "/" + file;
  return std::filesystem::exists(path) ? path : std::string();
}

inline bool large_traces_required() {
  const char* required = std::getenv("PAGEKEEPER_REQUIRE_TRACES");
  return required != nullptr && std::string_view(required) == "1";
}

}  // namespace pagekeeper::testing_support

// Declares `std::string var` = the path of the large trace `file`, or ends the test: skipped
// when the trace is absent, failed when PAGEKEEPER_REQUIRE_TRACES=1.
#define PAGEKEEPER_LARGE_TRACE_OR_SKIP(var, file)                                               \
  const std::string var = ::pagekeeper::testing_support::large_trace_path(file);               \
  if (var.empty()) {                                                                            \
    if (::pagekeeper::testing_support::large_traces_required()) {                               \
      FAIL() << "trace " << (file) << " not found in $PAGEKEEPER_TRACE_DIR, and "               \
             << "PAGEKEEPER_REQUIRE_TRACES=1 requires it";                                      \
    }                                                                                           \
    GTEST_SKIP() << "trace " << (file) << " not found: set PAGEKEEPER_TRACE_DIR to the "        \
                 << "directory of the ARC traces to run this test";                             \
  }
