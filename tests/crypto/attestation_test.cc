// The attestation verifiers (api/crypto/webauthn.h) against objects minted here from a test CA
// (attestation_mint.h): each test starts from a statement that verifies and changes one thing,
// so every refusal is shown to come from that one thing. The published vectors are in
// webauthn_test.cc.
#include <gtest/gtest.h>

#include "api/crypto/webauthn.h"
#include "attestation_mint.h"

namespace sechex::api::webauthn {
namespace {

namespace mint = testing::attest;
using mint::Bytes;

constexpr const char* kAaguidOid = "1.3.6.1.4.1.45724.1.1.4";
constexpr const char* kAndroidOid = "1.3.6.1.4.1.11129.2.1.17";
constexpr const char* kAppleNonceOid = "1.2.840.113635.100.8.2";
constexpr std::int64_t kNow = 1'800'000'000;  // 2027-01, within the test certificates

Bytes client_data_hash(const std::string& challenge = "challenge-1") {
  const auto h = ledger::crypto::sha256(ledger::as_bytes(challenge));
  return Bytes(h.begin(), h.end());
}

class MintedAttestation : public ::testing::Test {
 protected:
  MintedAttestation() {
    roots_ =
        std::make_unique<TrustStore>(TrustStore::from_pem(mint::pem_of(ca_.cert.get())).value());
  }
  AttestationPolicy policy() const { return {roots_.get(), false, kNow, std::nullopt}; }

  AttestationObject parse(const Bytes& cbor) {
    auto o = parse_attestation_object(cbor);
    EXPECT_TRUE(o) << o.error().message();
    return o ? std::move(o).value() : AttestationObject{};
  }

  // A packed full attestation: the credential key is `credential_`, the leaf key `leaf_key_`.
  struct Packed {
    mint::CertSpec leaf;
    mint::AuthDataSpec auth;
    std::int64_t alg = -7;
    bool tamper = false;
  };
  AttestationObject packed(const Packed& p, const Bytes& cdh) {
    const auto auth = mint::auth_data(p.auth, mint::cose_key(credential_.get()));
    auto sig = mint::sign(leaf_key_.get(), mint::concat(auth, cdh));
    if (p.tamper) sig[sig.size() / 2] ^= 1;
    const auto leaf = ca_.issue(leaf_key_.get(), p.leaf);
    return parse(
        mint::attestation_object("packed", {p.alg, sig, {mint::der_of(leaf.get())}}, auth));
  }

  // An android-key statement: the leaf certifies the credential key itself.
  AttestationObject android(const mint::KeyDescriptionSpec& kd, const Bytes& cdh) {
    const auto auth = mint::auth_data({}, mint::cose_key(credential_.get()));
    mint::CertSpec spec;
    spec.cn = "Android Keystore Key";
    spec.ou = "";
    spec.extensions.emplace_back(kAndroidOid, mint::key_description(kd));
    const auto leaf = ca_.issue(credential_.get(), spec);
    const auto sig = mint::sign(credential_.get(), mint::concat(auth, cdh));
    return parse(
        mint::attestation_object("android-key", {-7, sig, {mint::der_of(leaf.get())}}, auth));
  }

  // An apple statement whose nonce extension holds `nonce` (the right one when empty).
  AttestationObject apple(const Bytes& cdh, Bytes nonce = {}) {
    const auto auth = mint::auth_data({}, mint::cose_key(credential_.get()));
    if (nonce.empty()) {
      const auto h = ledger::crypto::sha256(mint::concat(auth, cdh));
      nonce.assign(h.begin(), h.end());
    }
    mint::CertSpec spec;
    spec.ou = "";
    spec.extensions.emplace_back(kAppleNonceOid,
                                 mint::tlv({0x30}, mint::tlv({0xa1}, mint::tlv({0x04}, nonce))));
    const auto leaf = ca_.issue(credential_.get(), spec);
    return parse(
        mint::attestation_object("apple", {std::nullopt, {}, {mint::der_of(leaf.get())}}, auth));
  }

