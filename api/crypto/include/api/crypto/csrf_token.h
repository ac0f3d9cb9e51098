// CSRF tokens (csrf.h has the checks a request must pass): bound to a session (or to a browser's
// pre-session cookie before sign-up), expiring, and single use (003 FR-016, US7-4).
//
// Format: base64url( be64(expiry micros) || 16 random bytes || HMAC-SHA-256(lookup key,
// "token" | "csrf" | sid | 0 | expiry | random) ) via LookupHasher::token; compared in constant
// time. Any node can check one; each issue() is a new token, so a page making parallel requests
// asks for one per request (GET /v1/auth/csrf) or uses the next one each answer hands back.
//
// Single use: spend() remembers a spent token (by its SHA-256) until it expires. The memory is
// this process's and bounded (`capacity`): when full, the oldest spent entry goes and every
// token issued up to its issue time is refused from then on (`not_before` moves), so nothing
// forgotten can be replayed. Likewise tokens issued before the process started are refused
// (`started`), so a restart forgets nothing that could be replayed; a page holding one asks
// for a new token (the refusal says invalid_csrf_token). Commands on a user's partition run on
// its owner node (Kafka mode: others answer 421), so that node's memory is the one that counts.
//
// Thread-safety: all methods may be called concurrently. issue() takes no lock; valid() takes
// the mutex only to read not_before; spend() holds it for a hash-map insert and, when full, one
// eviction.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "api/crypto/lookup_hash.h"
#include "ledger/clock.h"

namespace sechex::api {

inline constexpr Micros kCsrfTokenLifetime = std::chrono::hours{2};

class CsrfTokens {
 public:
  explicit CsrfTokens(const LookupHasher& lookup, TimePoint started = TimePoint{},
                      std::size_t capacity = 200'000)
      : lookup_(lookup), not_before_(started), capacity_(capacity) {}
  // Errc::crypto_failure (no randomness) is the only error.
  Result<std::string> issue(std::string_view session_id, TimePoint now) const;
  // Well-formed, ours, for this session, unexpired and issued no earlier than not_before.
  bool valid(std::string_view token, std::string_view session_id, TimePoint now) const;
  // valid(), and not spent before: records it spent and returns true; false otherwise.
  bool spend(std::string_view token, std::string_view session_id, TimePoint now);
  std::size_t spent_count() const;

 private:
  std::string mac(std::string_view session_id, std::int64_t expiry, std::string_view nonce) const;
  const LookupHasher& lookup_;
  mutable std::mutex mu_;
  TimePoint not_before_;  // tokens issued before this instant are refused
  const std::size_t capacity_;
  std::unordered_map<std::string, std::int64_t> spent_;  // SHA-256 of the token -> its expiry
  std::deque<std::string> order_;                        // spent_'s keys, oldest first
};

}  // namespace sechex::api
