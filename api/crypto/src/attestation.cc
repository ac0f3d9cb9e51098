// Attestation statements (WebAuthn Level 3 §8), one small verifier per format behind
// verify_attestation; certificates and chains by OpenSSL, the statements' CBOR by libcbor
// (webauthn_internal.h).
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <vector>

#include "api/crypto/webauthn.h"
#include "jose_internal.h"
#include "ledger/crypto.h"
#include "ledger/openssl_util.h"
#include "webauthn_internal.h"

namespace sechex::api::webauthn {

using namespace detail;

namespace {

constexpr std::array<std::string_view, 24> kAttestationReasons = {
    "ok",
    "bad_statement",
    "alg_not_allowed",
    "self_not_allowed",
    "bad_certificate",
    "aaguid_mismatch",
    "untrusted_chain",
    "bad_signature",
    "format_none",
    "unsupported_format",
    "nonce_mismatch",
    "key_mismatch",
    "challenge_mismatch",
    "not_hardware_backed",
    "key_not_generated",
    "key_purpose",
    "wrong_type",
    "wrong_challenge",
    "wrong_origin",
    "wrong_rp",
    "user_not_present",
    "user_not_verified",
    "key_unsupported",
    "development_key",
};
static_assert(kAttestationReasons.size() ==
              static_cast<std::size_t>(AttestationErrc::development_key) + 1);

class AttestationCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sechex.attestation"; }
  std::string message(int code) const override {
    const auto i = static_cast<std::size_t>(code);
    return i < kAttestationReasons.size()
               ? "attestation refused: " + std::string(kAttestationReasons[i])
               : "unknown attestation error";
  }
};

using ledger::ossl::Deleter;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
struct StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using Stack = std::unique_ptr<STACK_OF(X509), StackFree>;

// One DER certificate spanning all of `der`, or null.
X509Ptr certificate(const ledger::Bytes& der) {
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert || p != der.data() + der.size()) return nullptr;
  return cert;
}

// WebAuthn §8.2.1 for the leaf of a packed statement.
Result<void> check_packed_leaf(X509* leaf, const std::array<std::uint8_t, 16>& aaguid) {
  if (X509_get_version(leaf) != 2) return AttestationErrc::bad_certificate;  // v3
  char ou[64] = {};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_organizationalUnitName, ou,
                                sizeof(ou)) < 0 ||
      std::string_view(ou) != "Authenticator Attestation") {
    return AttestationErrc::bad_certificate;
  }
  if (X509_check_ca(leaf) != 0) return AttestationErrc::bad_certificate;
  // id-fido-gen-ce-aaguid: an OCTET STRING holding the DER of an OCTET STRING of 16 bytes.
  static const std::unique_ptr<ASN1_OBJECT, Deleter<ASN1_OBJECT, ASN1_OBJECT_free>> kAaguidOid(
      OBJ_txt2obj("1.3.6.1.4.1.45724.1.1.4", 1));
  const int at = X509_get_ext_by_OBJ(leaf, kAaguidOid.get(), -1);
  if (at >= 0) {
    const auto* data = X509_EXTENSION_get_data(X509_get_ext(leaf, at));
    const auto* p = ASN1_STRING_get0_data(data);
    const auto n = ASN1_STRING_length(data);
    if (n != 18 || p[0] != 0x04 || p[1] != 16 || !std::equal(aaguid.begin(), aaguid.end(), p + 2)) {
      return AttestationErrc::aaguid_mismatch;
    }
  }
  return boost::outcome_v2::success();
}

// The attStmt map with the members the formats read; `alg` and `sig` are nullopt when absent or
// of the wrong type, `x5c` null when absent. bad_statement when it is not a map, or when the
// object has no attested credential (every format attests one).
struct Statement {
  Item map;
  std::optional<std::int64_t> alg;
  std::optional<ledger::Bytes> sig;
  const cbor_item_t* x5c = nullptr;
};
Result<Statement> read_statement(const AttestationObject& object) {
  std::size_t read = 0;
  Statement s;
  s.map = load(object.att_stmt, read);
  if (!s.map || !is_map(s.map.get()) || !object.parsed.credential) {
    return AttestationErrc::bad_statement;
  }
  if (const auto* alg = at(s.map.get(), "alg")) s.alg = int_of(alg);
  if (const auto* sig = at(s.map.get(), "sig")) s.sig = bytes_of(sig);
  s.x5c = at(s.map.get(), "x5c");
  return s;
}