  mint::TestCa ca_;
  mint::Key leaf_key_ = mint::ec_key();
  mint::Key credential_ = mint::ec_key();
  std::unique_ptr<TrustStore> roots_;
};

TEST_F(MintedAttestation, APackedStatementFromTheTestCaVerifiesAndNamesItsLeaf) {
  const auto cdh = client_data_hash();
  const auto ok = verify_attestation(packed({}, cdh), cdh, policy());
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok.value().type, "basic");
  EXPECT_EQ(ok.value().chain_fingerprint.size(), 64u);
}

TEST_F(MintedAttestation, PackedRefusalsEachForItsOwnReason) {
  const auto cdh = client_data_hash();
  const auto refused = [&](const Packed& p, ledger::ByteView hash, const AttestationPolicy& pol) {
    const auto r = verify_packed(packed(p, cdh), hash, pol);
    return r ? std::error_code() : r.error();
  };
  Packed tampered;
  tampered.tamper = true;
  EXPECT_EQ(refused(tampered, cdh, policy()), AttestationErrc::bad_signature);
  EXPECT_EQ(refused({}, client_data_hash("another challenge"), policy()),
            AttestationErrc::bad_signature)
      << "a statement made over other client data (another challenge or origin)";
  Packed rs256;
  rs256.alg = -257;
  EXPECT_EQ(refused(rs256, cdh, policy()), AttestationErrc::alg_not_allowed) << "RS256";

  // §8.2.1 leaf requirements.
  Packed no_ou;
  no_ou.leaf.ou = "Something Else";
  EXPECT_EQ(refused(no_ou, cdh, policy()), AttestationErrc::bad_certificate);
  Packed ca_leaf;
  ca_leaf.leaf.is_ca = true;
  EXPECT_EQ(refused(ca_leaf, cdh, policy()), AttestationErrc::bad_certificate);
  Packed named_model;  // the leaf names its model's aaguid: it must be the authenticator data's
  named_model.leaf.extensions.emplace_back(kAaguidOid, mint::tlv({0x04}, Bytes(16, 0x2a)));
  EXPECT_FALSE(refused(named_model, cdh, policy())) << "the same aaguid";
  named_model.auth.aaguid = Bytes(16, 0x2b);
  EXPECT_EQ(refused(named_model, cdh, policy()), AttestationErrc::aaguid_mismatch);

  // The chain: another root, an expired leaf, a root past its end.
  mint::TestCa other;
  const auto other_roots = TrustStore::from_pem(mint::pem_of(other.cert.get())).value();
  EXPECT_EQ(refused({}, cdh, {&other_roots, false, kNow, std::nullopt}),
            AttestationErrc::untrusted_chain);
  Packed expired;
  expired.leaf.not_after = kNow - 1;
  EXPECT_EQ(refused(expired, cdh, policy()), AttestationErrc::untrusted_chain);
  EXPECT_EQ(refused({}, cdh, {roots_.get(), false, 2'000'000'001, std::nullopt}),
            AttestationErrc::untrusted_chain);
}

TEST_F(MintedAttestation, AnAndroidKeyFromSecureHardwareVerifiesAndEachWeakerKeyIsRefused) {
  const auto cdh = client_data_hash();
  mint::KeyDescriptionSpec good;
  good.challenge = cdh;
  const auto ok = verify_attestation(android(good, cdh), cdh, policy());
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok.value().type, "basic");
  good.security_level = 2;  // StrongBox
  EXPECT_TRUE(verify_android_key(android(good, cdh), cdh, policy()));

  const auto refused = [&](mint::KeyDescriptionSpec kd) {
    const auto r = verify_android_key(android(kd, cdh), cdh, policy());
    return r ? std::error_code() : r.error();
  };
  auto wrong_challenge = good;
  wrong_challenge.challenge = client_data_hash("another challenge");
  EXPECT_EQ(refused(wrong_challenge), AttestationErrc::challenge_mismatch);
  auto software = good;
  software.security_level = 0;
  EXPECT_EQ(refused(software), AttestationErrc::not_hardware_backed);
  auto imported = good;
  imported.hardware_origin = 2;  // IMPORTED
  EXPECT_EQ(refused(imported), AttestationErrc::key_not_generated);
  auto no_origin = good;
  no_origin.hardware_origin.reset();
  EXPECT_EQ(refused(no_origin), AttestationErrc::key_not_generated);
  auto verify_only = good;
  verify_only.hardware_purposes = {3};  // VERIFY
  EXPECT_EQ(refused(verify_only), AttestationErrc::key_purpose);
  auto every_app = good;
  every_app.all_applications = true;
  EXPECT_EQ(refused(every_app), AttestationErrc::key_purpose);

  // Garbage in the extension is a bad certificate, not a crash or a pass.
  const auto auth = mint::auth_data({}, mint::cose_key(credential_.get()));
  for (const Bytes& junk : {Bytes{}, Bytes{0x30, 0x05, 0x02, 0x01}, Bytes{0x30, 0x80, 0x00, 0x00},
                            mint::tlv({0x30}, mint::tlv({0x02}, {1}))}) {
    mint::CertSpec spec;
    spec.extensions.emplace_back(kAndroidOid, junk);
    const auto leaf = ca_.issue(credential_.get(), spec);
    const auto object = parse(mint::attestation_object(
        "android-key",
        {-7, mint::sign(credential_.get(), mint::concat(auth, cdh)), {mint::der_of(leaf.get())}},
        auth));
    EXPECT_EQ(verify_android_key(object, cdh, policy()).error(), AttestationErrc::bad_certificate);
  }
}

TEST_F(MintedAttestation, AnAppleStatementVerifiesOnlyWithItsOwnNonce) {
  const auto cdh = client_data_hash();
  const auto ok = verify_attestation(apple(cdh), cdh, policy());
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok.value().type, "anonca");
  EXPECT_EQ(verify_apple(apple(cdh, Bytes(32, 0x11)), cdh, policy()).error(),
            AttestationErrc::nonce_mismatch);
  EXPECT_EQ(verify_apple(apple(cdh), client_data_hash("another challenge"), policy()).error(),
            AttestationErrc::nonce_mismatch);
}

// 000 FR-09: a key that is not P-256 is not silently accepted: the credential parses (so the
// answer can say device_unsupported with guidance) but no ES256 key comes out of it.
TEST_F(MintedAttestation, ACredentialKeyOfAnotherCurveIsNotAnEs256Key) {
  const auto p384 = mint::ec_key("P-384");
  const auto auth = mint::auth_data({}, mint::cose_key(p384.get(), 2, -35));
  const auto object = parse(mint::attestation_object("none", {std::nullopt, {}, {}}, auth));
  ASSERT_TRUE(object.parsed.credential);
  EXPECT_FALSE(object.parsed.credential->key.es256);
  EXPECT_EQ(object.parsed.credential->key.crv, 2);
}

}  // namespace
}  // namespace sechex::api::webauthn
