// Standard Webhooks 1.0 signatures (https://www.standardwebhooks.com), the scheme of the payment
// provider's webhooks to us and of our notifications to admin-registered endpoints (API.md
// "Payments").
//
// Formats:
//   secret     "whsec_" + standard base64 of 24..64 random bytes; the HMAC key is the decoded
//              bytes (new secrets here are 32 bytes from RAND_bytes).
//   signed     id + "." + timestamp (decimal Unix seconds, as sent) + "." + body (raw bytes)
//   signature  "v1," + standard base64 of HMAC-SHA-256(key, signed); the header may hold several
//              space-separated signatures (key rotation), any one valid v1 signature counts and
//              other versions are ignored.
//
// verify() checks, in order: the three headers present and sane (id 1..256 printable ASCII,
// timestamp all digits), the timestamp within `tolerance` of `now` either way (a captured
// message cannot be replayed later; replays inside the window are the caller's dedupe by id),
// then the signatures, each compared in constant time.
//
// Thread-safety: pure functions over immutable values.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "ledger/result.h"
#include "ledger/types.h"

namespace sechex::api::webhooks {

enum class SignatureErrc {
  bad_secret = 1,   // not "whsec_" + base64 of 24..64 bytes
  missing_header,   // webhook-id, webhook-timestamp or webhook-signature absent or empty
  bad_id,           // not 1..256 printable ASCII characters
  bad_timestamp,    // not decimal digits
  stale_timestamp,  // outside the tolerance window
  no_valid_signature,
};
std::error_code make_error_code(SignatureErrc e);
// The `details.reason` spelling: "bad_secret", "missing_header", ...
std::string_view reason(SignatureErrc e);

class Secret {
 public:
  static Result<Secret> parse(std::string_view whsec);
  // A fresh 32-byte secret (RAND_bytes).
  static Result<Secret> generate();
  // "whsec_" + base64: shown once to whoever registers an endpoint.
  std::string text() const;
  const ledger::Bytes& key() const { return key_; }

 private:
  explicit Secret(ledger::Bytes key) : key_(std::move(key)) {}
  ledger::Bytes key_;
};

// "v1,<base64>" for one message.
Result<std::string> sign(const Secret& secret, std::string_view id, std::int64_t timestamp,
                         std::string_view body);

struct Message {
  std::string_view id;         // webhook-id
  std::string_view timestamp;  // webhook-timestamp, as sent
  std::string_view signature;  // webhook-signature
  std::string_view body;
};
inline constexpr std::chrono::seconds kDefaultTolerance{300};
Result<void> verify(const Secret& secret, const Message& m, std::int64_t now_seconds,
                    std::chrono::seconds tolerance = kDefaultTolerance);

}  // namespace sechex::api::webhooks

template <>
struct std::is_error_code_enum<sechex::api::webhooks::SignatureErrc> : std::true_type {};