// authData || clientDataHash: what every format's statement signs or hashes.
ledger::Bytes signed_over(const AttestationObject& object, ledger::ByteView client_data_hash) {
  ledger::Bytes out(object.auth_data);
  out.insert(out.end(), client_data_hash.begin(), client_data_hash.end());
  return out;
}

// An x5c array: the leaf first, then what may lead to a root (never taken to be one).
struct Chain {
  X509Ptr leaf;
  Stack untrusted;
  ledger::Bytes leaf_der;
};
Result<Chain> chain_of(const std::vector<ledger::Bytes>& ders) {
  if (ders.empty()) return AttestationErrc::bad_statement;
  Chain out{nullptr, Stack(sk_X509_new_null()), {}};
  if (!out.untrusted) return ledger::Errc::crypto_failure;
  for (std::size_t i = 0; i < ders.size(); ++i) {
    auto cert = certificate(ders[i]);
    if (!cert) return AttestationErrc::bad_certificate;
    if (i == 0) {
      out.leaf = std::move(cert);
      out.leaf_der = ders[i];
    } else if (sk_X509_push(out.untrusted.get(), cert.get()) > 0) {
      (void)cert.release();  // owned by the stack now
    } else {
      return ledger::Errc::crypto_failure;
    }
  }
  return out;
}

Result<Chain> read_x5c(const cbor_item_t* x5c) {
  if (!cbor_isa_array(x5c) || !cbor_array_is_definite(x5c) || cbor_array_size(x5c) == 0) {
    return AttestationErrc::bad_statement;
  }
  std::vector<ledger::Bytes> ders;
  for (std::size_t i = 0; i < cbor_array_size(x5c); ++i) {
    auto der = bytes_of(cbor_array_handle(x5c)[i]);
    if (!der) return AttestationErrc::bad_certificate;
    ders.push_back(std::move(*der));
  }
  return chain_of(ders);
}

// One DER element (OpenSSL's ASN1_get_object reads the header, long-form tags included):
// definite length only, within `end`.
struct Der {
  int tag = 0;
  int cls = 0;
  bool constructed = false;
  const unsigned char* body = nullptr;
  long length = 0;
};
std::optional<Der> next_der(const unsigned char*& p, const unsigned char* end) {
  if (p >= end) return std::nullopt;
  Der d;
  const unsigned char* q = p;
  const int r = ASN1_get_object(&q, &d.length, &d.tag, &d.cls, end - p);
  if ((r & 0x80) != 0 || r == 0x21 || d.length < 0 || d.length > end - q) return std::nullopt;
  d.constructed = (r & V_ASN1_CONSTRUCTED) != 0;
  d.body = q;
  p = q + d.length;
  return d;
}

// A small non-negative INTEGER or ENUMERATED body (the fields read here all fit in 4 bytes).
std::optional<std::int64_t> small_int(const Der& d) {
  if (d.constructed || d.length < 1 || d.length > 4 || (d.body[0] & 0x80) != 0) return std::nullopt;
  std::int64_t v = 0;
  for (long i = 0; i < d.length; ++i) v = (v << 8) | d.body[i];
  return v;
}

constexpr int kTagPurpose = 1;
constexpr int kTagAllApplications = 600;
constexpr int kTagOrigin = 702;
constexpr std::int64_t kPurposeSign = 2;

// An AuthorizationList: a SEQUENCE of [tag] EXPLICIT fields, of which three matter here.
std::optional<AndroidKeyDescription::List> authorization_list(const Der& seq) {
  if (seq.tag != V_ASN1_SEQUENCE || !seq.constructed) return std::nullopt;
  AndroidKeyDescription::List out;
  const unsigned char* p = seq.body;
  const unsigned char* end = seq.body + seq.length;
  while (p < end) {
    const auto field = next_der(p, end);
    if (!field || field->cls != V_ASN1_CONTEXT_SPECIFIC || !field->constructed) {
      return std::nullopt;
    }
    const unsigned char* q = field->body;
    const auto inner = next_der(q, field->body + field->length);
    if (!inner) return std::nullopt;
    if (field->tag == kTagPurpose) {
      if (inner->tag != V_ASN1_SET || !inner->constructed) return std::nullopt;
      const unsigned char* r = inner->body;
      while (r < inner->body + inner->length) {
        const auto purpose = next_der(r, inner->body + inner->length);
        const auto value =
            purpose && purpose->tag == V_ASN1_INTEGER ? small_int(*purpose) : std::nullopt;
        if (!value) return std::nullopt;
        out.purpose_sign = out.purpose_sign || *value == kPurposeSign;
      }
    } else if (field->tag == kTagOrigin) {
      if (inner->tag != V_ASN1_INTEGER || !(out.origin = small_int(*inner))) return std::nullopt;
    } else if (field->tag == kTagAllApplications) {
      out.all_applications = true;
    }
  }
  return out;
}

