// ID tokens of a third-party OpenID provider and PKCE (api/crypto/oidc.h; issue 17, spec 003
// US6): the signature layer against the Wycheproof JWS vectors (RS256 and ES256 groups), every
// claim rule with tokens signed here, the JWKS import rules and the RFC 7636 Appendix B example.
#include "api/crypto/oidc.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <map>
#include <memory>
#include <string>

#include "support/wycheproof.h"

namespace {

using nlohmann::json;
using sechex::api::jose::base64url_encode;
using sechex::api::jose::JoseErrc;
using sechex::api::jose::SigningKey;
using sechex::api::oidc::IdTokenExpectations;
using sechex::api::oidc::ProviderKeys;
using sechex::api::oidc::verify_id_token;
using sechex::api::oidc::verify_signature;

// ---- Wycheproof: the signature layer ----

TEST(OidcWycheproof, Rs256AndEs256GroupsAgreeWithEveryVectorOthersAreRefused) {
  const auto doc = sechex::testing::load_wycheproof("json_web_signature_test.json");
  ASSERT_FALSE(doc.is_discarded());
  int rs256_valid = 0, rs256_invalid = 0, es256_valid = 0, es256_invalid = 0, others = 0;
  for (const auto& group : doc.at("testGroups")) {
    const auto pub = group.value("public", json());
    if (!pub.is_object() || pub.empty()) continue;  // HMAC groups: no public key at all
    const auto alg = pub.value("alg", std::string());
    const auto kty = pub.value("kty", pub.contains("crv") ? std::string("EC") : std::string("RSA"));
    auto key = pub;
    key["kty"] = kty;
    const auto keys = ProviderKeys::from_jwks(json{{"keys", json::array({key})}}.dump());
    const bool ours = (alg == "RS256" || alg == "ES256" || alg.empty());
    for (const auto& t : group.at("tests")) {
      const auto jws = t.at("jws").get<std::string>();
      const bool valid = t.at("result") == "valid";
      // The header decides which algorithm a vector is for (groups without `alg` have both).
      std::string header_alg;
      if (const auto dot = jws.find('.'); dot != std::string::npos) {
        sechex::ledger::Bytes h;
        if (sechex::api::jose::base64url_decode(jws.substr(0, dot), h)) {
          const auto parsed = json::parse(h.begin(), h.end(), nullptr, false);
          if (parsed.is_object()) header_alg = parsed.value("alg", std::string());
        }
      }
      const bool allowed = ours && (header_alg == "RS256" || header_alg == "ES256");
      if (!keys) {
        // Keys for other algorithms, encryption or a missing "verify" op are not imported.
        EXPECT_TRUE(!valid || !allowed || !pub.value("use", "sig").starts_with("sig"))
            << "tcId " << t.at("tcId") << ": " << t.value("comment", "");
        ++others;
        continue;
      }
      const auto r = verify_signature(jws, keys.value(), 16384);
      if (allowed && valid) {
        EXPECT_TRUE(r) << "tcId " << t.at("tcId") << ": " << r.error().message();
        ++(header_alg == "RS256" ? rs256_valid : es256_valid);
      } else {
        EXPECT_FALSE(r) << "tcId " << t.at("tcId") << " accepted: " << t.value("comment", "");
        if (allowed)
          ++(header_alg == "RS256" ? rs256_invalid : es256_invalid);
        else
          ++others;
      }
    }
  }
  std::printf(
      "[wycheproof] RS256 %d valid accepted, %d invalid refused; ES256 %d / %d; %d of "
      "other algorithms or unusable keys refused\n",
      rs256_valid, rs256_invalid, es256_valid, es256_invalid, others);
  EXPECT_EQ(rs256_valid, 8);
  EXPECT_EQ(rs256_invalid, 220);
  EXPECT_EQ(es256_valid, 2);
  EXPECT_EQ(es256_invalid, 31);
  EXPECT_EQ(others, 100);
}

// ---- Tokens signed here ----

std::shared_ptr<EVP_PKEY> rsa_key(unsigned bits) { return {EVP_RSA_gen(bits), EVP_PKEY_free}; }

std::string b64(const std::string& s) { return base64url_encode(s); }

json rsa_jwk(EVP_PKEY* key, const std::string& kid, unsigned exponent_bits_override = 0) {
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
  EXPECT_EQ(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e), 1);
  std::string nb(static_cast<std::size_t>(BN_num_bytes(n)), '\0');
  std::string eb(static_cast<std::size_t>(BN_num_bytes(e)), '\0');
  BN_bn2bin(n, reinterpret_cast<unsigned char*>(nb.data()));
  BN_bn2bin(e, reinterpret_cast<unsigned char*>(eb.data()));
  BN_free(n);
  BN_free(e);
  if (exponent_bits_override == 3) eb = std::string("\x03", 1);
  return json{{"kty", "RSA"}, {"kid", kid}, {"use", "sig"}, {"n", b64(nb)}, {"e", b64(eb)}};
}

