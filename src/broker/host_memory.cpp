#include "pagekeeper/host_memory.hpp"

#include <system_error>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string_view>

#include <nlohmann/json.hpp>

namespace pagekeeper {
namespace {

// Contents of a small text file, or the reason it could not be read.
struct FileText {
  std::optional<std::string> text;
  bool missing = false;  // ENOENT: the file does not exist
  std::string error;
};

FileText read_small_file(const std::filesystem::path& path) {
  FileText out;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int err = errno;
    out.missing = (err == ENOENT || err == ENOTDIR);
    out.error = "cannot read " + path.string() + ": " + std::generic_category().message(err);
    return out;
  }
  std::string text;
  char buffer[4096];
  // Kernel pseudo-files are a few KiB; refuse anything absurd rather than read forever.
  constexpr std::size_t kMaxBytes = 1 << 20;
  while (true) {
    const std::size_t n = std::fread(buffer, 1, sizeof buffer, f);
    text.append(buffer, n);
    if (n < sizeof buffer || text.size() > kMaxBytes) break;
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    out.error = "cannot read " + path.string() + ": read error";
  } else if (text.size() > kMaxBytes) {
    out.error = "cannot read " + path.string() + ": larger than 1 MiB";
  } else {
    out.text = std::move(text);
  }
  return out;
}

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// A whole token of decimal digits; nullopt for anything else (sign, junk, overflow, empty).
std::optional<std::uint64_t> parse_u64(std::string_view s) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return value;
}

HostMemoryReading unknown(std::string reason) {
  HostMemoryReading r;
  r.source = HostMemoryReading::Source::unknown;
  r.reason = std::move(reason);
  return r;
}

HostMemoryReading known(HostMemoryReading::Source source, std::uint64_t limit,
                        std::uint64_t used, std::string note) {
  HostMemoryReading r;
  r.source = source;
  r.limit_bytes = limit;
  r.used_bytes = used;
  r.pressure = static_cast<double>(used) / static_cast<double>(limit);
  r.reason = std::move(note);
  return r;
}

// Value of the first line "<key><sep> <number>[ kB]" in `text`, or nullopt when absent;
// `malformed` is set when the key is present but its value is not a number.
std::optional<std::uint64_t> find_field(std::string_view text, std::string_view key, char sep,
                                        bool& malformed) {
  malformed = false;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    if (line.size() <= key.size() || line.substr(0, key.size()) != key ||
        line[key.size()] != sep) {
      continue;
    }
    std::string_view value = trim(line.substr(key.size() + 1));
    std::uint64_t multiplier = 1;
    if (value.ends_with("kB")) {
      value = trim(value.substr(0, value.size() - 2));
      multiplier = 1024;
    }
    const auto number = parse_u64(value);
    std::uint64_t bytes = 0;
    if (!number || __builtin_mul_overflow(*number, multiplier, &bytes)) {
      malformed = true;
      return std::nullopt;
    }
    return bytes;
  }
  return std::nullopt;
}

HostMemoryReading read_meminfo(const std::filesystem::path& path, std::string note) {
  const FileText file = read_small_file(path);
  if (!file.text) return unknown(file.error);
  bool malformed = false;
  const auto total = find_field(*file.text, "MemTotal", ':', malformed);
  if (malformed) return unknown(path.string() + ": malformed MemTotal");
  if (!total) return unknown(path.string() + ": no MemTotal line");
  const auto available = find_field(*file.text, "MemAvailable", ':', malformed);
  if (malformed) return unknown(path.string() + ": malformed MemAvailable");
  if (!available) return unknown(path.string() + ": no MemAvailable line");
  if (*total == 0) return unknown(path.string() + ": MemTotal is 0");
  if (*available > *total) {
    return unknown(path.string() + ": MemAvailable (" + std::to_string(*available) +
                   ") exceeds MemTotal (" + std::to_string(*total) + ")");
  }
  return known(HostMemoryReading::Source::meminfo, *total, *total - *available,
               std::move(note));
}

}  // namespace

const char* source_label(HostMemoryReading::Source source) noexcept {
  switch (source) {
    case HostMemoryReading::Source::cgroup_v2: return "cgroupV2";
    case HostMemoryReading::Source::meminfo: return "meminfo";
    case HostMemoryReading::Source::simulated: return "simulated";
    case HostMemoryReading::Source::unknown: return "unknown";
  }
  return "unknown";
}