std::optional<AndroidKeyDescription> key_description(X509* leaf) {
  static const std::unique_ptr<ASN1_OBJECT, Deleter<ASN1_OBJECT, ASN1_OBJECT_free>> kOid(
      OBJ_txt2obj("1.3.6.1.4.1.11129.2.1.17", 1));
  const int ext = X509_get_ext_by_OBJ(leaf, kOid.get(), -1);
  if (ext < 0) return std::nullopt;
  const auto* data = X509_EXTENSION_get_data(X509_get_ext(leaf, ext));
  const unsigned char* p = ASN1_STRING_get0_data(data);
  const unsigned char* end = p + ASN1_STRING_length(data);
  const auto outer = next_der(p, end);
  if (!outer || outer->tag != V_ASN1_SEQUENCE || !outer->constructed || p != end) {
    return std::nullopt;
  }
  p = outer->body;
  end = outer->body + outer->length;
  std::array<Der, 8> f;
  for (auto& d : f) {
    auto next = next_der(p, end);
    if (!next) return std::nullopt;
    d = *next;
  }
  AndroidKeyDescription out;
  const auto level = f[1].tag == V_ASN1_ENUMERATED ? small_int(f[1]) : std::nullopt;
  if (f[0].tag != V_ASN1_INTEGER || !level || f[4].tag != V_ASN1_OCTET_STRING || f[4].constructed) {
    return std::nullopt;
  }
  out.attestation_security_level = static_cast<int>(*level);
  out.challenge.assign(f[4].body, f[4].body + f[4].length);
  auto software = authorization_list(f[6]);
  auto hardware = authorization_list(f[7]);
  if (!software || !hardware) return std::nullopt;
  out.software = *software;
  out.hardware = *hardware;
  return out;
}

// The chain leads to one of the policy's roots at its verification time: the leaf's hex
// SHA-256 fingerprint; untrusted_chain otherwise.
Result<std::string> trusted_fingerprint(const Chain& chain, const AttestationPolicy& policy) {
  if (policy.roots == nullptr) return AttestationErrc::untrusted_chain;
  StoreCtx ctx(X509_STORE_CTX_new());
  auto* store = static_cast<X509_STORE*>(const_cast<void*>(policy.roots->handle()));
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store, chain.leaf.get(), chain.untrusted.get()) != 1) {
    return ledger::Errc::crypto_failure;
  }
  if (policy.verify_at) {
    X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(*policy.verify_at));
  }
  if (X509_verify_cert(ctx.get()) != 1) return AttestationErrc::untrusted_chain;
  const auto fingerprint = ledger::crypto::sha256(chain.leaf_der);
  return ledger::to_hex(ledger::ByteView(fingerprint.data(), fingerprint.size()));
}