std::string sign_rs256(EVP_PKEY* key, const std::string& input) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key), 1);
  std::size_t len = 0;
  EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  std::string sig(len, '\0');
  EXPECT_EQ(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  sig.resize(len);
  return sig;
}

constexpr std::int64_t kNow = 1'790'000'000;  // seconds

class IdTokens : public ::testing::Test {
 protected:
  void SetUp() override {
    rsa_ = rsa_key(2048);
    other_rsa_ = rsa_key(2048);
    ec_ = SigningKey::generate().value();
    json jwks{{"keys", json::array({rsa_jwk(rsa_.get(), "rsa-1"), ec_.public_key().jwk("ec-1")})}};
    keys_ = std::make_unique<ProviderKeys>(ProviderKeys::from_jwks(jwks.dump()).value());
    expect_.issuer = "https://op.example";
    expect_.client_id = "sechex";
    expect_.nonce = "n-0S6_WzA2Mj";
    expect_.now_micros = kNow * 1'000'000;
  }

  json claims() const {
    return json{{"iss", "https://op.example"}, {"sub", "248289761001"},  {"aud", "sechex"},
                {"nonce", "n-0S6_WzA2Mj"},     {"iat", kNow - 5},        {"exp", kNow + 300},
                {"email", "jane@example.com"}, {"email_verified", true}, {"name", "Jane"}};
  }
  std::string rs256(const json& payload, json header = json{{"alg", "RS256"}, {"kid", "rsa-1"}},
                    EVP_PKEY* key = nullptr) const {
    const auto input = b64(header.dump()) + "." + b64(payload.dump());
    return input + "." + b64(sign_rs256(key ? key : rsa_.get(), input));
  }
  std::string es256(const json& payload,
                    json header = json{{"alg", "ES256"}, {"kid", "ec-1"}}) const {
    return sechex::api::jose::jws_sign_es256(ec_, header.dump(), payload.dump()).value();
  }
  std::error_code refused(const std::string& token) const {
    auto r = verify_id_token(token, *keys_, expect_);
    return r ? std::error_code() : r.error();
  }

  std::shared_ptr<EVP_PKEY> rsa_;
  std::shared_ptr<EVP_PKEY> other_rsa_;
  SigningKey ec_ = SigningKey::generate().value();
  std::unique_ptr<ProviderKeys> keys_;
  IdTokenExpectations expect_;
};

TEST_F(IdTokens, Rs256AndEs256TokensOfTheProviderAreAcceptedWithTheirClaims) {
  for (const auto& token : {rs256(claims()), es256(claims())}) {
    auto r = verify_id_token(token, *keys_, expect_);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r.value().sub, "248289761001");
    EXPECT_EQ(r.value().email, "jane@example.com");
    EXPECT_TRUE(r.value().email_verified);
    EXPECT_EQ(r.value().name, "Jane");
    EXPECT_EQ(r.value().iat, kNow - 5);
  }
  EXPECT_EQ(verify_id_token(es256(claims()), *keys_, expect_).value().alg, "ES256");
}

