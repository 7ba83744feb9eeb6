// Where the ARC traces live for tests: $PAGEKEEPER_TRACE_DIR, or ../shared/traces/arc
// relative to the source tree (the layout of the development machine and of CI).
// Tests that need a trace FAIL when it is missing: CI has the traces, so a missing trace is
// a broken setup, not a reason to skip.

#pragma once

#include <cstdlib>
#include <string>

namespace pagekeeper::testing_support {

inline std::string trace_dir() {
  if (const char* dir = std::getenv("PAGEKEEPER_TRACE_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  return std::string(PAGEKEEPER_SOURCE_DIR) + "/../shared/traces/arc";
}

inline std::string trace_path(const std::string& file) { return trace_dir() + "/" + file; }

}  // namespace pagekeeper::testing_support