void to_json(nlohmann::json& j, const HostMemoryReading& r) {
  j = nlohmann::json{{"source", source_label(r.source)},
                     {"limitBytes", r.limit_bytes},
                     {"usedBytes", r.used_bytes},
                     {"pressure", r.pressure},
                     {"reason", r.reason}};
}

HostMemoryPaths HostMemoryPaths::for_this_process() {
  HostMemoryPaths paths;
  const FileText self = read_small_file("/proc/self/cgroup");
  if (!self.text) return paths;
  std::string_view text = *self.text;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    if (!line.starts_with("0::")) continue;
    std::string_view relative = line.substr(3);
    while (relative.starts_with('/')) relative.remove_prefix(1);
    std::error_code ec;
    const bool pure_v2 = std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers", ec);
    const std::filesystem::path base = pure_v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
    paths.cgroup_dir = base / std::filesystem::path(relative);
    break;
  }
  return paths;
}

SimulatedHostMemory::SimulatedHostMemory(std::uint64_t limit_bytes, std::uint64_t used_bytes)
    : limit_bytes_(limit_bytes), used_bytes_(used_bytes) {
  if (limit_bytes == 0) throw std::invalid_argument("SimulatedHostMemory: limit_bytes is 0");
}

void SimulatedHostMemory::set(std::uint64_t limit_bytes, std::uint64_t used_bytes) {
  if (limit_bytes == 0) throw std::invalid_argument("SimulatedHostMemory: limit_bytes is 0");
  std::lock_guard lock(mutex_);
  limit_bytes_ = limit_bytes;
  used_bytes_ = used_bytes;
}

void SimulatedHostMemory::set_used(std::uint64_t used_bytes) {
  std::lock_guard lock(mutex_);
  used_bytes_ = used_bytes;
}

HostMemoryReading SimulatedHostMemory::read() const {
  std::lock_guard lock(mutex_);
  return known(HostMemoryReading::Source::simulated, limit_bytes_, used_bytes_, "");
}

HostMemory::HostMemory(HostMemoryPaths paths) : paths_(std::move(paths)) {}

HostMemoryReading HostMemory::read() const {
  if (paths_.cgroup_dir.empty()) return read_meminfo(paths_.meminfo, "");

  const auto max_path = paths_.cgroup_dir / "memory.max";
  const FileText max_file = read_small_file(max_path);
  if (!max_file.text) {
    // No cgroup v2 memory controller here: not an error, the host's figure applies.
    return read_meminfo(paths_.meminfo, "no cgroup v2 limit (" + max_file.error + ")");
  }
  const std::string_view max_text = trim(*max_file.text);
  if (max_text == "max") {
    return read_meminfo(paths_.meminfo, "cgroup memory.max is 'max' (unlimited)");
  }
  const auto limit = parse_u64(max_text);
  if (!limit) {
    return unknown(max_path.string() + ": malformed limit '" + std::string(max_text.substr(0, 64)) +
                   "'");
  }
  if (*limit == 0) return unknown(max_path.string() + ": limit is 0 bytes");

  const auto current_path = paths_.cgroup_dir / "memory.current";
  const FileText current_file = read_small_file(current_path);
  if (!current_file.text) return unknown(current_file.error);
  const std::string_view current_text = trim(*current_file.text);
  const auto current = parse_u64(current_text);
  if (!current) {
    return unknown(current_path.string() + ": malformed usage '" +
                   std::string(current_text.substr(0, 64)) + "'");
  }

  // memory.stat is optional: without it (or with an unusable inactive_file) the used figure
  // is memory.current, which over-states pressure by the reclaimable page cache.
  std::uint64_t used = *current;
  std::string note;
  const FileText stat_file = read_small_file(paths_.cgroup_dir / "memory.stat");
  if (stat_file.text) {
    bool malformed = false;
    const auto inactive = find_field(*stat_file.text, "inactive_file", ' ', malformed);
    if (inactive) {
      used -= std::min(*inactive, used);
    } else {
      note = malformed ? "memory.stat: malformed inactive_file; using memory.current"
                       : "memory.stat has no inactive_file; using memory.current";
    }
  }
  return known(HostMemoryReading::Source::cgroup_v2, *limit, used, std::move(note));
}

}  // namespace pagekeeper