TEST_F(IdTokens, AlgorithmsOutsideTheAllowlistAndKeyConfusionAreRefused) {
  const auto payload = b64(claims().dump());
  // alg none, and HS256 "signed" with the RSA key's modulus as the HMAC secret.
  EXPECT_EQ(refused(b64(R"({"alg":"none"})") + "." + payload + "."), JoseErrc::alg_not_allowed);
  const auto hs_input = b64(R"({"alg":"HS256","kid":"rsa-1"})") + "." + payload;
  const auto n = rsa_jwk(rsa_.get(), "x")["n"].get<std::string>();
  unsigned char mac[32];
  unsigned len = 0;
  HMAC(EVP_sha256(), n.data(), static_cast<int>(n.size()),
       reinterpret_cast<const unsigned char*>(hs_input.data()), hs_input.size(), mac, &len);
  EXPECT_EQ(refused(hs_input + "." + b64(std::string(reinterpret_cast<char*>(mac), len))),
            JoseErrc::alg_not_allowed);
  // PS256 over the RSA key, and RS256 naming the EC key (and ES256 naming the RSA key).
  EXPECT_EQ(refused(rs256(claims(), json{{"alg", "PS256"}, {"kid", "rsa-1"}})),
            JoseErrc::alg_not_allowed);
  EXPECT_EQ(refused(rs256(claims(), json{{"alg", "RS256"}, {"kid", "ec-1"}})),
            JoseErrc::alg_not_allowed);
  EXPECT_EQ(refused(es256(claims(), json{{"alg", "ES256"}, {"kid", "rsa-1"}})),
            JoseErrc::alg_not_allowed);
}

TEST_F(IdTokens, ForgedSignaturesUnknownKidsAndEmbeddedKeysAreRefused) {
  EXPECT_EQ(refused(rs256(claims(), json{{"alg", "RS256"}, {"kid", "rsa-1"}}, other_rsa_.get())),
            JoseErrc::bad_signature);
  EXPECT_EQ(refused(rs256(claims(), json{{"alg", "RS256"}, {"kid", "rsa-2"}}, other_rsa_.get())),
            JoseErrc::unknown_kid);
  EXPECT_EQ(refused(rs256(claims(), json{{"alg", "RS256"}})), JoseErrc::missing_kid);
  EXPECT_EQ(
      refused(rs256(
          claims(),
          json{{"alg", "RS256"}, {"kid", "rsa-1"}, {"jwk", rsa_jwk(other_rsa_.get(), "rsa-1")}},
          other_rsa_.get())),
      JoseErrc::embedded_key_rejected);
  EXPECT_EQ(refused(rs256(
                claims(),
                json{{"alg", "RS256"}, {"kid", "rsa-1"}, {"jku", "https://evil.example/jwks"}})),
            JoseErrc::embedded_key_rejected);
  // A payload swapped under a valid signature.
  auto token = rs256(claims());
  auto tampered = claims();
  tampered["sub"] = "someone-else";
  const auto first = token.find('.');
  const auto second = token.find('.', first + 1);
  token = token.substr(0, first + 1) + b64(tampered.dump()) + token.substr(second);
  EXPECT_EQ(refused(token), JoseErrc::bad_signature);
  EXPECT_EQ(refused(rs256(claims(), json{{"alg", "RS256"}, {"kid", "rsa-1"}, {"typ", "at+jwt"}})),
            JoseErrc::bad_typ);
}

