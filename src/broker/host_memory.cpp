#include "pagekeeper/host_memory.hpp"

#include <system_error>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <vector>

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

// MemTotal in bytes; 0 when it cannot be read.
std::uint64_t read_mem_total(const std::filesystem::path& path) {
  const FileText file = read_small_file(path);
  if (!file.text) return 0;
  bool malformed = false;
  return find_field(*file.text, "MemTotal", ':', malformed).value_or(0);
}

// The files of one cgroup version's memory controller.
struct CgroupFiles {
  HostMemoryReading::Source source;
  const char* limit;
  const char* usage;
  std::initializer_list<const char*> inactive_keys;  // memory.stat keys, first found wins
  // A limit at or above this means "no limit" (v1 writes about 2^63).
  std::uint64_t unlimited_from;
};

const CgroupFiles kV2{HostMemoryReading::Source::cgroup_v2, "memory.max", "memory.current",
                      {"inactive_file"}, std::numeric_limits<std::uint64_t>::max()};
const CgroupFiles kV1{HostMemoryReading::Source::cgroup_v1, "memory.limit_in_bytes",
                      "memory.usage_in_bytes", {"total_inactive_file", "inactive_file"},
                      std::uint64_t{1} << 62};

// One cgroup directory's limit and usage.
struct CgroupLimit {
  HostMemoryReading reading;  // known, or unknown with the reason
  std::uint64_t limit = 0;    // the limit when it could be parsed
};

// nullopt when `dir` sets no limit (no limit file, "max", the v1 sentinel); `note` then says
// why when it is worth saying.
std::optional<CgroupLimit> read_cgroup_dir(const std::filesystem::path& dir,
                                           const CgroupFiles& files, std::string& note) {
  const auto limit_path = dir / files.limit;
  const FileText limit_file = read_small_file(limit_path);
  if (!limit_file.text) {
    note = "no cgroup limit (" + limit_file.error + ")";
    return std::nullopt;
  }
  const std::string_view limit_text = trim(*limit_file.text);
  if (limit_text == "max") {
    note = "cgroup " + limit_path.string() + " is 'max' (unlimited)";
    return std::nullopt;
  }
  const auto limit = parse_u64(limit_text);
  if (!limit) {
    return CgroupLimit{unknown(limit_path.string() + ": malformed limit '" +
                               std::string(limit_text.substr(0, 64)) + "'"),
                       0};
  }
  if (*limit >= files.unlimited_from) return std::nullopt;
  if (*limit == 0) return CgroupLimit{unknown(limit_path.string() + ": limit is 0 bytes"), 0};

  const auto usage_path = dir / files.usage;
  const FileText usage_file = read_small_file(usage_path);
  if (!usage_file.text) return CgroupLimit{unknown(usage_file.error), *limit};
  const std::string_view usage_text = trim(*usage_file.text);
  const auto usage = parse_u64(usage_text);
  if (!usage) {
    return CgroupLimit{unknown(usage_path.string() + ": malformed usage '" +
                               std::string(usage_text.substr(0, 64)) + "'"),
                       *limit};
  }

  // memory.stat is optional: without it (or with an unusable inactive_file) the used figure
  // is the usage file's, which over-states pressure by the reclaimable page cache.
  std::uint64_t used = *usage;
  std::string stat_note;
  const FileText stat_file = read_small_file(dir / "memory.stat");
  if (stat_file.text) {
    std::optional<std::uint64_t> inactive;
    bool malformed = false;
    for (const char* key : files.inactive_keys) {
      inactive = find_field(*stat_file.text, key, ' ', malformed);
      if (inactive || malformed) break;
    }
    if (inactive) {
      used -= std::min(*inactive, used);
    } else {
      stat_note = std::string("memory.stat: ") +
                  (malformed ? "malformed inactive_file" : "no inactive_file") + "; using " +
                  files.usage;
    }
  }
  return CgroupLimit{known(files.source, *limit, used, std::move(stat_note)), *limit};
}

// `relative` and each of its ancestors under `base`, deepest first ("/a/b": base/a/b, base/a,
// base).
std::vector<std::filesystem::path> path_and_ancestors(const std::filesystem::path& base,
                                                      std::string_view relative) {
  std::vector<std::filesystem::path> dirs;
  while (relative.starts_with('/')) relative.remove_prefix(1);
  while (relative.ends_with('/')) relative.remove_suffix(1);
  while (true) {
    dirs.push_back(relative.empty() ? base : base / std::filesystem::path(relative));
    if (relative.empty()) break;
    const auto slash = relative.find_last_of('/');
    relative = slash == std::string_view::npos ? std::string_view{} : relative.substr(0, slash);
  }
  return dirs;
}

