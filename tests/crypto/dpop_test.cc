// DPoP proofs (api/crypto/dpop.h, RFC 9449, spec 000 FR-02): the RFC's own examples verify at
// their iat, and each way a proof can be spoofed is refused with its own reason (a catalogue,
// like the ledger's corruption catalogue), every case minted from a valid proof by one change.
#include "api/crypto/dpop.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "api/crypto/jose.h"

namespace sechex::api::dpop {
namespace {

using json = nlohmann::json;

json rfc9449() {
  std::ifstream in(std::string(SECHEX_SHARED_DIR) + "/testvectors/standards.json");
  EXPECT_TRUE(in) << "cannot open ../shared/testvectors/standards.json";
  return json::parse(in, nullptr, false)["rfc9449"];
}

TEST(Dpop, Rfc9449Figure2VerifiesAtItsIatAndGivesTheKeysThumbprint) {
  const auto v = rfc9449();
  ExpectedProof e;
  e.htm = v["fig2_htm"].get_ref<const std::string&>();
  const auto htu = normalize_htu(v["fig2_htu"].get<std::string>()).value();
  e.htu = htu;
  e.now_seconds = v["fig2_iat"].get<std::int64_t>();
  const auto jkt = v["jkt"].get<std::string>();
  e.jkt = jkt;
  const auto proof = verify_proof(v["fig2_token_request_proof"].get<std::string>(), e);
  ASSERT_TRUE(proof) << reason_code(proof.error());
  EXPECT_EQ(proof.value().jkt, jkt);
  EXPECT_EQ(proof.value().jti, "-BwC3ESc6acc2lTc");
  EXPECT_EQ(proof.value().iat, e.now_seconds);
}

TEST(Dpop, Rfc9449Figure13VerifiesWithTheHashOfItsAccessToken) {
  const auto v = rfc9449();
  const auto token = v["access_token"].get<std::string>();
  EXPECT_EQ(ath_of(token), v["ath"].get<std::string>());
  ExpectedProof e;
  e.htm = v["fig13_htm"].get_ref<const std::string&>();
  const auto htu = normalize_htu(v["fig13_htu"].get<std::string>()).value();
  e.htu = htu;
  e.access_token = token;
  const auto jkt = v["jkt"].get<std::string>();
  e.jkt = jkt;
  e.now_seconds = v["fig13_iat"].get<std::int64_t>();
  const auto proof = v["fig13_resource_proof"].get<std::string>();
  const auto ok = verify_proof(proof, e);
  ASSERT_TRUE(ok) << reason_code(ok.error());
  // The same proof with another token, or 31 s later, is refused.
  e.access_token = std::string_view("another token");
  EXPECT_EQ(verify_proof(proof, e).error(), DpopErrc::ath_mismatch);
  e.access_token = token;
  e.now_seconds += 31;
  EXPECT_EQ(verify_proof(proof, e).error(), DpopErrc::iat_too_old);
}

// A valid proof of a device key for one request, and the ways to spoil it.
class Proofs : public ::testing::Test {
 protected:
  static constexpr std::int64_t kNow = 1'767'225'600;
  static constexpr const char* kHtu = "https://id.example.com/v1/secure/exclusive/validate";
  static constexpr const char* kToken = "session-token";

  void SetUp() override {
    key_ = std::make_unique<jose::SigningKey>(jose::SigningKey::generate().value());
    jkt_ = key_->public_key().thumbprint();
  }
  static json jwk_of(const jose::SigningKey& k) {
    const auto& p = k.public_key();
    return {{"kty", "EC"},
            {"crv", "P-256"},
            {"x", jose::base64url_encode(ledger::ByteView(p.x().data(), p.x().size()))},
            {"y", jose::base64url_encode(ledger::ByteView(p.y().data(), p.y().size()))}};
  }
  json header() const { return {{"typ", "dpop+jwt"}, {"alg", "ES256"}, {"jwk", jwk_of(*key_)}}; }
  static json claims() {
    return {{"jti", "j-1"}, {"htm", "POST"}, {"htu", kHtu}, {"iat", kNow}, {"ath", ath_of(kToken)}};
  }
  std::string sign(const json& h, const json& c) const {
    return jose::jws_sign_es256(*key_, h.dump(), c.dump()).value();
  }
  ExpectedProof expected() const {
    ExpectedProof e;
    e.htm = "POST";
    e.htu = kHtu;
    e.access_token = std::string_view(kToken);
    e.jkt = jkt_;
    e.now_seconds = kNow;
    return e;
  }
  Result<VerifiedProof> check(const std::string& proof) const {
    return verify_proof(proof, expected());
  }

