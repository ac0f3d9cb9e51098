// DPoP proofs (RFC 9449) as exclusive mode checks them (API.md "Exclusive mode", spec 000
// FR-02): every request of an exclusive session carries a `DPoP` header, a JWS signed by the
// device key, which names the request (method and URL) and the session token it goes with.
//
// verify_proof applies RFC 9449 §4.3 in this order, each failure with its own DpopErrc (the HTTP
// answer is the same 401 `spoof_attempt` for all; the reason goes to logs, metrics and the
// audit event):
//   - at most `max_size` bytes (8 KiB), exactly three '.'-separated strict base64url segments,
//     header and payload JSON objects within the API's input limits (duplicate keys refused);
//   - header: `typ` exactly "dpop+jwt", `alg` exactly "ES256" (never "none", HS*, RS*), no
//     `crit`, `jku`, `x5u` or `x5c`; `jwk` a public EC P-256 key (no private member `d`), the key
//     the signature is checked with;
//   - the signature: 64 bytes, verifying over the signing input with that key (high-S twins are
//     not refused: the replay set is keyed by jkt and jti, never by the proof's text);
//   - claims: `jti` a non-empty string of at most `max_jti` characters; `htm` equal to the
//     request's method; `htu`, normalised (normalize_htu), equal to the expected URL; `iat` an
//     integer NumericDate from now - max_age to now + max_future seconds;
//   - `ath` equal to base64url(SHA-256(access token)) when an access token is expected;
//   - the RFC 7638 thumbprint of `jwk` equal to the session's `cnf.jkt` when one is expected.
// Replay (the same jkt and jti within 5 minutes) is the caller's: it records a proof only after
// every check here passed.
//
// Thread-safety: pure functions. Nothing throws (std::bad_alloc aside).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "ledger/crypto.h"
#include "ledger/result.h"
#include "ledger/types.h"

namespace sechex::api::dpop {

enum class DpopErrc {
  ok = 0,
  too_large = 1,    // longer than max_size
  malformed,        // not three segments of strict base64url, or not JSON objects
  bad_typ,          // `typ` missing or not "dpop+jwt"
  alg_not_allowed,  // `alg` missing or not "ES256"
  bad_header,       // `crit`, `jku`, `x5u` or `x5c` present
  bad_jwk,          // `jwk` missing, private, or not an EC P-256 signing key
  bad_signature,    // wrong length or does not verify with `jwk`
  bad_jti,          // `jti` missing, empty, not a string or too long
  htm_mismatch,     // `htm` missing or not the request's method
  htu_mismatch,     // `htu` missing, not a URL, or not the request's URL
  bad_iat,          // `iat` missing or not an integer
  iat_too_old,      // older than max_age_seconds
  iat_in_future,    // further ahead than max_future_seconds
  ath_mismatch,     // `ath` missing or not the hash of the access token
  jkt_mismatch,     // the key is not the one the session is bound to
  bad_nonce,        // `nonce` present but not a string of at most 128 characters
};

const std::error_category& dpop_category() noexcept;
inline std::error_code make_error_code(DpopErrc e) noexcept {
  return {static_cast<int>(e), dpop_category()};
}
// Stable snake_case name ("htu_mismatch") for logs, metrics and audit events;
// "internal_error" for codes of other categories.
std::string_view reason_code(const std::error_code& ec) noexcept;

struct ProofRules {
  std::size_t max_size = 8192;
  std::int64_t max_age_seconds = 30;    // 000 FR-02
  std::int64_t max_future_seconds = 5;  // clock skew of the device
  std::size_t max_jti = 128;
};

// What the request the proof came with says.
struct ExpectedProof {
  std::string_view htm;  // the request's method, e.g. "POST"
  std::string_view htu;  // normalize_htu(--public-url + path); never built from Host
  std::optional<std::string_view> access_token;  // the token sent with it: `ath` required
  std::optional<std::string_view> jkt;           // the session's cnf.jkt
  std::int64_t now_seconds = 0;
};

struct VerifiedProof {
  std::string jkt;  // RFC 7638 thumbprint of the proof's key
  std::string jti;
  std::int64_t iat = 0;
  std::optional<std::string> nonce;  // the `nonce` claim, for the caller to check (NonceSource)
};

Result<VerifiedProof> verify_proof(std::string_view proof, const ExpectedProof& expected,
                                   const ProofRules& rules = {});

// An http(s) URL as `htu` is compared (RFC 9449 §4.3 step 9, RFC 3986 §6.2.2-6.2.3): scheme and
// host lowercased, the default port (80, 443) dropped, an empty path made "/", query and
// fragment removed. nullopt for anything but an absolute http(s) URL with a host and no
// credentials, blanks or control characters.
std::optional<std::string> normalize_htu(std::string_view url);

// base64url(SHA-256(access_token)), the `ath` claim (RFC 9449 §4.2).
std::string ath_of(std::string_view access_token);

// Server-provided nonces (RFC 9449 §8, §9), stateless: the nonce of time step t (Unix seconds /
// step) is base64url(HMAC-SHA256(key, "sechex-dpop-nonce" || be64(t))). A proof's nonce is
// accepted for the current and the previous step, so a nonce lives step..2 x step seconds
// (default 60..120 s) and every node with the key agrees without shared state. Compared in
// constant time. Immutable after construction: thread-safe.
class NonceSource {
 public:
  explicit NonceSource(ledger::Bytes key, std::int64_t step_seconds = 60);
  std::string current(std::int64_t now_seconds) const;
  bool valid(std::string_view nonce, std::int64_t now_seconds) const;

 private:
  std::string of_step(std::int64_t step) const;
  std::optional<ledger::crypto::HmacSha256Key> key_;  // none if OpenSSL could not key it
  std::int64_t step_;
};

}  // namespace sechex::api::dpop

template <>
struct std::is_error_code_enum<sechex::api::dpop::DpopErrc> : std::true_type {};
