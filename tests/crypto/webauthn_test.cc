// WebAuthn registration data (api/crypto/webauthn.h) against the W3C Level 3 §16 vectors
// (../shared/testvectors/webauthn), data nobody here made; and hostile encodings of it.
#include "api/crypto/webauthn.h"

#include <gtest/gtest.h>

#include <fstream>
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

}  // namespace
}  // namespace sechex::api::webauthn