// Apple's nonce extension (WebAuthn apple and App Attest alike): SEQUENCE { [1] EXPLICIT OCTET
// STRING (32) } holding SHA-256(authData || clientDataHash), in its one DER encoding.
Result<void> check_nonce(X509* leaf, const AttestationObject& object,
                         ledger::ByteView client_data_hash) {
  const auto nonce = ledger::crypto::sha256(signed_over(object, client_data_hash));
  static const std::unique_ptr<ASN1_OBJECT, Deleter<ASN1_OBJECT, ASN1_OBJECT_free>> kNonceOid(
      OBJ_txt2obj("1.2.840.113635.100.8.2", 1));
  const int ext = X509_get_ext_by_OBJ(leaf, kNonceOid.get(), -1);
  if (ext < 0) return AttestationErrc::bad_certificate;
  const auto* data = X509_EXTENSION_get_data(X509_get_ext(leaf, ext));
  const auto* p = ASN1_STRING_get0_data(data);
  constexpr std::array<std::uint8_t, 6> kPrefix = {0x30, 0x24, 0xa1, 0x22, 0x04, 0x20};
  if (ASN1_STRING_length(data) != static_cast<int>(kPrefix.size() + nonce.size()) ||
      !std::equal(kPrefix.begin(), kPrefix.end(), p) ||
      !ledger::crypto::constant_time_equal(ledger::ByteView(p + kPrefix.size(), nonce.size()),
                                           ledger::ByteView(nonce.data(), nonce.size()))) {
    return AttestationErrc::nonce_mismatch;
  }
  return boost::outcome_v2::success();
}

// Whether the certificate's public key is `key` (the same P-256 point).
bool same_key(X509* cert, const jose::EcPublicKey& key) {
  EVP_PKEY* pkey = X509_get0_pubkey(cert);
  if (pkey == nullptr || EVP_PKEY_base_id(pkey) != EVP_PKEY_EC) return false;
  std::array<unsigned char, 133> point{};
  std::size_t n = 0;
  if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(),
                                      point.size(), &n) != 1) {
    return false;
  }
  const auto expected = key.sec1();
  return n == expected.size() && std::equal(expected.begin(), expected.end(), point.begin());
}

}  // namespace

std::string_view detail::attestation_reason(int code) noexcept {
  const auto i = static_cast<std::size_t>(code);
  return i < kAttestationReasons.size() ? kAttestationReasons[i] : "internal_error";
}

const std::error_category& attestation_category() noexcept {
  static const AttestationCategory category;
  return category;
}

Result<TrustStore> TrustStore::from_pem(std::string_view pem) {
  ledger::ossl::ErrorQueueScope errors;
  std::shared_ptr<X509_STORE> store(X509_STORE_new(), X509_STORE_free);
  ledger::ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!store || !bio) return ledger::Errc::crypto_failure;
  int added = 0;
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    if (X509_STORE_add_cert(store.get(), cert.get()) != 1) return ledger::Errc::key_invalid;
    ++added;
  }
  if (added == 0) return ledger::Errc::key_invalid;
  TrustStore out;
  out.store_ = std::static_pointer_cast<void>(store);
  return out;
}

Result<Attested> verify_packed(const AttestationObject& object, ledger::ByteView client_data_hash,
                               const AttestationPolicy& policy) {
  SECHEX_TRY(const auto stmt, read_statement(object));
  const auto& [map, alg, sig, x5c] = stmt;
  if (!alg || !sig) return AttestationErrc::bad_statement;
  if (*alg != -7) return AttestationErrc::alg_not_allowed;
  const auto signed_data = signed_over(object, client_data_hash);
  if (x5c == nullptr) {
    if (!policy.allow_self) return AttestationErrc::self_not_allowed;
    const auto& key = object.parsed.credential->key;
    if (key.alg != *alg || !key.es256) return AttestationErrc::alg_not_allowed;
    if (!key.es256->verify_der(signed_data, *sig)) return AttestationErrc::bad_signature;
    return Attested{"self", ""};
  }
  ledger::ossl::ErrorQueueScope errors;
  SECHEX_TRY(auto chain, read_x5c(x5c));
  SECHEX_TRYV(check_packed_leaf(chain.leaf.get(), object.parsed.credential->aaguid));
  // ES256: an EC key, ECDSA-SHA256 with a DER signature (jose's digest_verify).
  EVP_PKEY* leaf_key = X509_get0_pubkey(chain.leaf.get());
  if (leaf_key == nullptr || EVP_PKEY_base_id(leaf_key) != EVP_PKEY_EC ||
      !jose::detail::digest_verify(leaf_key, signed_data, sig->data(), sig->size())) {
    return AttestationErrc::bad_signature;
  }
  SECHEX_TRY(auto fingerprint, trusted_fingerprint(chain, policy));
  return Attested{"basic", std::move(fingerprint)};
}

