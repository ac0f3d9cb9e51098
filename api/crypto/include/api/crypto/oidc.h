// What a relying party checks of a third-party OpenID provider (issue 17, spec 003 US6): the ID
// token of OpenID Connect Core 1.0 §3.1.3.7 against the provider's JWKS, and the PKCE S256
// challenge of RFC 7636 §4.2. Fetching the documents is api/oauth's; this is the pure part.
//
// ID token rules (each failure its own JoseErrc, reason_code() names it):
//   - compact JWS of at most 16 KiB; header rules of jose.h (no crit, no embedded or fetched
//     key); `alg` is exactly "RS256" or "ES256" (never "none", HS*, PS*: the allowlist), and the
//     key `kid` names (or the only key, when the header has none) must be of that algorithm's
//     type, so an RSA key is never used with an EC signature or an HMAC; RS256 signatures are
//     exactly the modulus length (RFC 8017 §8.2.2);
//   - `iss` equals the provider's issuer exactly; `aud` is (or contains) our client id; with
//     several audiences `azp` is required; `azp`, when present, equals our client id
//     (wrong_authorized_party);
//   - `exp` required, refused from second `exp` on (no leeway past expiry); `iat` required, at
//     most `clock_skew` in the future and at most `max_age` old; `nbf`, when present, at most
//     `clock_skew` in the future;
//   - `nonce` equals the one this sign-in sent (wrong_nonce; compared in constant time);
//   - `sub` a non-empty string of at most 255 characters (OIDC Core §2); `email` (optional) a
//     string, `email_verified` (optional) a boolean: anything else is bad_claim, never a guess.
//
// JWKS rules (ProviderKeys::from_jwks): RSA keys of 2048 to 8192 bits with an odd public
// exponent of at least 65537 (smaller ones are legal but unused by providers and only widen
// the attack surface); EC keys on P-256 only. A key published for
// encryption (`use` "enc", `key_ops` without "verify") or for another `alg` is left out, not an
// error: providers list encryption keys beside signing keys. A kid seen twice keeps the first.
//
// Thread-safety: ProviderKeys is an immutable value (copies share the OpenSSL keys); all
// functions are pure and may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "api/crypto/jose.h"

namespace sechex::api::oidc {

// BASE64URL(SHA-256(ASCII(verifier))), RFC 7636 §4.2.
std::string pkce_s256(std::string_view verifier);

struct IdTokenExpectations {
  std::string issuer;     // the discovery document's `issuer`, exactly
  std::string client_id;  // ours
  std::string nonce;      // the one the authorization request carried
  std::int64_t now_micros = 0;
  std::chrono::seconds clock_skew{60};
  std::chrono::seconds max_age{600};
  std::size_t max_size = 16384;
};

struct IdTokenClaims {
  std::string sub;
  std::string email;  // "" when absent
  bool email_verified = false;
  std::string name;  // "" when absent or not a string
  std::int64_t iat = 0;
  std::int64_t exp = 0;
  std::string kid;
  std::string alg;  // "RS256" or "ES256"
};

class ProviderKeys {
 public:
  // Errc::invalid_argument when `jwks` is not a JSON object with a "keys" array (at most
  // kMaxKeys entries), or when no key in it can verify RS256 or ES256.
  static Result<ProviderKeys> from_jwks(std::string_view jwks);
  static constexpr std::size_t kMaxKeys = 100;

  bool has(std::string_view kid) const { return keys_.find(kid) != keys_.end(); }
  std::size_t size() const { return keys_.size(); }

 private:
  friend Result<jose::VerifiedJws> verify_signature(std::string_view, const ProviderKeys&,
                                                    std::size_t);
  enum class Alg { rs256, es256 };
  struct Key {
    Alg alg = Alg::rs256;
    std::shared_ptr<evp_pkey_st> pkey;    // RS256
    std::optional<jose::EcPublicKey> ec;  // ES256 (jose.h's own verifier)
    std::size_t signature_size = 0;       // RS256: the modulus length in bytes; ES256: 64
  };
  std::map<std::string, Key, std::less<>> keys_;  // kid ("" for a key published without one)
};

// The header rules and the signature alone (the Wycheproof vectors test this layer): the
// verified header and payload, not looked at further.
Result<jose::VerifiedJws> verify_signature(std::string_view compact, const ProviderKeys& keys,
                                           std::size_t max_size);
// The signature, then every claim rule above.
Result<IdTokenClaims> verify_id_token(std::string_view token, const ProviderKeys& keys,
                                      const IdTokenExpectations& expect);

}  // namespace sechex::api::oidc
