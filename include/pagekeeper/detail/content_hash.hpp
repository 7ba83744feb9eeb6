// pagekeeper/detail/content_hash.hpp (embedding; a detail of EmbeddingKey)
//
// Content hashes: SHA-256 of the exact bytes given (no normalization, no encoding change),
// computed with OpenSSL's libcrypto through the EVP interface. The embedding cache keys
// vectors by (model, SHA-256 of the text), so two texts share a slot only when their
// bytes are identical.
//
// Thread safety: free functions; each thread reuses its own digest context, so concurrent
// calls from any threads are safe and do not contend.

#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pagekeeper {

// A SHA-256 digest: 32 raw bytes.
using ContentHash = std::array<std::uint8_t, 32>;

// SHA-256 of `bytes`. Throws std::runtime_error only when libcrypto itself fails (no
// SHA-256 provider available), which a working installation never does.
ContentHash sha256(std::string_view bytes);

// SHA-256 of a file's bytes, read in 1 MiB pieces (a model file need not fit in memory).
// Throws std::runtime_error naming the file when it cannot be read.
ContentHash sha256_file(const std::string& path);

// Lowercase hexadecimal form of a digest (64 characters), as `sha256sum` prints it.
std::string to_hex(const ContentHash& hash);

}  // namespace pagekeeper
