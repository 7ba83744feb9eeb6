#include "cli/indexer.hpp"

#include <chrono>
#include <fstream>
#include <sstream>

#include "cli/server_client.hpp"
#include "pagekeeper/embedding_service.hpp"

namespace pagekeeper::cli {

namespace {

bool valid_utf8_text(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    if (n == 2 && c < 0xc2) return false;  // overlong
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    if (n == 3) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0)) return false;  // overlong, surrogates
    }
    if (n == 4) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90) || c > 0xf4) return false;
    }
    i += n;
  }
  return true;
}

bool skipped_dir(const std::string& name) {
  return (!name.empty() && name[0] == '.') || name.rfind("build", 0) == 0 || name == "third_party" ||
         name == "node_modules";
}

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

}  // namespace

std::vector<std::string> split_chunks(std::string_view text, std::size_t chunk_bytes) {
  std::vector<std::string> out;
  std::string current;
  auto flush = [&] {
    if (!blank(current)) out.push_back(current);
    current.clear();
  };
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    end = end == std::string_view::npos ? text.size() : end + 1;
    std::string_view line = text.substr(pos, end - pos);
    pos = end;
    if (current.size() + line.size() > chunk_bytes) flush();
    while (line.size() > chunk_bytes) {
      std::size_t cut = chunk_bytes;
      while (cut > 0 && (static_cast<unsigned char>(line[cut]) >> 6) == 0x2) --cut;  // not inside a character
      if (cut == 0) cut = chunk_bytes;
      current.assign(line.substr(0, cut));
      flush();
      line.remove_prefix(cut);
    }
    current.append(line);
  }
  flush();
  return out;
}

ChunkSet collect_chunks(const IndexOptions& options) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(options.root)) throw std::runtime_error("not a directory: " + options.root.string());
  std::vector<fs::path> paths;
  for (auto it = fs::recursive_directory_iterator(options.root, fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_directory() && skipped_dir(it->path().filename().string())) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) paths.push_back(it->path());
  }
  std::sort(paths.begin(), paths.end());
  ChunkSet set;
  for (const auto& p : paths) {
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    if (ec || size > options.max_file_bytes) {
      ++set.skipped_files;
      continue;
    }
    std::ifstream in(p, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    const std::string content = text.str();
    if (!in || !valid_utf8_text(content)) {
      ++set.skipped_files;
      continue;
    }
    const std::size_t file = set.files.size();
    set.files.push_back(fs::relative(p, options.root).string());
    for (auto& c : split_chunks(content, options.chunk_bytes)) set.chunks.push_back({std::move(c), file});
  }
  return set;
}

IndexSummary run_index(const IndexOptions& options, const std::function<void(const IndexProgress&)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const ChunkSet set = collect_chunks(options);
  IndexSummary summary;
  summary.files = set.files.size();
  summary.skipped_files = set.skipped_files;
  summary.chunks = set.chunks.size();
  std::unique_ptr<ServerClient> client;
  std::shared_ptr<EmbeddingService> service;
  if (!options.server.empty()) client = std::make_unique<ServerClient>(options.server, options.token);
  else service = EmbeddingService::process_default();
  const std::size_t batch = std::max<std::size_t>(1, options.batch);
  std::vector<std::string> texts;
  for (std::size_t start = 0; start < set.chunks.size(); start += batch) {
    texts.clear();
    for (std::size_t i = start; i < std::min(set.chunks.size(), start + batch); ++i) texts.push_back(set.chunks[i].text);
    if (client) {
      // base64 keeps the responses small; the indexer only needs the accounting.
      const ServerReply r = client->post(
          "/v1/embeddings",
          nlohmann::json{{"input", texts}, {"model", options.model}, {"encoding_format", "base64"}}.dump());
      summary.hits += r.cache_hits;
      summary.misses += r.cache_misses;
    } else {
      const EmbedBatchResult r = service->embed_batch(texts, options.model);
      summary.hits += r.accounting.hits;
      summary.misses += r.accounting.misses;
    }
    IndexProgress p;
    p.done = std::min(set.chunks.size(), start + batch);
    p.total = set.chunks.size();
    p.hits = summary.hits;
    p.misses = summary.misses;
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (progress) progress(p);
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

}  // namespace pagekeeper::cli
