#include "api/crypto/lookup_hash.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdlib>

namespace sechex::api {
namespace {

void put_lp(std::string& out, std::string_view part) {
  const auto n = static_cast<std::uint32_t>(part.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(n >> (24 - 8 * i)));
  out.append(part);
}

}  // namespace

void LookupHasher::FreeMac::operator()(evp_mac_ctx_st* ctx) const { EVP_MAC_CTX_free(ctx); }

LookupHasher::LookupHasher(const ledger::Kek& key) {
  // HMAC keyed once: each hash copies this context (its digest states already hold the padded
  // key) instead of fetching HMAC and SHA-256 by name and absorbing the key again, which cost
  // several times the hash itself (one lookup hash per request: the caller's IP).
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  keyed_.reset(mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr);
  EVP_MAC_free(mac);  // the context holds its own reference
  char digest[] = "SHA2-256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
  const auto k = key.bytes();
  if (!keyed_ || EVP_MAC_init(keyed_.get(), k.data(), k.size(), params) != 1) std::abort();
}

std::string LookupHasher::mac(std::string_view kind, std::string_view a, std::string_view b,
                              std::string_view c) const {
  // Length-prefixed parts: ("ab", "c") and ("a", "bc") never collide.
  std::string data;
  data.reserve(kind.size() + a.size() + b.size() + c.size() + 17);
  data.append(kind);
  data.push_back('\0');
  put_lp(data, a);
  put_lp(data, b);
  put_lp(data, c);
  // HMAC-SHA-256 with a 32-byte key fails only if OpenSSL itself is broken (or out of memory);
  // a lookup hash that silently differed would make accounts unfindable, so stop instead.
  const std::unique_ptr<evp_mac_ctx_st, FreeMac> ctx(EVP_MAC_CTX_dup(keyed_.get()));
  std::string out(32, '\0');
  std::size_t len = 0;
  if (!ctx ||
      EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size()) !=
          1 ||
      EVP_MAC_final(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, out.size()) !=
          1 ||
      len != out.size()) {
    std::abort();
  }
  return out;
}

std::string LookupHasher::email(std::string_view address) const { return mac("email", address); }
std::string LookupHasher::ip(std::string_view ip) const { return mac("ip", ip); }
std::string LookupHasher::token(std::string_view kind, std::string_view token) const {
  return mac("token", kind, token);
}
std::string LookupHasher::otp(std::string_view user, std::string_view purpose,
                              std::string_view code) const {
  return mac("otp", user, purpose, code);
}

}  // namespace sechex::api
