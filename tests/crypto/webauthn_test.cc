// WebAuthn registration data (api/crypto/webauthn.h) against the W3C Level 3 §16 vectors
// (../shared/testvectors/webauthn), data nobody here made; and hostile encodings of it.
#include "api/crypto/webauthn.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "ledger/crypto.h"

namespace sechex::api::webauthn {
namespace {

using json = nlohmann::json;

ledger::Bytes hex(const json& v) {
  ledger::Bytes out;
  EXPECT_TRUE(v.is_string() && ledger::from_hex(v.get<std::string>(), out)) << v;
  return out;
}

json vectors() {
  std::ifstream in(std::string(SECHEX_SHARED_DIR) +
                   "/testvectors/webauthn/w3c-level3-section16.json");
  EXPECT_TRUE(in) << "cannot open the W3C vectors";
  return json::parse(in, nullptr, false)["registration"];
}

TEST(WebAuthn, EveryW3cVectorParsesWithItsRpCredentialAndKeyType) {
  const auto rp = ledger::crypto::sha256(ledger::as_bytes(std::string("example.org")));
  const auto all = vectors();
  ASSERT_EQ(all.size(), 16u);
  for (const auto& v : all) {
    const std::string name = v["name"];
    const auto client_bytes = hex(v["clientDataJSON"]);
    const auto client = parse_client_data(
        std::string_view(reinterpret_cast<const char*>(client_bytes.data()), client_bytes.size()));
    ASSERT_TRUE(client) << name << ": " << reason_code(client.error());
    EXPECT_EQ(client.value().type, "webauthn.create") << name;
    EXPECT_EQ(client.value().challenge, jose::base64url_encode(hex(v["challenge"]))) << name;
    EXPECT_EQ(client.value().origin, "https://example.org") << name;

    const auto object = parse_attestation_object(hex(v["attestationObject"]));
    ASSERT_TRUE(object) << name << ": " << reason_code(object.error());
    const auto& o = object.value();
    EXPECT_EQ(o.fmt, v["format"].get<std::string>()) << name;
    EXPECT_TRUE(std::equal(rp.begin(), rp.end(), o.parsed.rp_id_hash.begin())) << name;
    EXPECT_TRUE(o.parsed.has(kUserPresent)) << name;
    ASSERT_TRUE(o.parsed.credential) << name;
    EXPECT_EQ(o.parsed.credential->id, hex(v["credentialID"])) << name;
    const auto& key = o.parsed.credential->key;
    const std::string algorithms = v["algorithms"][0];
    // Only EC2 P-256 ES256 is a device key exclusive mode accepts (the others: device_unsupported).
    EXPECT_EQ(key.es256.has_value(), algorithms == "AlgES256") << name << " alg " << key.alg;
    const std::map<std::string, std::int64_t> cose_alg = {{"AlgES256", -7},
                                                          {"AlgES384", -35},
                                                          {"AlgES512", -36},
                                                          {"AlgRS256", -257},
                                                          {"AlgEdDSA", -8}};
    EXPECT_EQ(key.alg, cose_alg.at(algorithms)) << name;
    EXPECT_FALSE(o.att_stmt.empty()) << name;
  }
}

TEST(WebAuthn, AuthenticatorDataThatOverrunsOrTrailsIsRefused) {
  const auto v = vectors()[0];  // NoneES256
  const auto o = parse_attestation_object(hex(v["attestationObject"])).value();
  const auto& auth = o.auth_data;
  ASSERT_TRUE(parse_authenticator_data(auth));
  // Cut anywhere: never accepted, never a crash.
  for (std::size_t n = 0; n < auth.size(); ++n) {
    EXPECT_EQ(parse_authenticator_data(ledger::ByteView(auth.data(), n)).error(),
              WebAuthnErrc::bad_auth_data)
        << "cut at " << n;
  }
  auto trailing = auth;
  trailing.push_back(0);
  EXPECT_EQ(parse_authenticator_data(trailing).error(), WebAuthnErrc::bad_auth_data);
  // A credential id length that runs past the end.
  auto overrun = auth;
  overrun[32 + 1 + 4 + 16] = 0xff;
  EXPECT_EQ(parse_authenticator_data(overrun).error(), WebAuthnErrc::bad_auth_data);
  // The ED flag set with no extensions map after the key.
  auto extensions = auth;
  extensions[32] |= kExtensions;
  EXPECT_EQ(parse_authenticator_data(extensions).error(), WebAuthnErrc::bad_auth_data);
}

TEST(WebAuthn, AttestationObjectsOfTheWrongShapeAreRefused) {
  const auto good = hex(vectors()[0]["attestationObject"]);
  auto trailing = good;
  trailing.push_back(0x00);
  EXPECT_EQ(parse_attestation_object(trailing).error(), WebAuthnErrc::bad_cbor);
  EXPECT_EQ(parse_attestation_object(ledger::ByteView(good.data(), good.size() - 1)).error(),
            WebAuthnErrc::bad_cbor);
  EXPECT_EQ(parse_attestation_object(ledger::Bytes(kMaxAttestationObject + 1, 0xa0)).error(),
            WebAuthnErrc::too_large);
  // An array, not a map; a map without authData; fmt as a number.
  EXPECT_EQ(parse_attestation_object(ledger::Bytes{0x80}).error(), WebAuthnErrc::bad_attestation);
  EXPECT_EQ(parse_attestation_object(ledger::Bytes{0xa0}).error(), WebAuthnErrc::bad_attestation);
  const ledger::Bytes fmt_number = {0xa3, 0x63, 'f', 'm', 't', 0x01, 0x67, 'a', 't',
                                    't',  'S',  't', 'm', 't', 0xa0, 0x68, 'a', 'u',
                                    't',  'h',  'D', 'a', 't', 'a',  0x40};
  EXPECT_EQ(parse_attestation_object(fmt_number).error(), WebAuthnErrc::bad_attestation);
  const ledger::Bytes indefinite = {0xa3, 0x63, 'f', 'm', 't', 0x64, 'n',  'o',  'n',  'e', 0x67,
                                    'a',  't',  't', 'S', 't', 'm',  't',  0xa0, 0x68, 'a', 'u',
                                    't',  'h',  'D', 'a', 't', 'a',  0x5f, 0x41, 0x00, 0xff};
  EXPECT_EQ(parse_attestation_object(indefinite).error(), WebAuthnErrc::bad_cbor)
      << "CTAP2 canonical CBOR has no indefinite lengths";
  // Headers that declare more than the input holds are refused before anything is allocated
  // for them: an array of 2^30 elements, a byte string of 2^62 bytes, a map of 2^32 pairs.
  for (const ledger::Bytes& huge :
       {ledger::Bytes{0x9a, 0x40, 0x00, 0x00, 0x00}, ledger::Bytes{0x5b, 0x40, 0, 0, 0, 0, 0, 0, 0},
        ledger::Bytes{0xbb, 0, 0, 0, 1, 0, 0, 0, 0}}) {
    EXPECT_EQ(parse_attestation_object(huge).error(), WebAuthnErrc::bad_cbor);
  }
  // Nesting far deeper than any attestation: refused, not a stack overflow.
  ledger::Bytes deep(kMaxAttestationObject, 0x81);
  EXPECT_FALSE(parse_attestation_object(deep));
}

TEST(WebAuthn, ClientDataMustBeAnObjectWithItsThreeStrings) {
  EXPECT_TRUE(parse_client_data(
      R"({"type":"webauthn.create","challenge":"AAAA","origin":"https://a","crossOrigin":false})"));
  for (
      const char* bad :
      {"", "[]", R"({"type":"webauthn.create","challenge":"AAAA"})",
       R"({"type":1,"challenge":"AAAA","origin":"https://a"})",
       R"({"type":"webauthn.create","challenge":"AAAA","origin":"https://a","crossOrigin":"yes"})",
       R"({"type":"webauthn.create","type":"webauthn.get","challenge":"AAAA","origin":"https://a"})"}) {
    EXPECT_EQ(parse_client_data(bad).error(), WebAuthnErrc::bad_client_data) << bad;
  }
  EXPECT_EQ(parse_client_data(std::string(kMaxClientData + 1, ' ')).error(),
            WebAuthnErrc::too_large);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A vector by name, parsed, with the hash of its client data.
struct Registration {
  AttestationObject object;
  ledger::Hash client_data_hash{};
};
Registration registration(const std::string& name) {
  for (const auto& v : vectors()) {
    if (v["name"] != name) continue;
    Registration r{parse_attestation_object(hex(v["attestationObject"])).value(), {}};
    r.client_data_hash = ledger::crypto::sha256(hex(v["clientDataJSON"]));
    return r;
  }
  ADD_FAILURE() << "no vector " << name;
  return {};
}

class Attestation : public ::testing::Test {
 protected:
  void SetUp() override {
    roots_ = std::make_unique<TrustStore>(
        TrustStore::from_pem(
            slurp(std::string(SECHEX_SHARED_DIR) + "/testvectors/webauthn/w3c-test-root.pem"))
            .value());
  }
  AttestationPolicy policy() const { return {roots_.get(), false, std::nullopt, std::nullopt}; }
  std::unique_ptr<TrustStore> roots_;
};

TEST_F(Attestation, FullAttestationOfEveryW3cVectorChainsToTheTestRoot) {
  for (const char* name : {"PackedES256WithMDS", "PackedES384WithMDS", "PackedES512WithMDS",
                           "PackedRS256WithMDS", "PackedEdDSAWithMDS"}) {
    const auto r = registration(name);
    const auto ok = verify_packed(r.object, r.client_data_hash, policy());
    ASSERT_TRUE(ok) << name << ": " << ok.error().message();
    EXPECT_EQ(ok.value().type, "basic") << name;
    EXPECT_EQ(ok.value().chain_fingerprint.size(), 64u) << name;
  }
}

TEST_F(Attestation, SelfAttestationPassesOnlyWhenAllowed) {
  const auto r = registration("PackedSelfES256");
  EXPECT_EQ(verify_packed(r.object, r.client_data_hash, policy()).error(),
            AttestationErrc::self_not_allowed);
  auto allow = policy();
  allow.allow_self = true;
  const auto ok = verify_packed(r.object, r.client_data_hash, allow);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok.value().type, "self");
  auto other = r.client_data_hash;
  other[0] ^= 1;
  EXPECT_EQ(verify_packed(r.object, other, allow).error(), AttestationErrc::bad_signature);
}

TEST_F(Attestation, AChainIsTrustedOnlyUnderItsRootAndWithinItsValidity) {
  const auto r = registration("PackedES256WithMDS");
  EXPECT_EQ(
      verify_packed(r.object, r.client_data_hash, {nullptr, false, std::nullopt, std::nullopt})
          .error(),
      AttestationErrc::untrusted_chain);
  const auto apple = TrustStore::from_pem(
      slurp(std::string(SECHEX_SHARED_DIR) +
            "/testvectors/webauthn/appattest/apple-app-attestation-root-ca.pem"));
  ASSERT_TRUE(apple);
  EXPECT_EQ(verify_packed(r.object, r.client_data_hash,
                          {&apple.value(), false, std::nullopt, std::nullopt})
                .error(),
            AttestationErrc::untrusted_chain);
  auto before = policy();
  before.verify_at = 1'672'531'200;  // 2023-01-01, before the test root's 2024
  EXPECT_EQ(verify_packed(r.object, r.client_data_hash, before).error(),
            AttestationErrc::untrusted_chain);
  auto within = policy();
  within.verify_at = 33'229'440'000;  // in 3023, within the test root's validity (to 3024)
  EXPECT_TRUE(verify_packed(r.object, r.client_data_hash, within));
  auto expired = policy();
  expired.verify_at = 33'300'000'000;  // in 3025: the root has expired
  EXPECT_EQ(verify_packed(r.object, r.client_data_hash, expired).error(),
            AttestationErrc::untrusted_chain);
}

TEST_F(Attestation, AStatementThatDoesNotMatchItsDataIsRefused) {
  const auto r = registration("PackedES256WithMDS");
  auto other_client = r.client_data_hash;
  other_client[31] ^= 1;
  EXPECT_EQ(verify_packed(r.object, other_client, policy()).error(),
            AttestationErrc::bad_signature);
  auto other_auth = r.object;
  other_auth.auth_data[33 + 3] ^= 1;  // the signature counter
  EXPECT_EQ(verify_packed(other_auth, r.client_data_hash, policy()).error(),
            AttestationErrc::bad_signature);
  auto no_stmt = r.object;
  no_stmt.att_stmt = {0xa0};  // {}
  EXPECT_EQ(verify_packed(no_stmt, r.client_data_hash, policy()).error(),
            AttestationErrc::bad_statement);
  // §8.2.1: the aaguid is compared only when the leaf carries id-fido-gen-ce-aaguid; this
  // vector's leaf does not, so another model's aaguid is not a refusal (the synthetic-CA
  // negatives of issue 14 cover a leaf that names one).
  auto other_model = r.object;
  other_model.parsed.credential->aaguid[0] ^= 1;
  EXPECT_TRUE(verify_packed(other_model, r.client_data_hash, policy()));
}

// §16.15: Apple anonymous attestation, under the same synthetic root as the W3C packed vectors.
TEST_F(Attestation, TheW3cAppleVectorVerifiesAndItsNonceBindsTheClientData) {
  const auto r = registration("AppleAnonymousES256");
  const auto ok = verify_apple(r.object, r.client_data_hash, policy());
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok.value().type, "anonca");
  EXPECT_EQ(ok.value().chain_fingerprint.size(), 64u);
  EXPECT_EQ(verify_attestation(r.object, r.client_data_hash, policy()).value().type, "anonca")
      << "dispatched by fmt";

  auto other_client = r.client_data_hash;
  other_client[0] ^= 1;
  EXPECT_EQ(verify_apple(r.object, other_client, policy()).error(),
            AttestationErrc::nonce_mismatch);
  auto other_auth = r.object;
  other_auth.auth_data[33 + 3] ^= 1;  // the signature counter: another nonce
  EXPECT_EQ(verify_apple(other_auth, r.client_data_hash, policy()).error(),
            AttestationErrc::nonce_mismatch);
  // The nonce matches but the credential key is not the one the leaf certifies.
  const auto self = registration("PackedSelfES256");
  auto swapped_key = r.object;
  swapped_key.parsed.credential->key = self.object.parsed.credential->key;
  EXPECT_EQ(verify_apple(swapped_key, r.client_data_hash, policy()).error(),
            AttestationErrc::key_mismatch);
  EXPECT_EQ(verify_apple(r.object, r.client_data_hash, {nullptr, false, std::nullopt, std::nullopt})
                .error(),
            AttestationErrc::untrusted_chain);
  auto expired = policy();
  expired.verify_at = 33'300'000'000;  // in 3025: the root has expired
  EXPECT_EQ(verify_apple(r.object, r.client_data_hash, expired).error(),
            AttestationErrc::untrusted_chain);
  auto no_chain = r.object;
  no_chain.att_stmt = {0xa0};  // {}
  EXPECT_EQ(verify_apple(no_chain, r.client_data_hash, policy()).error(),
            AttestationErrc::bad_statement);
  // A packed statement is not an apple one: no nonce extension on its leaf.
  const auto packed = registration("PackedES256WithMDS");
  EXPECT_EQ(verify_apple(packed.object, packed.client_data_hash, policy()).error(),
            AttestationErrc::bad_certificate);
}

// API.md: "none" is refused (401 attestation_failed), formats the server does not verify are
// 400 device_unsupported; every W3C vector gets one of the answers, none passes by default.
TEST_F(Attestation, NoneIsRefusedAndUnknownFormatsAreUnsupported) {
  std::map<std::string, std::error_code> seen;
  for (const auto& v : vectors()) {
    const auto name = v["name"].get<std::string>();
    const auto r = registration(name);
    const auto verdict = verify_attestation(r.object, r.client_data_hash, policy());
    const auto format = v["format"].get<std::string>();
    if (format == "none") {
      EXPECT_EQ(verdict.error(), AttestationErrc::format_none) << name;
    } else if (format == "tpm" || format == "fido-u2f") {
      EXPECT_EQ(verdict.error(), AttestationErrc::unsupported_format) << name;
    } else if (format == "android-key") {
      EXPECT_EQ(verdict.error(), AttestationErrc::not_hardware_backed) << name;
    } else if (name == "PackedSelfES256") {
      EXPECT_EQ(verdict.error(), AttestationErrc::self_not_allowed) << name;
    } else {
      EXPECT_TRUE(verdict) << name << ": " << verdict.error().message();
    }
  }
  EXPECT_EQ(reason_code(make_error_code(AttestationErrc::format_none)), "format_none");
}

// The certificates of a PEM file, as DER, in file order (leaf first).
std::vector<ledger::Bytes> pem_chain(const std::string& path) {
  const auto pem = slurp(path);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::vector<ledger::Bytes> out;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    unsigned char* der = nullptr;
    const int n = i2d_X509(cert, &der);
    if (n > 0) out.emplace_back(der, der + n);
    OPENSSL_free(der);
    X509_free(cert);
  }
  ERR_clear_error();  // the end of the file
  return out;
}

std::string android_dir() {
  return std::string(SECHEX_SHARED_DIR) + "/testvectors/webauthn/android-key/";
}

// Real Android Key Attestation chains (../shared/testvectors/webauthn/README.md), verified at
// the times the README pins (their leaves and intermediates have expired since): one device on
// Google's 2026 EC root, one on the RSA-4096 root; neither x5c carries its root.
TEST(AndroidKey, RealDeviceChainsLeadToGooglesRootsAtTheirPinnedTimes) {
  const auto google =
      TrustStore::from_pem(slurp(android_dir() + "google-hardware-attestation-roots.pem"));
  ASSERT_TRUE(google);
  const auto w3c = TrustStore::from_pem(
      slurp(std::string(SECHEX_SHARED_DIR) + "/testvectors/webauthn/w3c-test-root.pem"));
  ASSERT_TRUE(w3c);
  for (const auto& [file, at] :
       {std::pair<std::string, std::int64_t>{"tegu-sdk36-chain.pem", 1'772'323'200},
        std::pair<std::string, std::int64_t>{"akita-sdk34-chain.pem", 1'727'740'800}}) {
    const auto chain = pem_chain(android_dir() + file);
    ASSERT_GE(chain.size(), 2u) << file;
    const auto ok = verify_chain(chain, {&google.value(), false, at, std::nullopt});
    ASSERT_TRUE(ok) << file << ": " << ok.error().message();
    EXPECT_EQ(ok.value().size(), 64u);
    EXPECT_EQ(verify_chain(chain, {&w3c.value(), false, at, std::nullopt}).error(),
              AttestationErrc::untrusted_chain)
        << file << " under another root";
    EXPECT_EQ(verify_chain(chain, {&google.value(), false, 4'102'444'800, std::nullopt}).error(),
              AttestationErrc::untrusted_chain)
        << file << " in 2100, when its certificates have expired";
    std::vector<ledger::Bytes> leaf_only{chain.front()};
    EXPECT_EQ(verify_chain(leaf_only, {&google.value(), false, at, std::nullopt}).error(),
              AttestationErrc::untrusted_chain)
        << file << ": the intermediates are needed";

    // The leaf's KeyDescription as a real TEE writes it: hardware-backed, generated in the TEE,
    // for signing, not for all applications.
    const auto d = android_key_description(chain.front());
    ASSERT_TRUE(d) << file << ": " << d.error().message();
    EXPECT_GE(d.value().attestation_security_level, 1) << file;
    EXPECT_EQ(d.value().hardware.origin, 0) << file;
    EXPECT_TRUE(d.value().hardware.purpose_sign) << file;
    EXPECT_FALSE(d.value().hardware.all_applications || d.value().software.all_applications);
    EXPECT_FALSE(d.value().challenge.empty()) << file;
  }
  // An intermediate has no KeyDescription.
  EXPECT_EQ(android_key_description(pem_chain(android_dir() + "tegu-sdk36-chain.pem")[1]).error(),
            AttestationErrc::bad_certificate);
}

// §16.14: the W3C android-key vector's key description says security level Software and its
// authorization lists are empty, so nothing shows the key was generated in secure hardware: a
// strict verifier refuses it, after its signature, key and challenge have checked out.
TEST_F(Attestation, TheW3cAndroidKeyVectorIsRefusedByTheStrictVerifier) {
  const auto r = registration("AndroidKeyES256");
  const auto verdict = verify_android_key(r.object, r.client_data_hash, policy());
  ASSERT_FALSE(verdict);
  EXPECT_EQ(verdict.error(), AttestationErrc::not_hardware_backed) << verdict.error().message();
  EXPECT_EQ(verify_attestation(r.object, r.client_data_hash, policy()).error(),
            AttestationErrc::not_hardware_backed);
  auto other_client = r.client_data_hash;
  other_client[0] ^= 1;
  EXPECT_EQ(verify_android_key(r.object, other_client, policy()).error(),
            AttestationErrc::bad_signature);
  const auto self = registration("PackedSelfES256");
  auto swapped_key = r.object;
  swapped_key.parsed.credential->key = self.object.parsed.credential->key;
  EXPECT_EQ(verify_android_key(swapped_key, r.client_data_hash, policy()).error(),
            AttestationErrc::key_mismatch);
}

// WebAuthn §7.1 around the statement, on every W3C vector: its own challenge, origin and RP pass
// (UV permitting), and one change of each is refused for that reason. Cross-origin ceremonies
// (§16.4, §16.5) are refused: exclusive mode has no cross-origin opt-in.
TEST(Registration, EveryW3cVectorMatchesItsOwnChallengeOriginAndRpOnly) {
  int verified = 0;
  for (const auto& v : vectors()) {
    const auto name = v["name"].get<std::string>();
    const auto cd = hex(v["clientDataJSON"]);
    const auto client = parse_client_data(std::string(cd.begin(), cd.end())).value();
    const auto object = parse_attestation_object(hex(v["attestationObject"])).value();
    const auto challenge = jose::base64url_encode(ledger::ByteView(hex(v["challenge"])));
    const ExpectedRegistration ok{challenge, "https://example.org", "example.org"};
    const auto verdict = check_registration(client, object.parsed, ok);
    if (client.cross_origin || client.top_origin) {
      EXPECT_EQ(verdict.error(), AttestationErrc::wrong_origin) << name;
      continue;
    }
    if (!object.parsed.has(kUserVerified)) {
      EXPECT_EQ(verdict.error(), AttestationErrc::user_not_verified) << name;
      continue;
    }
    if (!object.parsed.credential->key.es256) {
      EXPECT_EQ(verdict.error(), AttestationErrc::key_unsupported) << name;
      EXPECT_TRUE(device_unsupported(verdict.error()));
      continue;
    }
    ASSERT_TRUE(verdict) << name << ": " << verdict.error().message();
    ++verified;
    const auto refused = [&](ExpectedRegistration e) {
      const auto r = check_registration(client, object.parsed, e);
      return r ? std::error_code() : r.error();
    };
    EXPECT_EQ(refused({"AAAA", ok.origin, ok.rp_id}), AttestationErrc::wrong_challenge) << name;
    EXPECT_EQ(refused({"", ok.origin, ok.rp_id}), AttestationErrc::wrong_challenge) << name;
    EXPECT_EQ(refused({challenge, "https://example.org:8443", ok.rp_id}),
              AttestationErrc::wrong_origin)
        << name;
    EXPECT_EQ(refused({challenge, "http://example.org", ok.rp_id}), AttestationErrc::wrong_origin)
        << name;
    EXPECT_EQ(refused({challenge, ok.origin, "example.com"}), AttestationErrc::wrong_rp) << name;
    auto get = client;
    get.type = "webauthn.get";
    EXPECT_EQ(check_registration(get, object.parsed, ok).error(), AttestationErrc::wrong_type);
    auto absent = object.parsed;
    absent.flags &= static_cast<std::uint8_t>(~kUserPresent);
    EXPECT_EQ(check_registration(client, absent, ok).error(), AttestationErrc::user_not_present);
    auto no_uv = object.parsed;
    no_uv.flags &= static_cast<std::uint8_t>(~kUserVerified);
    EXPECT_EQ(check_registration(client, no_uv, ok).error(), AttestationErrc::user_not_verified);
    EXPECT_FALSE(device_unsupported(AttestationErrc::user_not_verified));
  }
  EXPECT_GE(verified, 3) << "the checks must have passed on some vectors";
}

// ---- Apple App Attest: a real attestation (iOS 14.4), verified at the time the README pins ----

struct AppAttestVector {
  AttestationObject object;
  ledger::Bytes client_data_hash;
};
AppAttestVector app_attest_vector() {
  const auto yaml =
      slurp(std::string(SECHEX_SHARED_DIR) + "/testvectors/webauthn/appattest/ios-14.4.yaml");
  const auto field = [&](const std::string& name) {
    const auto at = yaml.find(name + ": ");
    EXPECT_NE(at, std::string::npos) << name;
    const auto start = at + name.size() + 2;
    return yaml.substr(start, yaml.find('\n', start) - start);
  };
  ledger::Bytes attestation, client_data;
  EXPECT_TRUE(ledger::crypto::base64_decode(field("attestationBase64"), attestation));
  EXPECT_TRUE(ledger::crypto::base64_decode(field("clientDataBase64"), client_data));
  auto object = parse_attestation_object(attestation);
  EXPECT_TRUE(object) << object.error().message();
  const auto hash = ledger::crypto::sha256(client_data);
  return {object ? std::move(object).value() : AttestationObject{},
          ledger::Bytes(hash.begin(), hash.end())};
}

TEST(AppAttest, TheRealIos14AttestationVerifiesForItsAppAtItsTime) {
  const auto apple = TrustStore::from_pem(
      slurp(std::string(SECHEX_SHARED_DIR) +
            "/testvectors/webauthn/appattest/apple-app-attestation-root-ca.pem"));
  ASSERT_TRUE(apple);
  const auto v = app_attest_vector();
  ASSERT_EQ(v.object.fmt, "apple-appattest");
  const AttestationPolicy at_its_time{&apple.value(), false, 1'611'403'000, std::nullopt};
  const AppAttestApp app{"6MURL8TA57.de.vincent-haupert.apple-appattest-poc", true};
  const auto ok = verify_app_attest(v.object, v.client_data_hash, at_its_time, app);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok.value().type, "basic");

  EXPECT_EQ(
      verify_app_attest(v.object, v.client_data_hash, at_its_time, {app.app_id, false}).error(),
      AttestationErrc::development_key)
      << "a development key where production is due";
  EXPECT_EQ(verify_app_attest(v.object, v.client_data_hash, at_its_time,
                              {"6MURL8TA57.com.example.other", true})
                .error(),
            AttestationErrc::wrong_rp)
      << "another app";
  auto other_client = v.client_data_hash;
  other_client[0] ^= 1;
  EXPECT_EQ(verify_app_attest(v.object, other_client, at_its_time, app).error(),
            AttestationErrc::nonce_mismatch);
  EXPECT_EQ(verify_app_attest(v.object, v.client_data_hash,
                              {&apple.value(), false, std::nullopt, std::nullopt}, app)
                .error(),
            AttestationErrc::untrusted_chain)
      << "its leaf expired three days after it was made";
  const auto w3c = TrustStore::from_pem(
      slurp(std::string(SECHEX_SHARED_DIR) + "/testvectors/webauthn/w3c-test-root.pem"));
  EXPECT_EQ(verify_app_attest(v.object, v.client_data_hash,
                              {&w3c.value(), false, 1'611'403'000, std::nullopt}, app)
                .error(),
            AttestationErrc::untrusted_chain);
  auto other_key = v.object;
  other_key.parsed.credential->id[0] ^= 1;
  EXPECT_EQ(verify_app_attest(other_key, v.client_data_hash, at_its_time, app).error(),
            AttestationErrc::key_mismatch)
      << "the credential id is not the key id";
}

}  // namespace
}  // namespace sechex::api::webauthn