// Every cgroup limit that applies under `paths`, and notes on directories without one.
struct CgroupSurvey {
  std::vector<CgroupLimit> limits;
  std::string note;  // why no limit was found, when none was
};

CgroupSurvey survey_cgroups(const HostMemoryPaths& paths) {
  CgroupSurvey survey;
  const auto visit = [&](const std::filesystem::path& dir, const CgroupFiles& files) {
    std::string note;
    if (auto limit = read_cgroup_dir(dir, files, note)) {
      survey.limits.push_back(std::move(*limit));
    } else if (survey.note.empty()) {
      survey.note = std::move(note);
    }
  };
  if (!paths.cgroup_dir.empty()) {
    visit(paths.cgroup_dir, kV2);
    return survey;
  }
  if (paths.self_cgroup.empty()) return survey;
  const FileText self = read_small_file(paths.self_cgroup);
  if (!self.text) return survey;
  // A hybrid host mounts v2 at <root>/unified; a pure v2 host at <root>.
  std::error_code ec;
  const std::filesystem::path v2_base = std::filesystem::is_directory(
                                            paths.cgroup_root / "unified", ec)
                                            ? paths.cgroup_root / "unified"
                                            : paths.cgroup_root;
  std::string_view text = *self.text;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    // "<id>:<controllers>:<path>"
    const auto first = line.find(':');
    const auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, first);
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    const std::string_view relative = line.substr(second + 1);
    if (id == "0" && controllers.empty()) {
      for (const auto& dir : path_and_ancestors(v2_base, relative)) visit(dir, kV2);
    } else if (("," + std::string(controllers) + ",").find(",memory,") != std::string::npos) {
      for (const auto& dir : path_and_ancestors(paths.cgroup_root / "memory", relative)) {
        visit(dir, kV1);
      }
    }
  }
  return survey;
}

}  // namespace

const char* source_label(HostMemoryReading::Source source) noexcept {
  switch (source) {
    case HostMemoryReading::Source::cgroup_v2: return "cgroupV2";
    case HostMemoryReading::Source::cgroup_v1: return "cgroupV1";
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
  paths.self_cgroup = "/proc/self/cgroup";
  return paths;
}

SimulatedHostMemory::SimulatedHostMemory(std::uint64_t limit_bytes, std::uint64_t used_bytes)
    : limit_bytes_(limit_bytes), used_bytes_(used_bytes) {
  if (limit_bytes == 0) throw std::invalid_argument("SimulatedHostMemory: limit_bytes is 0");
}

void SimulatedHostMemory::set(std::uint64_t limit_bytes, std::uint64_t used_bytes) {
  if (limit_bytes == 0) throw std::invalid_argument("SimulatedHostMemory: limit_bytes is 0");
  MutexLock lock(mutex_);
  limit_bytes_ = limit_bytes;
  used_bytes_ = used_bytes;
}

void SimulatedHostMemory::set_used(std::uint64_t used_bytes) {
  MutexLock lock(mutex_);
  used_bytes_ = used_bytes;
}

HostMemoryReading SimulatedHostMemory::read() const {
  MutexLock lock(mutex_);
  return known(HostMemoryReading::Source::simulated, limit_bytes_, used_bytes_, "");
}

HostMemory::HostMemory(HostMemoryPaths paths) : paths_(std::move(paths)) {}

HostMemoryReading HostMemory::read() const {
  CgroupSurvey survey = survey_cgroups(paths_);
  const HostMemoryReading* binding = nullptr;
  for (const auto& limit : survey.limits) {
    // A limit that is set but unreadable might be the one that binds: say so, guess nothing.
    if (!limit.reading.known()) return limit.reading;
    if (binding == nullptr || limit.reading.pressure > binding->pressure) {
      binding = &limit.reading;
    }
  }
  HostMemoryReading host = read_meminfo(paths_.meminfo, std::move(survey.note));
  if (binding == nullptr) return host;
  if (host.known() && host.pressure > binding->pressure) {
    host.reason.clear();
    return host;
  }
  return *binding;
}

std::uint64_t HostMemory::limit_bytes() const {
  std::uint64_t smallest = read_mem_total(paths_.meminfo);
  if (smallest == 0) return 0;
  for (const auto& limit : survey_cgroups(paths_).limits) {
    if (limit.limit > 0) smallest = std::min(smallest, limit.limit);
  }
  return smallest;
}

}  // namespace pagekeeper
