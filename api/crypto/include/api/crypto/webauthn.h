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
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

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
// Stable snake_case name for `details.reason` and logs, of a WebAuthnErrc or an AttestationErrc;
// "internal_error" for other categories.
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

// ---- Attestation statements (WebAuthn §8), one verifier per format ----

// Why an attestation statement was refused (API.md: 401 attestation_failed, details.reason).
enum class AttestationErrc {
  ok = 0,
  bad_statement = 1,    // attStmt lacks alg or sig, or has fields of the wrong type
  alg_not_allowed,      // the statement's alg is not ES256 (-7)
  self_not_allowed,     // self attestation without --allow-self-attestation
  bad_certificate,      // an x5c element is not one DER certificate, or the leaf breaks §8.2.1
  aaguid_mismatch,      // the leaf's id-fido-gen-ce-aaguid differs from the authenticator data's
  untrusted_chain,      // the chain does not lead to a configured root at the verification time
  bad_signature,        // the signature over authData || SHA-256(clientDataJSON) does not verify
  format_none,          // fmt "none": nothing vouches for the device (API.md: refused)
  unsupported_format,   // a format this server does not verify (400 device_unsupported)
  nonce_mismatch,       // apple: the leaf's nonce is not SHA-256(authData || clientDataHash)
  key_mismatch,         // the leaf's public key is not the attested credential's
  challenge_mismatch,   // android-key: attestationChallenge is not the client data hash
  not_hardware_backed,  // android-key: attestation security level Software
  key_not_generated,    // android-key: the hardware list lacks origin GENERATED (imported key)
  key_purpose,          // android-key: no hardware-enforced purpose SIGN, or allApplications
  // The registration around the statement (check_registration), in the order it is checked:
  wrong_type,         // clientDataJSON.type is not "webauthn.create"
  wrong_challenge,    // not the challenge issued (or already used, or expired)
  wrong_origin,       // not the server's origin, or a cross-origin ceremony
  wrong_rp,           // rpIdHash is not SHA-256 of the server's RP id
  user_not_present,   // flag UP unset
  user_not_verified,  // flag UV unset: no biometric or PIN (000 FR-04)
  key_unsupported,    // no credential, or its key is not COSE EC2 P-256 ES256 (400)
  development_key,    // apple-appattest: a development-environment key where production is due
};

// Whether a refusal means the device cannot do exclusive mode at all (400 device_unsupported,
// 000 FR-09) rather than that this attestation failed (401 attestation_failed).
bool device_unsupported(const std::error_code& ec) noexcept;
const std::error_category& attestation_category() noexcept;
inline std::error_code make_error_code(AttestationErrc e) noexcept {
  return {static_cast<int>(e), attestation_category()};
}

// The attestation roots (--attestation-roots: PEM bundles); immutable once built.
class TrustStore {
 public:
  // Every certificate of `pem`; Errc::key_invalid when it holds none or one does not parse.
  static Result<TrustStore> from_pem(std::string_view pem);
  const void* handle() const { return store_.get(); }  // the X509_STORE (attestation.cc)

 private:
  std::shared_ptr<void> store_;
};

struct AppAttestApp {
  std::string app_id;              // "<team id>.<bundle id>"; rpIdHash = SHA-256(app_id)
  bool allow_development = false;  // accept aaguid "appattestdevelop" (test builds)
  // Apple's App Attestation root only (--app-attest-roots), never the WebAuthn roots: a
  // certificate from any other vendor's CA must not pass for an App Attest key.
  const TrustStore* roots = nullptr;
};

struct AttestationPolicy {
  const TrustStore* roots = nullptr;  // none: every chain is untrusted
  bool allow_self = false;            // --allow-self-attestation (development)
  // The verification time, Unix seconds; nullopt is now. Tests pin it for real chains whose
  // certificates have expired since.
  std::optional<std::int64_t> verify_at;
  // The iOS app whose App Attest keys are accepted (--app-attest-app-id); none: apple-appattest
  // is an unsupported format.
  std::optional<AppAttestApp> app_attest;
};

struct Attested {
  std::string type;               // "self", "basic" (packed x5c) or "anonca" (apple)
  std::string chain_fingerprint;  // hex SHA-256 of the leaf's DER; empty for self
};

// `packed` (WebAuthn §8.2): with x5c, the leaf must meet §8.2.1 (version 3, OU "Authenticator
// Attestation", not a CA, id-fido-gen-ce-aaguid equal to the authenticator data's when present),
// chain to `roots` (never assuming the last x5c element is a root) and verify `sig`; without
// x5c (self attestation) the credential key itself signs, and only `allow_self` accepts it.
Result<Attested> verify_packed(const AttestationObject& object, ledger::ByteView client_data_hash,
                               const AttestationPolicy& policy);

