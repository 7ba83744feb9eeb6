// SHA-256 through EVP. The digest algorithm is fetched once per process (an implicit fetch on
// every call costs a provider lookup) and every thread keeps one EVP_MD_CTX, re-initialized
// per digest, so a hash costs the compression rounds and nothing else.

#include "pagekeeper/detail/content_hash.hpp"

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <vector>

#include <openssl/evp.h>

namespace pagekeeper {
namespace {

const EVP_MD* sha256_md() {
  // EVP_MD_fetch returns a reference-counted object; keeping it for the process's lifetime
  // is intended (freed by OpenSSL's own cleanup at exit).
  static const EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) throw std::runtime_error("libcrypto: SHA256 is not available");
    return fetched;
  }();
  return md;
}

struct CtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

EVP_MD_CTX* thread_ctx() {
  thread_local std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx) throw std::runtime_error("libcrypto: EVP_MD_CTX_new failed");
  return ctx.get();
}

}  // namespace

ContentHash sha256(std::string_view bytes) {
  ContentHash out{};
  EVP_MD_CTX* ctx = thread_ctx();
  unsigned int len = 0;
  if (EVP_DigestInit_ex2(ctx, sha256_md(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx, bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(ctx, out.data(), &len) != 1 || len != out.size()) {
    throw std::runtime_error("libcrypto: SHA-256 digest failed");
  }
  return out;
}

ContentHash sha256_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw std::runtime_error("cannot open '" + path + "' to digest it");
  ContentHash out{};
  EVP_MD_CTX* ctx = thread_ctx();
  if (EVP_DigestInit_ex2(ctx, sha256_md(), nullptr) != 1) {
    throw std::runtime_error("libcrypto: SHA-256 digest failed");
  }
  std::vector<char> buffer(std::size_t{1} << 20);
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0) {
    if (EVP_DigestUpdate(ctx, buffer.data(), n) != 1) throw std::runtime_error("libcrypto: SHA-256 digest failed");
  }
  if (std::ferror(file.get()) != 0) throw std::runtime_error("cannot read '" + path + "' to digest it");
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, out.data(), &len) != 1 || len != out.size()) {
    throw std::runtime_error("libcrypto: SHA-256 digest failed");
  }
  return out;
}

std::string to_hex(const ContentHash& hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(hash.size() * 2, '0');
  for (std::size_t i = 0; i < hash.size(); ++i) {
    hex[2 * i] = kDigits[hash[i] >> 4];
    hex[2 * i + 1] = kDigits[hash[i] & 0x0f];
  }
  return hex;
}

}  // namespace pagekeeper