TEST_F(IdTokens, IssuerAudienceAuthorizedPartyAndNonceMustBeOurs) {
  const auto with = [&](const char* name, json value) {
    auto c = claims();
    if (value.is_null()) {
      c.erase(name);
    } else {
      c[name] = std::move(value);
    }
    return refused(rs256(c));
  };
  EXPECT_EQ(with("iss", "https://op.example/"), JoseErrc::wrong_issuer);
  EXPECT_EQ(with("aud", "another-client"), JoseErrc::wrong_audience);
  EXPECT_EQ(with("aud", json::array({"another-client"})), JoseErrc::wrong_audience);
  EXPECT_EQ(with("aud", json::array({"sechex", "another-client"})),
            JoseErrc::wrong_authorized_party);
  EXPECT_EQ(with("azp", "another-client"), JoseErrc::wrong_authorized_party);
  EXPECT_EQ(with("nonce", "n-replayed"), JoseErrc::wrong_nonce);
  EXPECT_EQ(with("nonce", nullptr), JoseErrc::missing_claim);
  EXPECT_EQ(with("sub", ""), JoseErrc::bad_claim);
  EXPECT_EQ(with("sub", std::string(256, 's')), JoseErrc::bad_claim);
  EXPECT_EQ(with("email_verified", "true"), JoseErrc::bad_claim);
  EXPECT_EQ(with("email", 7), JoseErrc::bad_claim);
  auto both = claims();
  both["aud"] = json::array({"sechex", "another-client"});
  both["azp"] = "sechex";
  EXPECT_EQ(refused(rs256(both)), std::error_code());
}

TEST_F(IdTokens, ExpiryIssuedAtAndNotBeforeFollowTheClock) {
  const auto at = [&](std::int64_t iat, std::int64_t exp) {
    auto c = claims();
    c["iat"] = iat;
    c["exp"] = exp;
    return refused(rs256(c));
  };
  EXPECT_EQ(at(kNow - 10, kNow), JoseErrc::expired);  // from second exp on
  EXPECT_EQ(at(kNow - 10, kNow + 1), std::error_code());
  EXPECT_EQ(at(kNow + 61, kNow + 600), JoseErrc::not_yet_valid);
  EXPECT_EQ(at(kNow + 60, kNow + 600), std::error_code());
  EXPECT_EQ(at(kNow - 601, kNow + 600), JoseErrc::expired);  // issued too long ago
  auto c = claims();
  c["nbf"] = kNow + 61;
  EXPECT_EQ(refused(rs256(c)), JoseErrc::not_yet_valid);
  c = claims();
  c.erase("exp");
  EXPECT_EQ(refused(rs256(c)), JoseErrc::missing_claim);
  c = claims();
  c["exp"] = 1.5e9;
  EXPECT_EQ(refused(rs256(c)), JoseErrc::bad_claim);
}

TEST(ProviderKeysImport, WeakOrForeignKeysAreLeftOutAndAnEmptySetIsAnError) {
  const auto small = rsa_key(1024);
  const auto good = rsa_key(2048);
  auto enc = rsa_jwk(good.get(), "enc-1");
  enc["use"] = "enc";
  auto rs384 = rsa_jwk(good.get(), "rs384");
  rs384["alg"] = "RS384";
  const auto set = ProviderKeys::from_jwks(json{
      {"keys", json::array({rsa_jwk(small.get(), "small"), enc, rs384, rsa_jwk(good.get(), "e3", 3),
                            rsa_jwk(good.get(), "ok"), json{{"kty", "oct"}, {"k", "c2VjcmV0"}}})}}
                                               .dump());
  ASSERT_TRUE(set) << set.error().message();
  EXPECT_EQ(set.value().size(), 1U);
  EXPECT_TRUE(set.value().has("ok"));
  EXPECT_FALSE(set.value().has("small"));
  EXPECT_FALSE(set.value().has("e3"));
  EXPECT_FALSE(ProviderKeys::from_jwks(json{{"keys", json::array({enc})}}.dump()));
  EXPECT_FALSE(ProviderKeys::from_jwks(R"({"keys":{}})"));
  EXPECT_FALSE(ProviderKeys::from_jwks("[]"));
  EXPECT_FALSE(ProviderKeys::from_jwks("not json"));
  json many{{"keys", json::array()}};
  for (int i = 0; i < 101; ++i) many["keys"].push_back(rsa_jwk(good.get(), std::to_string(i)));
  EXPECT_FALSE(ProviderKeys::from_jwks(many.dump()));
}

TEST(Pkce, S256MatchesRfc7636AppendixB) {
  EXPECT_EQ(sechex::api::oidc::pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

}  // namespace