Result<Attested> verify_apple(const AttestationObject& object, ledger::ByteView client_data_hash,
                              const AttestationPolicy& policy) {
  SECHEX_TRY(const auto stmt, read_statement(object));
  if (stmt.x5c == nullptr) return AttestationErrc::bad_statement;
  const auto& key = object.parsed.credential->key;
  if (!key.es256) return AttestationErrc::alg_not_allowed;
  ledger::ossl::ErrorQueueScope errors;
  SECHEX_TRY(auto chain, read_x5c(stmt.x5c));
  SECHEX_TRYV(check_nonce(chain.leaf.get(), object, client_data_hash));
  if (!same_key(chain.leaf.get(), *key.es256)) return AttestationErrc::key_mismatch;
  SECHEX_TRY(auto fingerprint, trusted_fingerprint(chain, policy));
  return Attested{"anonca", std::move(fingerprint)};
}

Result<AndroidKeyDescription> android_key_description(ledger::ByteView leaf_der) {
  ledger::ossl::ErrorQueueScope errors;
  auto leaf = certificate(ledger::Bytes(leaf_der.begin(), leaf_der.end()));
  if (!leaf) return AttestationErrc::bad_certificate;
  auto description = key_description(leaf.get());
  if (!description) return AttestationErrc::bad_certificate;
  return std::move(*description);
}

Result<std::string> verify_chain(const std::vector<ledger::Bytes>& chain,
                                 const AttestationPolicy& policy) {
  ledger::ossl::ErrorQueueScope errors;
  SECHEX_TRY(auto c, chain_of(chain));
  return trusted_fingerprint(c, policy);
}

Result<Attested> verify_android_key(const AttestationObject& object,
                                    ledger::ByteView client_data_hash,
                                    const AttestationPolicy& policy) {
  SECHEX_TRY(const auto stmt, read_statement(object));
  const auto& [map, alg, sig, x5c] = stmt;
  if (!alg || !sig || x5c == nullptr) return AttestationErrc::bad_statement;
  if (*alg != -7) return AttestationErrc::alg_not_allowed;
  const auto& key = object.parsed.credential->key;
  if (!key.es256) return AttestationErrc::alg_not_allowed;
  ledger::ossl::ErrorQueueScope errors;
  SECHEX_TRY(auto chain, read_x5c(x5c));
  EVP_PKEY* leaf_key = X509_get0_pubkey(chain.leaf.get());
  const auto signed_data = signed_over(object, client_data_hash);
  if (leaf_key == nullptr || EVP_PKEY_base_id(leaf_key) != EVP_PKEY_EC ||
      !jose::detail::digest_verify(leaf_key, signed_data, sig->data(), sig->size())) {
    return AttestationErrc::bad_signature;
  }
  if (!same_key(chain.leaf.get(), *key.es256)) return AttestationErrc::key_mismatch;
  const auto d = key_description(chain.leaf.get());
  if (!d) return AttestationErrc::bad_certificate;
  if (!std::equal(d->challenge.begin(), d->challenge.end(), client_data_hash.begin(),
                  client_data_hash.end())) {
    return AttestationErrc::challenge_mismatch;
  }
  // The key is scoped to the RP's app (§8.4.1: allApplications in neither list), and only what
  // the secure hardware enforces counts: what the OS claims in softwareEnforced does not.
  if (d->software.all_applications || d->hardware.all_applications) {
    return AttestationErrc::key_purpose;
  }
  if (d->attestation_security_level < 1) return AttestationErrc::not_hardware_backed;
  if (d->hardware.origin != 0) return AttestationErrc::key_not_generated;
  if (!d->hardware.purpose_sign) return AttestationErrc::key_purpose;
  SECHEX_TRY(auto fingerprint, trusted_fingerprint(chain, policy));
  return Attested{"basic", std::move(fingerprint)};
}

