// Streaming reader of arc and kv traces, plain or zstd-compressed (see trace.hpp).
//
// Input flows through three stages, each with a bounded buffer: raw bytes (file or memory)
// -> decoded bytes (a copy for plain input, ZSTD_decompressStream for zstd) -> one line.

#include "cli/trace.hpp"

#include <system_error>
#include <zstd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pagekeeper {

namespace {

constexpr std::size_t kRawChunkBytes = 64 * 1024;

std::string format_trace_error(const std::string& source, std::uint64_t line,
                               const std::string& reason) {
  if (line == 0) return source + ": " + reason;
  return source + ":" + std::to_string(line) + ": " + reason;
}

// Source of undecoded bytes.
class RawInput {
 public:
  virtual ~RawInput() = default;
  // Reads up to `capacity` bytes into `buffer`; returns 0 only at end of input.
  virtual std::size_t read(char* buffer, std::size_t capacity) = 0;
};

class FileInput : public RawInput {
 public:
  FileInput(std::FILE* file, std::string source) : file_(file), source_(std::move(source)) {}
  ~FileInput() override { std::fclose(file_); }
  FileInput(const FileInput&) = delete;
  FileInput& operator=(const FileInput&) = delete;

  std::size_t read(char* buffer, std::size_t capacity) override {
    std::size_t n = std::fread(buffer, 1, capacity, file_);
    if (n == 0 && std::ferror(file_)) {
      throw TraceError(source_, 0, std::string("read failed: ") + std::generic_category().message(errno));
    }
    return n;
  }

 private:
  std::FILE* file_;
  std::string source_;
};

class MemoryInput : public RawInput {
 public:
  explicit MemoryInput(std::string_view bytes) : bytes_(bytes) {}
  std::size_t read(char* buffer, std::size_t capacity) override {
    std::size_t n = std::min(capacity, bytes_.size());
    std::memcpy(buffer, bytes_.data(), n);
    bytes_.remove_prefix(n);
    return n;
  }

 private:
  std::string_view bytes_;
};

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

// Shows at most 40 bytes of offending text, so a garbage line does not flood the message.
std::string quote(std::string_view text) {
  constexpr std::size_t kShown = 40;
  std::string shown(text.substr(0, kShown));
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return "'" + shown + (text.size() > kShown ? "...'" : "'");
}

}  // namespace

TraceFormat parse_trace_format(std::string_view text) {
  if (text == "auto") return TraceFormat::kAuto;
  if (text == "arc") return TraceFormat::kArc;
  if (text == "kv") return TraceFormat::kKeySize;
  throw std::invalid_argument("unknown trace format '" + std::string(text) +
                              "' (expected arc, kv or auto)");
}

std::string_view trace_format_name(TraceFormat format) {
  switch (format) {
    case TraceFormat::kAuto:
      return "auto";
    case TraceFormat::kArc:
      return "arc";
    case TraceFormat::kKeySize:
      return "kv";
  }
  return "unknown";
}

TraceError::TraceError(std::string source_name, std::uint64_t line_number, std::string why)
    : Error(format_trace_error(source_name, line_number, why)),
      source(std::move(source_name)),
      line(line_number),
      reason(std::move(why)) {}