// `apple` (WebAuthn §8.8, Apple anonymous attestation): the leaf's extension
// 1.2.840.113635.100.8.2 holds SHA-256(authData || clientDataHash), the leaf's key is the
// credential's (ES256), and the chain leads to `roots` (Apple's WebAuthn root in production).
Result<Attested> verify_apple(const AttestationObject& object, ledger::ByteView client_data_hash,
                              const AttestationPolicy& policy);

// Android Key Attestation's KeyDescription (extension 1.3.6.1.4.1.11129.2.1.17 of the leaf),
// what the verifier reads of it. Security levels: 0 Software, 1 TrustedEnvironment, 2 StrongBox.
struct AndroidKeyDescription {
  int attestation_security_level = 0;
  ledger::Bytes challenge;
  struct List {
    bool purpose_sign = false;           // purpose [1] holds SIGN (2)
    std::optional<std::int64_t> origin;  // origin [702]; 0 = GENERATED
    bool all_applications = false;       // allApplications [600] present
  };
  List software;  // softwareEnforced
  List hardware;  // hardwareEnforced (teeEnforced)
};
// The leaf's KeyDescription; bad_certificate when the leaf is not one DER certificate or lacks
// a well-formed extension.
Result<AndroidKeyDescription> android_key_description(ledger::ByteView leaf_der);

// `android-key` (WebAuthn §8.4), strict: alg ES256, sig by the leaf over authData ||
// clientDataHash, the leaf key is the credential's, attestationChallenge = clientDataHash, no
// allApplications, and from the hardware-enforced list only: origin GENERATED, purpose SIGN,
// security level TEE or StrongBox; the chain leads to `roots` (Google's).
Result<Attested> verify_android_key(const AttestationObject& object,
                                    ledger::ByteView client_data_hash,
                                    const AttestationPolicy& policy);

// `apple-appattest` (Apple App Attest, native iOS apps): the app's identity and environment.
// Apple's steps: the chain to `policy.roots`, which must be Apple's App Attestation root alone
// (verify_attestation passes the app's `roots`), the leaf's nonce
// extension 1.2.840.113635.100.8.2 = SHA-256(authData || clientDataHash), SHA-256 of the leaf's
// public key = the credential id (the key id), the leaf key = the credential key, rpIdHash =
// SHA-256(app_id), counter 0, aaguid "appattest" + 7 zero bytes (or "appattestdevelop" when
// allowed). UP and UV are not App Attest's: its flags carry only AT.
Result<Attested> verify_app_attest(const AttestationObject& object,
                                   ledger::ByteView client_data_hash,
                                   const AttestationPolicy& policy, const AppAttestApp& app);

// A certificate chain given as DER, leaf first, leads to `roots` at the policy's time: the
// leaf's hex SHA-256 fingerprint, or untrusted_chain / bad_certificate. What the verifiers above
// call; public so real vendor chains can be checked without an attestation object.
Result<std::string> verify_chain(const std::vector<ledger::Bytes>& chain,
                                 const AttestationPolicy& policy);

// What a registration must match: the challenge as the client data must carry it (base64url),
// the server's origin (scheme://host[:port]) and its RP id.
struct ExpectedRegistration {
  std::string_view challenge;
  std::string_view origin;
  std::string_view rp_id;
  // An App Attest object (fmt apple-appattest): its rpIdHash is SHA-256 of the app id and its
  // flags carry no UP or UV, so those checks are verify_app_attest's (rpIdHash, counter 0)
  // instead. App Attest proves a genuine app and a Secure Enclave key, not a gesture: an app
  // that must meet 000 FR-04 gates the key's use with LocalAuthentication itself.
  bool app_attest = false;
};
// WebAuthn §7.1's checks around the statement, in API.md's order: type, challenge, origin
// (cross-origin ceremonies refused), rpIdHash, UP, UV (both but App Attest), then an ES256
// P-256 credential key.
Result<void> check_registration(const ClientData& client, const AuthenticatorData& auth,
                                const ExpectedRegistration& expected);

// The verifier of the object's format: packed, apple, android-key; "none" -> format_none; any
// other format -> unsupported_format: tpm, fido-u2f, and apple-appattest, whose verifier
// (verify_app_attest) only for the app the policy names, against that app's own roots, else
// unsupported_format.
Result<Attested> verify_attestation(const AttestationObject& object,
                                    ledger::ByteView client_data_hash,
                                    const AttestationPolicy& policy);

}  // namespace sechex::api::webauthn

template <>
struct std::is_error_code_enum<sechex::api::webauthn::WebAuthnErrc> : std::true_type {};
template <>
struct std::is_error_code_enum<sechex::api::webauthn::AttestationErrc> : std::true_type {};