Result<Attested> verify_app_attest(const AttestationObject& object,
                                   ledger::ByteView client_data_hash,
                                   const AttestationPolicy& policy, const AppAttestApp& app) {
  SECHEX_TRY(const auto stmt, read_statement(object));
  const auto& credential = object.parsed.credential;
  if (stmt.x5c == nullptr) return AttestationErrc::bad_statement;
  // Every App Attest key is P-256: another key is a forged object, not an unsupported device.
  if (!credential->key.es256) return AttestationErrc::alg_not_allowed;
  ledger::ossl::ErrorQueueScope errors;
  SECHEX_TRY(auto chain, read_x5c(stmt.x5c));
  SECHEX_TRYV(check_nonce(chain.leaf.get(), object, client_data_hash));
  if (!same_key(chain.leaf.get(), *credential->key.es256)) return AttestationErrc::key_mismatch;
  // The key id is SHA-256 of the uncompressed point, and it is the credential id.
  const auto key_id = ledger::crypto::sha256(credential->key.es256->sec1());
  if (!std::equal(key_id.begin(), key_id.end(), credential->id.begin(), credential->id.end())) {
    return AttestationErrc::key_mismatch;
  }
  const auto app_hash = ledger::crypto::sha256(ledger::as_bytes(app.app_id));
  if (!std::equal(app_hash.begin(), app_hash.end(), object.parsed.rp_id_hash.begin(),
                  object.parsed.rp_id_hash.end())) {
    return AttestationErrc::wrong_rp;
  }
  if (object.parsed.sign_count != 0) return AttestationErrc::bad_statement;  // a fresh key: 0
  static constexpr std::array<std::uint8_t, 16> kProduction = {
      'a', 'p', 'p', 'a', 't', 't', 'e', 's', 't', 0, 0, 0, 0, 0, 0, 0};
  static constexpr std::array<std::uint8_t, 16> kDevelopment = {
      'a', 'p', 'p', 'a', 't', 't', 'e', 's', 't', 'd', 'e', 'v', 'e', 'l', 'o', 'p'};
  if (credential->aaguid == kDevelopment) {
    if (!app.allow_development) return AttestationErrc::development_key;
  } else if (credential->aaguid != kProduction) {
    return AttestationErrc::aaguid_mismatch;
  }
  // The chain last, as in the other verifiers: the costliest step.
  SECHEX_TRY(auto fingerprint, trusted_fingerprint(chain, policy));
  return Attested{"basic", std::move(fingerprint)};
}

bool device_unsupported(const std::error_code& ec) noexcept {
  return ec == AttestationErrc::unsupported_format || ec == AttestationErrc::key_unsupported;
}

Result<void> check_registration(const ClientData& client, const AuthenticatorData& auth,
                                const ExpectedRegistration& expected) {
  const auto same = [](std::string_view a, std::string_view b) {
    return ledger::crypto::constant_time_equal(
        ledger::ByteView(reinterpret_cast<const std::uint8_t*>(a.data()), a.size()),
        ledger::ByteView(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()));
  };
  if (client.type != "webauthn.create") return AttestationErrc::wrong_type;
  if (expected.challenge.empty() || !same(client.challenge, expected.challenge)) {
    return AttestationErrc::wrong_challenge;
  }
  if (client.origin != expected.origin || client.cross_origin || client.top_origin) {
    return AttestationErrc::wrong_origin;
  }
  if (!expected.app_attest) {
    const auto rp = ledger::crypto::sha256(ledger::ByteView(
        reinterpret_cast<const std::uint8_t*>(expected.rp_id.data()), expected.rp_id.size()));
    if (!std::equal(rp.begin(), rp.end(), auth.rp_id_hash.begin(), auth.rp_id_hash.end())) {
      return AttestationErrc::wrong_rp;
    }
    if (!auth.has(kUserPresent)) return AttestationErrc::user_not_present;
    if (!auth.has(kUserVerified)) return AttestationErrc::user_not_verified;
  }
  if (!auth.credential || !auth.credential->key.es256) return AttestationErrc::key_unsupported;
  return boost::outcome_v2::success();
}

Result<Attested> verify_attestation(const AttestationObject& object,
                                    ledger::ByteView client_data_hash,
                                    const AttestationPolicy& policy) {
  if (object.fmt == "packed") return verify_packed(object, client_data_hash, policy);
  if (object.fmt == "apple") return verify_apple(object, client_data_hash, policy);
  if (object.fmt == "android-key") return verify_android_key(object, client_data_hash, policy);
  if (object.fmt == "none") return AttestationErrc::format_none;
  if (object.fmt == "apple-appattest" && policy.app_attest) {
    AttestationPolicy apple = policy;
    apple.roots = policy.app_attest->roots;  // App Attest chains only to its own root
    return verify_app_attest(object, client_data_hash, apple, *policy.app_attest);
  }
  return AttestationErrc::unsupported_format;
}

}  // namespace sechex::api::webauthn
