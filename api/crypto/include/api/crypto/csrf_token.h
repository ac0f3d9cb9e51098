// CSRF tokens (csrf.h has the checks a request must pass): bound to a session, expiring, and
// stateless, so any node can check one.
//
// Format: base64url( be64(expiry micros) || HMAC-SHA-256(lookup key, "token" | "csrf" | sid |
// expiry) ) via LookupHasher::token; compared in constant time.
//
// Thread-safety: immutable; all functions may be called concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "api/crypto/lookup_hash.h"
#include "ledger/clock.h"

namespace sechex::api {

inline constexpr Micros kCsrfTokenLifetime = std::chrono::hours{2};

class CsrfTokens {
 public:
  explicit CsrfTokens(const LookupHasher& lookup) : lookup_(lookup) {}
  std::string issue(std::string_view session_id, TimePoint now) const;
  bool valid(std::string_view token, std::string_view session_id, TimePoint now) const;

 private:
  std::string mac(std::string_view session_id, std::int64_t expiry) const;
  const LookupHasher& lookup_;
};

}  // namespace sechex::api