  std::unique_ptr<jose::SigningKey> key_;
  std::string jkt_;
};

TEST_F(Proofs, AProofOfTheBoundKeyForThisRequestPasses) {
  const auto ok = check(sign(header(), claims()));
  ASSERT_TRUE(ok) << reason_code(ok.error());
  EXPECT_EQ(ok.value().jkt, jkt_);
  EXPECT_EQ(ok.value().jti, "j-1");
}

// RFC 9449 §8: a proof's nonce claim is handed to the caller; one that is not a short string is
// refused.
TEST_F(Proofs, TheNonceClaimIsReturnedAndAMalformedOneRefused) {
  EXPECT_FALSE(check(sign(header(), claims())).value().nonce.has_value());
  auto with = claims();
  with["nonce"] = "n-1";
  EXPECT_EQ(check(sign(header(), with)).value().nonce, "n-1");
  with["nonce"] = 7;
  EXPECT_EQ(check(sign(header(), with)).error(), DpopErrc::bad_nonce);
  with["nonce"] = std::string(129, 'n');
  EXPECT_EQ(check(sign(header(), with)).error(), DpopErrc::bad_nonce);
}

// RFC 9449 §9: stateless server nonces live for the current and the previous time step, belong
// to their key, and nothing else passes.
TEST(DpopNonces, ANonceIsValidForItsStepAndTheNextAndOnlyUnderItsKey) {
  const NonceSource source(ledger::Bytes(32, 0x11), 60);
  const NonceSource other(ledger::Bytes(32, 0x22), 60);
  constexpr std::int64_t t = 1'767'225'600;  // a step boundary
  const auto n = source.current(t);
  EXPECT_EQ(n.size(), 43u);
  EXPECT_EQ(source.current(t + 59), n) << "one step";
  EXPECT_NE(source.current(t + 60), n);
  EXPECT_TRUE(source.valid(n, t));
  EXPECT_TRUE(source.valid(n, t + 119)) << "accepted during the next step too";
  EXPECT_FALSE(source.valid(n, t + 120));
  EXPECT_FALSE(source.valid(n, t - 1)) << "not before its step";
  EXPECT_FALSE(other.valid(n, t)) << "another key's nonce";
  EXPECT_FALSE(source.valid("", t));
  EXPECT_FALSE(source.valid(n.substr(1), t));
}

// 000 FR-02 and API.md: every spoof is refused, each for its own reason.
TEST_F(Proofs, EachKindOfSpoofIsRefusedWithItsReasonFR02) {
  const auto other = jose::SigningKey::generate().value();
  const std::string valid = sign(header(), claims());
  const auto with_header = [&](const std::function<void(json&)>& f) {
    auto h = header();
    f(h);
    return sign(h, claims());
  };
  const auto with_claims = [&](const std::function<void(json&)>& f) {
    auto c = claims();
    f(c);
    return sign(header(), c);
  };
  std::string tampered = valid;
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
  const struct {
    const char* what;
    std::string proof;
    DpopErrc reason;
  } cases[] = {
      {"oversized", std::string(8193, 'a'), DpopErrc::too_large},
      {"two segments", valid.substr(0, valid.rfind('.')), DpopErrc::malformed},
      {"padded base64", valid + "=", DpopErrc::malformed},
      {"payload not JSON",
       valid.substr(0, valid.find('.') + 1) + jose::base64url_encode(std::string_view("{")) +
           valid.substr(valid.rfind('.')),
       DpopErrc::malformed},
      {"typ JWT", with_header([](json& h) { h["typ"] = "JWT"; }), DpopErrc::bad_typ},
      {"no typ", with_header([](json& h) { h.erase("typ"); }), DpopErrc::bad_typ},
      {"alg none", with_header([](json& h) { h["alg"] = "none"; }), DpopErrc::alg_not_allowed},
      {"alg HS256", with_header([](json& h) { h["alg"] = "HS256"; }), DpopErrc::alg_not_allowed},
      {"crit", with_header([](json& h) { h["crit"] = json::array({"exp"}); }),
       DpopErrc::bad_header},
      {"x5c", with_header([](json& h) { h["x5c"] = json::array({"MII"}); }), DpopErrc::bad_header},
      {"no jwk", with_header([](json& h) { h.erase("jwk"); }), DpopErrc::bad_jwk},
      {"private jwk", with_header([](json& h) { h["jwk"]["d"] = "AAAA"; }), DpopErrc::bad_jwk},
      {"jwk off the curve", with_header([](json& h) { h["jwk"]["y"] = h["jwk"]["x"]; }),
       DpopErrc::bad_jwk},
      {"RSA jwk", with_header([](json& h) {
         h["jwk"] = {{"kty", "RSA"}, {"n", "AQAB"}, {"e", "AQAB"}};
       }),
       DpopErrc::bad_jwk},
      {"tampered signature", tampered, DpopErrc::bad_signature},
      {"signed by another key than its jwk",
       jose::jws_sign_es256(other, header().dump(), claims().dump()).value(),
       DpopErrc::bad_signature},
      {"no jti", with_claims([](json& c) { c.erase("jti"); }), DpopErrc::bad_jti},
      {"jti of 129 characters", with_claims([](json& c) { c["jti"] = std::string(129, 'j'); }),
       DpopErrc::bad_jti},
      {"htm GET", with_claims([](json& c) { c["htm"] = "GET"; }), DpopErrc::htm_mismatch},
      {"htm post", with_claims([](json& c) { c["htm"] = "post"; }), DpopErrc::htm_mismatch},
      {"htu of another host", with_claims([](json& c) {
         c["htu"] = "https://evil.example.com/v1/secure/exclusive/validate";
       }),
       DpopErrc::htu_mismatch},
      {"htu of another path",
       with_claims([](json& c) { c["htu"] = "https://id.example.com/v1/secure/exclusive/end"; }),
       DpopErrc::htu_mismatch},
      {"htu over http", with_claims([](json& c) {
         c["htu"] = "http://id.example.com/v1/secure/exclusive/validate";
       }),
       DpopErrc::htu_mismatch},
      {"htu not a URL", with_claims([](json& c) { c["htu"] = "/v1/secure/exclusive/validate"; }),
       DpopErrc::htu_mismatch},
      {"no iat", with_claims([](json& c) { c.erase("iat"); }), DpopErrc::bad_iat},
      {"fractional iat", with_claims([](json& c) { c["iat"] = kNow + 0.5; }), DpopErrc::bad_iat},
      {"iat 31 s old", with_claims([](json& c) { c["iat"] = kNow - 31; }), DpopErrc::iat_too_old},
      {"iat at INT64_MIN",
       with_claims([](json& c) { c["iat"] = std::numeric_limits<std::int64_t>::min(); }),
       DpopErrc::iat_too_old},
      {"iat 6 s ahead", with_claims([](json& c) { c["iat"] = kNow + 6; }), DpopErrc::iat_in_future},
      {"iat past INT64_MAX",
       with_claims([](json& c) { c["iat"] = std::numeric_limits<std::uint64_t>::max(); }),
       DpopErrc::bad_iat},
      {"no ath", with_claims([](json& c) { c.erase("ath"); }), DpopErrc::ath_mismatch},
      {"ath of another token", with_claims([](json& c) { c["ath"] = ath_of("stolen"); }),
       DpopErrc::ath_mismatch},
      {"a valid proof of another device's key",
       jose::jws_sign_es256(
           other, json{{"typ", "dpop+jwt"}, {"alg", "ES256"}, {"jwk", jwk_of(other)}}.dump(),
           claims().dump())
           .value(),
       DpopErrc::jkt_mismatch},
  };
  for (const auto& c : cases) {
    const auto r = check(c.proof);
    if (r) {
      ADD_FAILURE() << c.what << " was accepted";
      continue;
    }
    EXPECT_EQ(r.error(), make_error_code(c.reason))
        << c.what << ": refused as " << reason_code(r.error()) << ", expected "
        << reason_code(make_error_code(c.reason));
  }
}

TEST_F(Proofs, TheIatWindowIsThirtySecondsBackAndFiveAheadFR02) {
  for (const std::int64_t skew : {-30, -1, 0, 1, 5}) {
    auto c = claims();
    c["iat"] = kNow + skew;
    EXPECT_TRUE(check(sign(header(), c))) << skew;
  }
}

TEST_F(Proofs, WithoutAnAccessTokenOrBoundKeyNeitherIsChecked) {
  auto c = claims();
  c.erase("ath");
  ExpectedProof e = expected();
  e.access_token.reset();
  e.jkt.reset();
  const auto ok = verify_proof(sign(header(), c), e);
  ASSERT_TRUE(ok) << reason_code(ok.error());
  EXPECT_EQ(ok.value().jkt, jkt_) << "the caller binds the session to this thumbprint";
}

TEST(Htu, NormalisesSchemeHostDefaultPortQueryAndFragmentOnly) {
  EXPECT_EQ(normalize_htu("HTTPS://ID.Example.COM:443/v1/X?y=1#z"), "https://id.example.com/v1/X");
  EXPECT_EQ(normalize_htu("http://id.example.com:80"), "http://id.example.com/");
  EXPECT_EQ(normalize_htu("https://id.example.com:8443/a"), "https://id.example.com:8443/a");
  EXPECT_EQ(normalize_htu("http://[::1]:8080/a"), "http://[::1]:8080/a");
  EXPECT_EQ(normalize_htu("https://[::1]/a"), "https://[::1]/a");
  EXPECT_EQ(normalize_htu("https://id.example.com/a/B"), "https://id.example.com/a/B")
      << "the path is compared as sent";
  for (const char* bad : {"", "/v1/x", "ftp://id.example.com/", "https://", "https:///a",
                          "https://u:p@id.example.com/", "https://id.example.com/a b",
                          "https://id.example.com/\r\nX: y", "https://::/a", "https://:://x",
                          "https://a:b:c/", "https://id.example.com:80a/", "https://[]/a",
                          "https://[::1/a", "https://[::1]x/a", "https://a]b/"}) {
    EXPECT_FALSE(normalize_htu(bad)) << bad;
  }
  EXPECT_EQ(normalize_htu("https://id.example.com:/a"), "https://id.example.com/a")
      << "an empty port is the default one (RFC 3986 6.2.3)";
}

// Found by fuzz.dpop: an authority of colons lost one per pass, so the normal form was not one.
TEST(Htu, NormalisingTwiceChangesNothing) {
  for (const char* url : {"HTTPS://ID.Example.COM:443/v1/X?y=1#z", "http://[::1]:8080/a",
                          "https://id.example.com:/a", "https://h:0443/", "https://h//x"}) {
    const auto once = normalize_htu(url);
    ASSERT_TRUE(once) << url;
    EXPECT_EQ(normalize_htu(*once), once) << url;
  }
}

TEST(DpopErrors, EveryReasonHasAStableName) {
  EXPECT_EQ(reason_code(make_error_code(DpopErrc::htu_mismatch)), "htu_mismatch");
  EXPECT_EQ(reason_code(make_error_code(DpopErrc::jkt_mismatch)), "jkt_mismatch");
  EXPECT_EQ(reason_code(std::make_error_code(std::errc::io_error)), "internal_error");
}

}  // namespace
}  // namespace sechex::api::dpop
