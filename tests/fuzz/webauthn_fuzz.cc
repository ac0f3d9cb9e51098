// libFuzzer target for WebAuthn registration data (api/crypto/webauthn.h): arbitrary bytes go to
// parse_attestation_object (and what parses, to verify_packed and verify_attestation, which
// dispatches by fmt to the packed and apple verifiers), parse_authenticator_data and
// parse_client_data (seeds: W3C Level 3 §16 attestation objects). Every input must give a verdict
// without crashing, leaking or hitting UB, and what is accepted must obey the layout webauthn.h
// describes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/crypto/webauthn.h"

namespace {

namespace webauthn = sechex::api::webauthn;

void check(bool ok) {
  if (!ok) std::abort();
}

void check_auth_data(const webauthn::AuthenticatorData& a) {
  check(a.credential.has_value() == a.has(webauthn::kAttestedCredential));
  if (a.credential) {
    check(a.credential->id.size() <= webauthn::kMaxCredentialId);
    check(!a.credential->key.es256 || (a.credential->key.kty == 2 && a.credential->key.alg == -7 &&
                                       a.credential->key.crv == 1));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const sechex::ledger::ByteView bytes(data, size);
  if (auto o = webauthn::parse_attestation_object(bytes)) {
    check(size <= webauthn::kMaxAttestationObject);
    check_auth_data(o.value().parsed);
    // The statement verifier on hostile statements and certificates: a verdict, no crash. With
    // no roots nothing may pass but self attestation, which is allowed here.
    const std::uint8_t hash[32] = {};
    if (auto a =
            webauthn::verify_packed(o.value(), hash, {nullptr, true, std::nullopt, std::nullopt})) {
      check(a.value().type == "self");
    }
    // App Attest is configured, so its verifier runs its checks (and, without roots, refuses).
    const webauthn::AttestationPolicy policy{nullptr, true, std::nullopt,
                                             webauthn::AppAttestApp{"TEAM.app", true, nullptr}};
    if (auto a = webauthn::verify_attestation(o.value(), hash, policy)) {
      check(a.value().type == "self" && o.value().fmt == "packed");
    } else {
      check(webauthn::reason_code(a.error()) != "internal_error" ||
            a.error() == sechex::ledger::Errc::crypto_failure);
    }
  } else {
    check(webauthn::reason_code(o.error()) != "internal_error");
  }
  if (auto a = webauthn::parse_authenticator_data(bytes)) check_auth_data(a.value());
  (void)webauthn::parse_client_data(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