class TraceReader::Impl {
 public:
  Impl(std::unique_ptr<RawInput> raw, TraceFormat format, std::string source)
      : raw_(std::move(raw)), source_(std::move(source)), format_(format) {
    raw_buffer_.resize(kRawChunkBytes);
    // Detect zstd by the frame magic (0xFD2FB528, little-endian) in the first bytes.
    while (raw_size_ < 4 && !raw_eof_) {
      std::size_t n = raw_->read(raw_buffer_.data() + raw_size_, raw_buffer_.size() - raw_size_);
      if (n == 0) raw_eof_ = true;
      raw_size_ += n;
    }
    static constexpr unsigned char kZstdMagic[4] = {0x28, 0xB5, 0x2F, 0xFD};
    if (raw_size_ >= 4 && std::memcmp(raw_buffer_.data(), kZstdMagic, 4) == 0) {
      dctx_.reset(ZSTD_createDCtx());
      if (dctx_ == nullptr) throw TraceError(source_, 0, "cannot allocate a zstd context");
      decoded_buffer_.resize(ZSTD_DStreamOutSize());
    } else {
      decoded_buffer_.resize(kRawChunkBytes);
    }
    if (format_ == TraceFormat::kAuto) detect_format();
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  bool next(TraceRequest& out) {
    if (format_ == TraceFormat::kArc) {
      while (arc_remaining_ == 0) {
        if (!next_data_line()) return false;
        parse_arc_line();
      }
      out.key = arc_next_block_++;
      out.size = 1;
      --arc_remaining_;
      return true;
    }
    if (!next_data_line()) return false;
    parse_kv_line(out);
    return true;
  }

  TraceFormat format() const { return format_; }
  std::uint64_t line_number() const { return request_line_; }
  std::uint64_t distinct_keys() const { return interned_.size(); }

 private:
  [[noreturn]] void fail(std::uint64_t line, const std::string& reason) const {
    throw TraceError(source_, line, reason);
  }

  // Refills decoded_buffer_; returns false at the end of the input.
  bool fill_decoded() {
    decoded_pos_ = 0;
    decoded_size_ = 0;
    if (dctx_ == nullptr) {
      if (raw_pos_ < raw_size_) {  // bytes read ahead during magic detection
        std::size_t n = raw_size_ - raw_pos_;
        std::memcpy(decoded_buffer_.data(), raw_buffer_.data() + raw_pos_, n);
        raw_pos_ = raw_size_;
        decoded_size_ = n;
        return true;
      }
      if (raw_eof_) return false;
      decoded_size_ = raw_->read(decoded_buffer_.data(), decoded_buffer_.size());
      if (decoded_size_ == 0) raw_eof_ = true;
      return decoded_size_ > 0;
    }
    for (;;) {
      if (raw_pos_ == raw_size_ && !raw_eof_) {
        raw_pos_ = 0;
        raw_size_ = raw_->read(raw_buffer_.data(), raw_buffer_.size());
        if (raw_size_ == 0) raw_eof_ = true;
      }
      ZSTD_inBuffer in{raw_buffer_.data(), raw_size_, raw_pos_};
      ZSTD_outBuffer out{decoded_buffer_.data(), decoded_buffer_.size(), 0};
      std::size_t ret = ZSTD_decompressStream(dctx_.get(), &out, &in);
      if (ZSTD_isError(ret)) {
        fail(0, std::string("corrupt zstd stream: ") + ZSTD_getErrorName(ret));
      }
      // A call that neither consumed nor produced anything says nothing about the frame (a
      // call after a finished frame would otherwise report a new frame's header as pending).
      if (in.pos > raw_pos_ || out.pos > 0) frame_complete_ = (ret == 0);
      raw_pos_ = in.pos;
      if (out.pos > 0) {
        decoded_size_ = out.pos;
        return true;
      }
      if (raw_eof_ && raw_pos_ == raw_size_) {
        if (!frame_complete_) fail(0, "truncated zstd stream");
        return false;
      }
    }
  }

  // Reads the next line (without its '\n') into line_; returns false at the end of input.
  bool next_line() {
    line_.clear();
    bool any = false;
    for (;;) {
      if (decoded_pos_ == decoded_size_ && !fill_decoded()) {
        if (any) ++line_number_;
        return any;
      }
      any = true;
      const char* start = decoded_buffer_.data() + decoded_pos_;
      std::size_t available = decoded_size_ - decoded_pos_;
      const void* newline = std::memchr(start, '\n', available);
      std::size_t take =
          newline ? static_cast<std::size_t>(static_cast<const char*>(newline) - start)
                  : available;
      if (line_.size() + take > kMaxTraceLineBytes) {
        fail(line_number_ + 1,
             "line longer than " + std::to_string(kMaxTraceLineBytes) + " bytes");
      }
      line_.append(start, take);
      decoded_pos_ += take;
      if (newline) {
        ++decoded_pos_;
        ++line_number_;
        return true;
      }
    }
  }

  // Advances to the next line that is neither blank nor a comment; returns it trimmed in
  // data_. Takes a line stashed by format detection first.
  bool next_data_line() {
    if (pending_) {
      pending_ = false;
      request_line_ = line_number_;
      return true;
    }
    while (next_line()) {
      data_ = trim(line_);
      if (data_.empty() || data_.front() == '#') continue;
      request_line_ = line_number_;
      return true;
    }
    return false;
  }

  void detect_format() {
    format_ = TraceFormat::kArc;
    if (!next_data_line()) return;
    pending_ = true;
    if (data_.find(',') != std::string_view::npos) format_ = TraceFormat::kKeySize;
  }

  void parse_arc_line() {
    std::string_view fields[4];
    std::size_t count = 0;
    std::string_view rest = data_;
    while (!rest.empty()) {
      std::size_t end = 0;
      while (end < rest.size() && !is_blank(rest[end])) ++end;
      if (count == 4) {
        fail(request_line_, "expected 4 fields 'start_block n_blocks ignored request_number', "
                            "got more: " + quote(data_));
      }
      fields[count++] = rest.substr(0, end);
      rest = trim(rest.substr(end));
    }
    if (count != 4) {
      fail(request_line_, "expected 4 fields 'start_block n_blocks ignored request_number', got " +
                              std::to_string(count) + ": " + quote(data_));
    }
    static constexpr const char* kNames[4] = {"start_block", "n_blocks", "ignored",
                                              "request_number"};
    std::uint64_t values[4] = {};
    for (std::size_t i = 0; i < 4; ++i) {
      auto value = parse_u64(fields[i]);
      if (!value) {
        fail(request_line_, std::string(kNames[i]) + " is not an unsigned 64-bit integer: " +
                                quote(fields[i]));
      }
      values[i] = *value;
    }
    if (values[1] > kMaxArcBlocksPerLine) {
      fail(request_line_, "n_blocks " + std::to_string(values[1]) + " exceeds the limit of " +
                              std::to_string(kMaxArcBlocksPerLine));
    }
    if (values[1] > 0 && values[0] > std::numeric_limits<std::uint64_t>::max() - (values[1] - 1)) {
      fail(request_line_, "block range overflows 64 bits");
    }
    arc_next_block_ = values[0];
    arc_remaining_ = values[1];
  }

  void parse_kv_line(TraceRequest& out) {
    std::size_t comma = data_.find(',');
    if (comma == std::string_view::npos) {
      fail(request_line_, "expected 'key,size', found no comma: " + quote(data_));
    }
    std::string_view key = trim(data_.substr(0, comma));
    std::string_view size_text = trim(data_.substr(comma + 1));
    if (key.empty()) fail(request_line_, "empty key");
    auto size = parse_u64(size_text);
    if (!size) {
      fail(request_line_, "size is not an unsigned 64-bit integer: " + quote(size_text));
    }
    auto [it, inserted] = interned_.try_emplace(std::string(key), interned_.size());
    out.key = it->second;
    out.size = *size;
  }

  std::unique_ptr<RawInput> raw_;
  std::string source_;
  TraceFormat format_;

  std::vector<char> raw_buffer_;
  std::size_t raw_pos_ = 0;
  std::size_t raw_size_ = 0;
  bool raw_eof_ = false;

  struct DCtxFree {
    void operator()(ZSTD_DCtx* dctx) const { ZSTD_freeDCtx(dctx); }
  };
  std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx_;  // null for plain input
  bool frame_complete_ = true;

  std::vector<char> decoded_buffer_;
  std::size_t decoded_pos_ = 0;
  std::size_t decoded_size_ = 0;

  std::string line_;
  std::string_view data_;  // trimmed view into line_
  std::uint64_t line_number_ = 0;   // lines consumed so far
  std::uint64_t request_line_ = 0;  // line of the current data line
  bool pending_ = false;            // data_ holds a line read by format detection

  std::uint64_t arc_next_block_ = 0;
  std::uint64_t arc_remaining_ = 0;
  std::unordered_map<std::string, std::uint64_t> interned_;
};

TraceReader TraceReader::open_file(const std::string& path, TraceFormat format) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    throw TraceError(path, 0, std::string("cannot open: ") + std::generic_category().message(errno));
  }
  return TraceReader(
      std::make_unique<Impl>(std::make_unique<FileInput>(file, path), format, path));
}

TraceReader TraceReader::from_memory(std::string_view bytes, TraceFormat format,
                                     std::string source) {
  return TraceReader(
      std::make_unique<Impl>(std::make_unique<MemoryInput>(bytes), format, std::move(source)));
}

TraceReader::TraceReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TraceReader::TraceReader(TraceReader&&) noexcept = default;
TraceReader& TraceReader::operator=(TraceReader&&) noexcept = default;
TraceReader::~TraceReader() = default;

bool TraceReader::next(TraceRequest& out) { return impl_->next(out); }
TraceFormat TraceReader::format() const { return impl_->format(); }
std::uint64_t TraceReader::line_number() const { return impl_->line_number(); }
std::uint64_t TraceReader::distinct_keys() const { return impl_->distinct_keys(); }

}  // namespace pagekeeper
