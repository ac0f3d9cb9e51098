#include "api/crypto/lookup_hash.h"

#include <cstdlib>

namespace sechex::api {
namespace {

void put_lp(std::string& out, std::string_view part) {
  const auto n = static_cast<std::uint32_t>(part.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(n >> (24 - 8 * i)));
  out.append(part);
}

// HMAC-SHA-256 with a 32-byte key fails only if OpenSSL itself is broken (or out of memory); a
// lookup hash that silently differed would make accounts unfindable, so stop instead.
ledger::crypto::HmacSha256Key keyed(const ledger::Kek& key) {
  auto k = ledger::crypto::HmacSha256Key::create(key.bytes());
  if (!k) std::abort();
  return std::move(k).value();
}

}  // namespace

LookupHasher::LookupHasher(const ledger::Kek& key) : key_(keyed(key)) {}

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
  const auto h =
      key_.mac(ledger::ByteView(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
  if (!h) std::abort();  // as keyed(): a lookup hash must never silently differ
  return std::string(h.value().begin(), h.value().end());
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
