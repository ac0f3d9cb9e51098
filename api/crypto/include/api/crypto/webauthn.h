// The WebAuthn registration data exclusive mode reads (API.md "Exclusive mode", WebAuthn
// Level 3 §5.8.1, §6.1, §6.5): the client data JSON, the attestation object (CBOR, decoded by
// libcbor) and the authenticator data inside it, with the credential's COSE public key. This is
// parsing only, strict and bounded: what is checked against the challenge, the origin, the RP
// and the attestation statement is the verifiers' (next to this header, one per format).
//
// Formats (byte offsets of the authenticator data, WebAuthn §6.1):
//   rpIdHash 32 | flags 1 | signCount 4 (big-endian)
//   | attested credential data when flag AT: aaguid 16 | credentialIdLength 2 | credentialId
//     (at most 1023 bytes) | credentialPublicKey (one COSE_Key CBOR map)
//   | extensions (one CBOR map) when flag ED; nothing may follow.
// The credential key exclusive mode accepts is COSE EC2 (kty 2), alg ES256 (-7), crv P-256 (1),
// with 32-byte x and y on the curve; any other key parses, with `es256` empty, so that the
// caller can answer 400 device_unsupported with guidance instead of a generic refusal.
//
// Thread-safety: pure functions. Nothing throws (std::bad_alloc aside).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "api/crypto/jose.h"
#include "ledger/result.h"
#include "ledger/types.h"

namespace sechex::api::webauthn {

enum class WebAuthnErrc {
  ok = 0,
  too_large = 1,       // more than kMaxAttestationObject / kMaxClientData bytes
  bad_cbor,            // not one well-formed CBOR item, or bytes after it
  bad_attestation,     // not a map of fmt (text), attStmt (map) and authData (bytes)
  bad_auth_data,       // too short, a length that overruns, trailing bytes, flags inconsistent
  bad_credential_key,  // the COSE key is not a map with kty and alg integers
  bad_client_data,     // not a JSON object with type, challenge and origin strings
};

const std::error_category& webauthn_category() noexcept;
inline std::error_code make_error_code(WebAuthnErrc e) noexcept {
  return {static_cast<int>(e), webauthn_category()};
}
// Stable snake_case name for `details.reason` and logs; "internal_error" for other categories.
std::string_view reason_code(const std::error_code& ec) noexcept;

inline constexpr std::size_t kMaxAttestationObject = 16 * 1024;
inline constexpr std::size_t kMaxClientData = 4 * 1024;
inline constexpr std::size_t kMaxCredentialId = 1023;  // WebAuthn §6.5.1

// CollectedClientData (WebAuthn §5.8.1).
struct ClientData {
  std::string type;       // "webauthn.create" for a registration
  std::string challenge;  // base64url, as the client sent it
  std::string origin;
  bool cross_origin = false;
  std::optional<std::string> top_origin;
};
Result<ClientData> parse_client_data(std::string_view json);

enum Flag : std::uint8_t {
  kUserPresent = 0x01,
  kUserVerified = 0x04,
  kAttestedCredential = 0x40,
  kExtensions = 0x80,
};

struct CredentialKey {
  std::int64_t kty = 0;
  std::int64_t alg = 0;
  std::optional<std::int64_t> crv;
  std::optional<jose::EcPublicKey> es256;  // set only for EC2 / ES256 / P-256 on the curve
  ledger::Bytes cose;                      // the COSE_Key as it was encoded
};

struct AttestedCredential {
  std::array<std::uint8_t, 16> aaguid{};
  ledger::Bytes id;
  CredentialKey key;
};

struct AuthenticatorData {
  std::array<std::uint8_t, 32> rp_id_hash{};
  std::uint8_t flags = 0;
  std::uint32_t sign_count = 0;
  std::optional<AttestedCredential> credential;  // present when the AT flag is set
  bool has(Flag f) const { return (flags & f) != 0; }
};
Result<AuthenticatorData> parse_authenticator_data(ledger::ByteView data);

struct AttestationObject {
  std::string fmt;
  ledger::Bytes att_stmt;   // the attStmt map, CBOR-encoded (for the format's verifier)
  ledger::Bytes auth_data;  // the authenticator data as signed
  AuthenticatorData parsed;
};
Result<AttestationObject> parse_attestation_object(ledger::ByteView cbor);

}  // namespace sechex::api::webauthn

template <>
struct std::is_error_code_enum<sechex::api::webauthn::WebAuthnErrc> : std::true_type {};
