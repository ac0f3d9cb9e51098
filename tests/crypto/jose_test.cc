// ES256 access tokens: a round trip, then one test per reason a token is refused (each forged
// the way an attacker would: properly signed when the point is that the signature alone must not
// be enough), key rotation and the key directory on disk, JWKS, the verified-token cache, and
// RFC 7515 appendix A.3 as a known answer.
#include "api/crypto/jose.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ledger/crypto.h"
#include "support/temp_dir.h"

namespace sechex::api::jose {
namespace {

using nlohmann::json;
using std::chrono::seconds;

constexpr char kIssuer[] = "https://ledger.example";
constexpr char kAudience[] = "sechex-api";
// The PKCS#8 PEM header, split so that no secret scanner takes the test's text for a key.
constexpr std::string_view kPkcs8Header =
    "-----BEGIN PRIVATE"
    " KEY-----\n";
constexpr std::int64_t kStart = 1'767'225'600;  // ManualClock's default, 2026-01-01, in seconds

using sechex::testing::read_file;
using sechex::testing::TempDir;
using sechex::testing::write_file;

std::string b64(std::string_view s) { return base64url_encode(s); }

std::string decode(std::string_view s) {
  Bytes out;
  EXPECT_TRUE(base64url_decode(s, out)) << s;
  return {out.begin(), out.end()};
}

std::vector<std::string> split(const std::string& token) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const auto dot = token.find('.', start);
    parts.push_back(token.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? "." : "") + parts[i];
  return out;
}

class JoseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ring = KeyRing::load_or_create(dir(), clock_);
    ASSERT_TRUE(ring) << ring.error().message();
    ring_ = std::move(ring).value();
    issuer_ = std::make_unique<TokenIssuer>(*ring_, clock_, IssuerConfig{kIssuer, kAudience});
    config_.issuer = kIssuer;
    config_.audience = kAudience;
    config_.cache_capacity = 0;  // rejection tests must reach the full verification each time
    verifier_ = std::make_unique<TokenVerifier>(*ring_, clock_, config_);
  }

  std::string dir() const { return tmp_.sub("keys/jwt"); }
  std::int64_t now() const { return clock_.now_micros() / 1'000'000; }
  const SigningKey& key() const { return ring_->snapshot()->current; }

  std::string header(const std::string& kid) const {
    return R"({"alg":"ES256","kid":")" + kid + R"(","typ":"at+jwt"})";
  }
  std::string header() const { return header(key().kid()); }

  json claims() const {
    return {{"iss", kIssuer},     {"sub", "user-1"},
            {"aud", kAudience},   {"iat", now()},
            {"exp", now() + 600}, {"jti", "jti-1"},
            {"sid", "sess-1"},    {"roles", json::array({"premium"})}};
  }

  std::string sign(const std::string& header_json, const std::string& payload) const {
    auto token = jws_sign_es256(key(), header_json, payload);
    EXPECT_TRUE(token) << token.error().message();
    return token ? token.value() : std::string();
  }
  std::string sign(const json& payload) const { return sign(header(), payload.dump()); }

  std::string issue(seconds ttl = seconds(3600)) const {
    auto t = issuer_->issue({"user-1", "sess-1", {"admin", "premium"}}, ttl);
    EXPECT_TRUE(t) << t.error().message();
    return t ? t.value().token : std::string();
  }

  std::error_code refusal(const std::string& token) const {
    auto v = verifier_->verify(token);
    EXPECT_FALSE(v) << "accepted: " << token;
    return v ? std::error_code() : v.error();
  }

  TempDir tmp_;
  ManualClock clock_;
  std::unique_ptr<KeyRing> ring_;
  std::unique_ptr<TokenIssuer> issuer_;
  VerifierConfig config_;
  std::unique_ptr<TokenVerifier> verifier_;
};

// ---- base64url ----

TEST(Base64Url, EncodesRfc4648VectorsWithoutPadding) {
  EXPECT_EQ(b64(""), "");
  EXPECT_EQ(b64("f"), "Zg");
  EXPECT_EQ(b64("fo"), "Zm8");
  EXPECT_EQ(b64("foo"), "Zm9v");
  EXPECT_EQ(b64("foob"), "Zm9vYg");
  EXPECT_EQ(b64("fooba"), "Zm9vYmE");
  EXPECT_EQ(b64("foobar"), "Zm9vYmFy");
  const Bytes specials = {0xfb, 0xff, 0xbf};  // "+/+/" in the standard alphabet
  EXPECT_EQ(base64url_encode(specials), "-_-_");
  for (std::size_t n = 0; n < 40; ++n) {
    Bytes data(n);
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<std::uint8_t>(i * 37 + n);
    Bytes back;
    ASSERT_TRUE(base64url_decode(base64url_encode(data), back));
    EXPECT_EQ(back, data);
  }
}

TEST(Base64Url, RefusesEverySpellingButTheCanonicalOne) {
  Bytes out = {1, 2, 3};
  for (const char* bad :
       {"Zg==", "Zg=", "Zm9v=", "+/+/", "-_+/", "Zm 9v", "Zm9v\n", " Zm9v", "Zm9v\t", "Z", "Zm9vY",
        "Zh", "Zm9", "Zm+v", "Zm/v", "Zm9v.", "\xc3\xa9"}) {
    EXPECT_FALSE(base64url_decode(bad, out)) << bad;
  }
  EXPECT_EQ(out, (Bytes{1, 2, 3})) << "output touched on failure";
  // "Zh" and "Zm9" differ from "Zg"/"Zm8" only in bits the decoder drops: accepting them would
  // give one token several spellings.
  EXPECT_TRUE(base64url_decode("Zg", out));
  EXPECT_TRUE(base64url_decode("Zm8", out));
  EXPECT_TRUE(base64url_decode("", out));
  EXPECT_TRUE(out.empty());
}

// ---- round trip ----

TEST_F(JoseTest, IssuedTokenVerifiesWithAllClaims) {
  auto issued = issuer_->issue({"user-1", "sess-1", {"admin", "premium"}}, seconds(3600));
  ASSERT_TRUE(issued) << issued.error().message();
  const auto& t = issued.value();
  const auto parts = split(t.token);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(decode(parts[0]), header(ring_->current_kid()));
  EXPECT_EQ(t.kid, ring_->current_kid());
  EXPECT_EQ(decode(parts[2]).size(), 64u);

  auto v = verifier_->verify(t.token);
  ASSERT_TRUE(v) << v.error().message();
  const auto& c = v.value().claims;
  EXPECT_EQ(v.value().kid, ring_->current_kid());
  EXPECT_EQ(c.iss, kIssuer);
  EXPECT_EQ(c.aud, kAudience);
  EXPECT_EQ(c.sub, "user-1");
  EXPECT_EQ(c.sid, "sess-1");
  EXPECT_EQ(c.roles, (std::vector<std::string>{"admin", "premium"}));
  EXPECT_EQ(c.iat, kStart);
  EXPECT_EQ(c.exp, kStart + 3600);
  EXPECT_FALSE(c.nbf);
  EXPECT_EQ(c.jti, t.claims.jti);
  Bytes jti;
  ASSERT_TRUE(base64url_decode(c.jti, jti));
  EXPECT_EQ(jti.size(), 16u);

  const json payload = json::parse(decode(parts[1]));
  std::set<std::string> names;
  for (const auto& [k, _] : payload.items()) names.insert(k);
  EXPECT_EQ(names,
            (std::set<std::string>{"iss", "sub", "aud", "iat", "exp", "jti", "sid", "roles"}));
}

TEST_F(JoseTest, EveryTokenGetsItsOwnJtiAndSignature) {
  const auto a = issuer_->issue({"u", "s", {}}, seconds(60));
  const auto b = issuer_->issue({"u", "s", {}}, seconds(60));
  ASSERT_TRUE(a && b);
  EXPECT_NE(a.value().claims.jti, b.value().claims.jti);
  EXPECT_NE(a.value().token, b.value().token);
  EXPECT_TRUE(verifier_->verify(a.value().token));
}

TEST_F(JoseTest, IssueRefusesWhatNoVerifierWouldAccept) {
  using ledger::Errc;
  EXPECT_EQ(issuer_->issue({"u", "s", {}}, seconds(0)).error(), Errc::invalid_argument);
  EXPECT_EQ(issuer_->issue({"u", "s", {}}, seconds(-5)).error(), Errc::invalid_argument);
  // Longer than the ring keeps a retired key: the token would outlive its verification key.
  EXPECT_EQ(issuer_->issue({"u", "s", {}}, seconds(3601)).error(), Errc::invalid_argument);
  EXPECT_EQ(issuer_->issue({"", "s", {}}, seconds(60)).error(), Errc::invalid_argument);
  EXPECT_EQ(issuer_->issue({"u", "", {}}, seconds(60)).error(), Errc::invalid_argument);
  EXPECT_EQ(issuer_->issue({"u\xff", "s", {}}, seconds(60)).error(), Errc::invalid_argument);
  EXPECT_EQ(issuer_->issue({"u", "s", {"ok", "\xc3("}}, seconds(60)).error(),
            Errc::invalid_argument);
  EXPECT_EQ(issuer_->issue({std::string(9000, 'u'), "s", {}}, seconds(60)).error(),
            Errc::invalid_argument);
  EXPECT_EQ(issuer_->issue({"u", "s", std::vector<std::string>(101, "r")}, seconds(60)).error(),
            Errc::invalid_argument);
}

// ---- signature ----

TEST_F(JoseTest, TamperedPayloadIsRefused) {
  auto parts = split(issue());
  json p = json::parse(decode(parts[1]));
  p["roles"] = {"admin"};
  p["sub"] = "someone-else";
  parts[1] = b64(p.dump());
  EXPECT_EQ(refusal(join(parts)), JoseErrc::bad_signature);
}

TEST_F(JoseTest, TamperedHeaderIsRefused) {
  auto parts = split(issue());
  parts[0] = b64(R"({"alg":"ES256","kid":")" + key().kid() + R"(","typ":"at+jwt","x":1})");
  EXPECT_EQ(refusal(join(parts)), JoseErrc::bad_signature);
}

TEST_F(JoseTest, TamperedOrResizedSignatureIsRefused) {
  const auto token = issue();
  auto parts = split(token);
  Bytes sig;
  ASSERT_TRUE(base64url_decode(parts[2], sig));
  for (const std::size_t i : {std::size_t{0}, std::size_t{31}, std::size_t{32}, std::size_t{63}}) {
    Bytes flipped = sig;
    flipped[i] ^= 0x01;
    parts[2] = base64url_encode(flipped);
    EXPECT_EQ(refusal(join(parts)), JoseErrc::bad_signature) << i;
  }
  Bytes longer = sig;
  longer.push_back(0);
  Bytes shorter(sig.begin(), sig.end() - 1);
  Bytes padded = {0};  // r||s with a leading zero, as a sloppy encoder might
  padded.insert(padded.end(), sig.begin(), sig.end());
  for (const Bytes& s : {longer, shorter, padded, Bytes{}}) {
    parts[2] = base64url_encode(s);
    EXPECT_EQ(refusal(join(parts)), JoseErrc::bad_signature) << parts[2];
  }
  // A DER signature where r||s belongs: the right key, the wrong encoding.
  EXPECT_EQ(refusal(split(token)[0] + "." + split(token)[1] + "." +
                    b64(std::string("\x30\x06\x02\x01\x01\x02\x01\x01", 8))),
            JoseErrc::bad_signature);
}

// ECDSA is malleable: (r, n - s) verifies whenever (r, s) does. The issuer signs in low-S form
// and access tokens must be in it, so a token has one valid text only and nothing keyed by the
// text (the verified-token cache, a revocation list) can be fooled by its twin (issue 12). Foreign
// JWS (the RFC and Wycheproof vectors) are still checked without that rule.
TEST_F(JoseTest, EveryIssuedSignatureIsLowSAndTheHighSTwinIsRefused) {
  static const std::uint8_t n[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
                                     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                     0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
                                     0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
  const std::vector<std::uint8_t> half_n = {0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00,
                                            0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                            0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42,
                                            0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8};
  // Half of all raw ECDSA signatures are high-S: 64 tokens would almost surely show one.
  for (int i = 0; i < 64; ++i) {
    const auto token = issue();
    auto parts = split(token);
    Bytes sig;
    ASSERT_TRUE(base64url_decode(parts[2], sig));
    const std::vector<std::uint8_t> s(sig.begin() + 32, sig.end());
    ASSERT_LE(s, half_n) << "issued a high-S signature: " << token;
    int borrow = 0;
    for (int k = 31; k >= 0; --k) {
      int d = n[k] - sig[32 + k] - borrow;
      borrow = d < 0;
      sig[32 + k] = static_cast<std::uint8_t>(d + (borrow ? 256 : 0));
    }
    parts[2] = base64url_encode(sig);
    const auto twin = join(parts);
    ASSERT_TRUE(verifier_->verify(token));
    EXPECT_EQ(refusal(twin), JoseErrc::high_s_signature);
    // The twin is a valid ES256 JWS all the same: only the access-token rule refuses it.
    JwsPolicy foreign;
    foreign.require_kid = true;
    EXPECT_TRUE(jws_verify_es256(twin, ring_->snapshot()->keys, foreign));
  }
}

// ---- algorithm and key selection ----

TEST_F(JoseTest, AlgNoneIsRefusedWhateverTheSpelling) {
  const std::string payload = b64(claims().dump());
  for (const char* alg : {"none", "None", "NONE", "nOnE"}) {
    const std::string h = b64(R"({"alg":")" + std::string(alg) + R"(","kid":")" + key().kid() +
                              R"(","typ":"at+jwt"})");
    EXPECT_EQ(refusal(h + "." + payload + "."), JoseErrc::alg_not_allowed) << alg;
    EXPECT_EQ(refusal(h + "." + payload + "." + b64("x")), JoseErrc::alg_not_allowed) << alg;
  }
}

TEST_F(JoseTest, Hs256KeyedWithThePublicKeyIsRefused) {
  // Key confusion: the attacker knows the public key (it is on /.well-known/jwks.json) and
  // hopes the verifier uses it as an HMAC secret when the header says HS256.
  const auto& pub = key().public_key();
  const Bytes sec1 = pub.sec1();
  const std::string jwk = pub.jwk(key().kid()).dump();
  const std::string jwks = ring_->jwks_json();
  const std::string input =
      b64(R"({"alg":"HS256","kid":")" + key().kid() + R"(","typ":"at+jwt"})") + "." +
      b64(claims().dump());
  for (const std::string& secret :
       {std::string(sec1.begin(), sec1.end()), jwk, jwks, ledger::crypto::base64_encode(sec1)}) {
    auto mac = ledger::crypto::hmac_sha256(ledger::as_bytes(secret), ledger::as_bytes(input));
    ASSERT_TRUE(mac);
    EXPECT_EQ(refusal(input + "." + base64url_encode(mac.value())), JoseErrc::alg_not_allowed);
  }
}

TEST_F(JoseTest, EveryOtherAlgorithmIsRefusedEvenWhenProperlySigned) {
  // Signed with the real key, so only the alg check can stop them.
  for (const char* alg : {"HS256", "HS384", "HS512", "RS256", "PS256", "ES384", "ES512", "EdDSA",
                          "es256", "ES256 ", ""}) {
    const std::string h =
        R"({"alg":")" + std::string(alg) + R"(","kid":")" + key().kid() + R"(","typ":"at+jwt"})";
    EXPECT_EQ(refusal(sign(h, claims().dump())), JoseErrc::alg_not_allowed) << alg;
  }
  for (const std::string& alg_member :
       {std::string(R"("alg":["ES256"],)"), std::string(R"("alg":null,)"), std::string()}) {
    const std::string h = "{" + alg_member + R"("kid":")" + key().kid() + R"(","typ":"at+jwt"})";
    EXPECT_EQ(refusal(sign(h, claims().dump())), JoseErrc::alg_not_allowed) << h;
  }
}

TEST_F(JoseTest, MissingOrUnknownKidIsRefused) {
  EXPECT_EQ(refusal(sign(R"({"alg":"ES256","typ":"at+jwt"})", claims().dump())),
            JoseErrc::missing_kid);
  EXPECT_EQ(refusal(sign(header("not-a-key-of-ours"), claims().dump())), JoseErrc::unknown_kid);
  EXPECT_EQ(refusal(sign(header(""), claims().dump())), JoseErrc::unknown_kid);
  EXPECT_EQ(refusal(sign(R"({"alg":"ES256","kid":7,"typ":"at+jwt"})", claims().dump())),
            JoseErrc::unknown_kid);
  // A correctly formed token from a key that is not in the ring.
  auto stranger = SigningKey::generate();
  ASSERT_TRUE(stranger);
  auto t = jws_sign_es256(stranger.value(), header(stranger.value().kid()), claims().dump());
  ASSERT_TRUE(t);
  EXPECT_EQ(refusal(t.value()), JoseErrc::unknown_kid);
  // ...and one that claims our kid.
  t = jws_sign_es256(stranger.value(), header(), claims().dump());
  ASSERT_TRUE(t);
  EXPECT_EQ(refusal(t.value()), JoseErrc::bad_signature);
}

TEST_F(JoseTest, CritIsRefused) {
  const std::string h =
      R"({"alg":"ES256","kid":")" + key().kid() + R"(","typ":"at+jwt","crit":["exp"],"exp":1})";
  EXPECT_EQ(refusal(sign(h, claims().dump())), JoseErrc::crit_not_supported);
  const std::string b64_false =
      R"({"alg":"ES256","kid":")" + key().kid() + R"(","typ":"at+jwt","b64":false,"crit":["b64"]})";
  EXPECT_EQ(refusal(sign(b64_false, claims().dump())), JoseErrc::crit_not_supported);
  const std::string empty =
      R"({"alg":"ES256","kid":")" + key().kid() + R"(","typ":"at+jwt","crit":[]})";
  EXPECT_EQ(refusal(sign(empty, claims().dump())), JoseErrc::crit_not_supported);
}

TEST_F(JoseTest, KeysCarriedOrReferencedByTheTokenAreRefused) {
  // The attacker's own key, embedded and used to sign, under our kid.
  auto attacker = SigningKey::generate();
  ASSERT_TRUE(attacker);
  const std::string with_jwk = R"({"alg":"ES256","kid":")" + key().kid() +
                               R"(","typ":"at+jwt","jwk":)" +
                               attacker.value().public_key().jwk(key().kid()).dump() + "}";
  auto t = jws_sign_es256(attacker.value(), with_jwk, claims().dump());
  ASSERT_TRUE(t);
  EXPECT_EQ(refusal(t.value()), JoseErrc::embedded_key_rejected);

  for (const std::string& member :
       {std::string(R"("jku":"https://attacker.example/jwks.json")"),
        std::string(R"("x5u":"https://attacker.example/cert.pem")"),
        std::string(R"("x5c":["MIIBszCCAVmgAwIBAgIU"])"),
        std::string(R"("jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"})")}) {
    const std::string h =
        R"({"alg":"ES256","kid":")" + key().kid() + R"(","typ":"at+jwt",)" + member + "}";
    // Signed with the real key: the member alone is reason enough.
    EXPECT_EQ(refusal(sign(h, claims().dump())), JoseErrc::embedded_key_rejected) << member;
  }
}

TEST_F(JoseTest, WrongOrMissingTypIsRefused) {
  for (const char* typ : {"JWT", "jwt", "AT+JWT", "application/at+jwt", "dpop+jwt", ""}) {
    const std::string h =
        R"({"alg":"ES256","kid":")" + key().kid() + R"(","typ":")" + typ + R"("})";
    EXPECT_EQ(refusal(sign(h, claims().dump())), JoseErrc::bad_typ) << typ;
  }
  EXPECT_EQ(refusal(sign(R"({"alg":"ES256","kid":")" + key().kid() + R"("})", claims().dump())),
            JoseErrc::bad_typ);
  EXPECT_EQ(
      refusal(sign(R"({"alg":"ES256","kid":")" + key().kid() + R"(","typ":1})", claims().dump())),
      JoseErrc::bad_typ);
}

// ---- JSON ----

TEST_F(JoseTest, DuplicateKeysInTheHeaderAreRefused) {
  const std::string kid = key().kid();
  for (const std::string& h :
       {R"({"alg":"ES256","kid":")" + kid + R"(","typ":"at+jwt","alg":"none"})",
        R"({"alg":"ES256","kid":")" + kid + R"(","kid":")" + kid + R"(","typ":"at+jwt"})",
        R"({"alg":"ES256","kid":")" + kid + R"(","typ":"at+jwt","typ":"at+jwt"})"}) {
    EXPECT_EQ(refusal(sign(h, claims().dump())), JoseErrc::duplicate_key) << h;
  }
}

TEST_F(JoseTest, DuplicateKeysInThePayloadAreRefused) {
  // Which "sub" wins differs between parsers; a properly signed token must not mean two things.
  std::string p = claims().dump();
  p.insert(p.size() - 1, R"(,"sub":"admin")");
  EXPECT_EQ(refusal(sign(header(), p)), JoseErrc::duplicate_key);
  std::string nested = claims().dump();
  nested.insert(nested.size() - 1, R"(,"ext":{"a":1,"a":2})");
  EXPECT_EQ(refusal(sign(header(), nested)), JoseErrc::duplicate_key);
}

TEST_F(JoseTest, HeaderOrPayloadThatIsNotAJsonObjectIsRefused) {
  const std::string p = b64(claims().dump());
  for (const char* h : {"", "[]", "\"ES256\"", "{", "{\"alg\":\"ES256\"} x", "null",
                        "{\"alg\":\"ES256\",\"kid\":\"\xff\"}"}) {
    EXPECT_EQ(refusal(b64(h) + "." + p + "." + b64(std::string(64, 'x'))), JoseErrc::bad_json) << h;
  }
  for (const char* payload : {"", "[]", "42", "{\"exp\":", "{} {}"}) {
    EXPECT_EQ(refusal(sign(header(), payload)), JoseErrc::bad_json) << payload;
  }
  // Deeper than the API's input limits.
  EXPECT_EQ(refusal(sign(header(), R"({"a":{"b":{"c":{"d":{"e":1}}}}})")), JoseErrc::bad_json);
}

// ---- claims ----

TEST_F(JoseTest, ExpiryIsExactAndNeverExtendedBySkew) {
  const auto token = issue(seconds(60));
  clock_.advance_micros(59'999'999);
  EXPECT_TRUE(verifier_->verify(token));
  clock_.advance_micros(1);
  EXPECT_EQ(refusal(token), JoseErrc::expired);
  clock_.advance_micros(3'600'000'000);
  EXPECT_EQ(refusal(token), JoseErrc::expired);
}

TEST_F(JoseTest, FutureNbfAndIatAreRefusedBeyondTheSkew) {
  json c = claims();
  c["nbf"] = now() + 60;
  EXPECT_TRUE(verifier_->verify(sign(c)));
  c["nbf"] = now() + 61;
  EXPECT_EQ(refusal(sign(c)), JoseErrc::not_yet_valid);
  c["nbf"] = now() - 1;
  EXPECT_TRUE(verifier_->verify(sign(c)));

  c = claims();
  c["iat"] = now() + 60;
  EXPECT_TRUE(verifier_->verify(sign(c)));
  c["iat"] = now() + 61;
  EXPECT_EQ(refusal(sign(c)), JoseErrc::not_yet_valid);

  // The skew is configurable.
  VerifierConfig strict = config_;
  strict.clock_skew = seconds(0);
  const TokenVerifier v(*ring_, clock_, strict);
  c = claims();
  c["iat"] = now() + 1;
  EXPECT_EQ(v.verify(sign(c)).error(), JoseErrc::not_yet_valid);
}

TEST_F(JoseTest, WrongAudienceOrIssuerIsRefused) {
  json c = claims();
  c["aud"] = "another-api";
  EXPECT_EQ(refusal(sign(c)), JoseErrc::wrong_audience);
  c["aud"] = {"another-api", "yet-another"};
  EXPECT_EQ(refusal(sign(c)), JoseErrc::wrong_audience);
  c["aud"] = {"another-api", kAudience};
  EXPECT_TRUE(verifier_->verify(sign(c)));  // RFC 7519 §4.1.3: an array containing ours
  c["aud"] = json::array();
  EXPECT_EQ(refusal(sign(c)), JoseErrc::bad_claim);
  c["aud"] = {kAudience, 1};
  EXPECT_EQ(refusal(sign(c)), JoseErrc::bad_claim);

  c = claims();
  c["iss"] = "https://attacker.example";
  EXPECT_EQ(refusal(sign(c)), JoseErrc::wrong_issuer);
  c["iss"] = std::string(kIssuer) + "/";
  EXPECT_EQ(refusal(sign(c)), JoseErrc::wrong_issuer);

  // The same token, checked by a verifier for another API.
  VerifierConfig other = config_;
  other.audience = "billing";
  EXPECT_EQ(TokenVerifier(*ring_, clock_, other).verify(issue()).error(), JoseErrc::wrong_audience);
}

TEST_F(JoseTest, AKeyBoundTokenCarriesItsThumbprintInCnf) {
  const TokenIssuer& issuer = *issuer_;
  const TokenVerifier verifier(*ring_, clock_, config_);
  const auto issued =
      issuer
          .issue({"alice", "xs-1", {"user"}, false, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
                 std::chrono::minutes(30))
          .value();
  const auto v = verifier.verify(issued.token);
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(v.value().claims.cnf_jkt, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
  const auto plain = issuer.issue({"alice", "s-1", {"user"}}, std::chrono::minutes(30)).value();
  EXPECT_TRUE(verifier.verify(plain.token).value().claims.cnf_jkt.empty());
}

TEST_F(JoseTest, MissingOrMistypedClaimsAreRefused) {
  for (const char* name : {"iss", "sub", "aud", "iat", "exp", "jti", "sid", "roles"}) {
    json c = claims();
    c.erase(name);
    EXPECT_EQ(refusal(sign(c)), JoseErrc::missing_claim) << name;
  }
  const std::vector<std::pair<const char*, json>> mistyped = {
      {"exp", "1767229200"},
      {"exp", 1767229200.5},
      {"exp", nullptr},
      {"exp", true},
      {"iat", "0"},
      {"nbf", "0"},
      {"nbf", 1.0},
      {"sub", 1},
      {"sub", ""},
      {"sid", json::array()},
      {"jti", ""},
      {"roles", "admin"},
      {"roles", {"admin", 1}},
      {"aud", 5},
      {"iss", json::object()},
      {"exp", json(std::numeric_limits<std::uint64_t>::max())},
      // RFC 9449 §6.1: cnf is an object with a non-empty jkt; anything else is not taken as an
      // unbound token.
      {"cnf", "thumbprint"},
      {"cnf", json::object()},
      {"cnf", {{"jkt", ""}}},
      {"cnf", {{"jkt", 7}}},
      {"cnf", {{"jwk", json::object()}}}};
  for (const auto& [name, value] : mistyped) {
    json c = claims();
    c[name] = value;
    const auto e = refusal(sign(c));
    // An iss of the wrong type cannot be our issuer either; both answers refuse.
    EXPECT_TRUE(e == JoseErrc::bad_claim || e == JoseErrc::wrong_issuer) << name << "=" << value;
  }
}

// ---- structure and size ----

TEST_F(JoseTest, Base64PaddingOrOtherAlphabetsAreRefused) {
  const auto token = issue();
  auto parts = split(token);
  for (int segment = 0; segment < 3; ++segment) {
    for (const char* suffix : {"=", "==", " ", "\n", "+", "/"}) {
      auto p = parts;
      p[segment] += suffix;
      EXPECT_EQ(refusal(join(p)), JoseErrc::bad_base64) << segment << " '" << suffix << "'";
    }
  }
  // The same header, padded standard base64.
  auto p = parts;
  p[0] = ledger::crypto::base64_encode(ledger::as_bytes(decode(parts[0])));
  ASSERT_NE(p[0], parts[0]);
  EXPECT_EQ(refusal(join(p)), JoseErrc::bad_base64);
}

TEST_F(JoseTest, AnythingButThreeSegmentsIsRefused) {
  const auto token = issue();
  const auto parts = split(token);
  for (const std::string& t :
       {token + "." + parts[2], token + ".", parts[0] + "." + parts[1], parts[0], std::string(),
        std::string("."), std::string(".."), std::string("...")}) {
    const auto e = refusal(t);
    if (t == "..") {
      EXPECT_EQ(e, JoseErrc::bad_json);  // three (empty) segments: the header is not JSON
    } else {
      EXPECT_EQ(e, JoseErrc::malformed) << t;
    }
  }
}

TEST_F(JoseTest, OversizedTokensAreRefusedBeforeParsing) {
  json c = claims();
  c["pad"] = std::string(8000, 'p');
  const std::string big = sign(c);
  ASSERT_GT(big.size(), 8192u);
  EXPECT_EQ(refusal(big), JoseErrc::too_large);
  EXPECT_EQ(refusal(std::string(8193, 'a')), JoseErrc::too_large);
  EXPECT_EQ(refusal(std::string(1 << 20, '.')), JoseErrc::too_large);
  PublicKeys keys{{key().kid(), key().public_key()}};
  EXPECT_EQ(jws_verify_es256(big, keys).error(), JoseErrc::too_large);
  // Just under the limit is fine (no single string may exceed the 4 KiB JSON input limit).
  c["pad"] = std::string(4000, 'p');
  c["pad2"] = "";
  const std::size_t base = sign(c).size();
  std::size_t pad = (8192 - base) / 4 * 3;
  c["pad2"] = std::string(pad, 'q');
  while (sign(c).size() > 8192) c["pad2"] = std::string(--pad, 'q');
  const std::string fits = sign(c);
  EXPECT_LE(fits.size(), 8192u);
  EXPECT_GT(fits.size(), 8180u);
  EXPECT_TRUE(verifier_->verify(fits));
}

// ---- key ring ----

TEST_F(JoseTest, KeyDirectoryLayoutAndModes) {
  const std::string kid = ring_->current_kid();
  EXPECT_EQ(kid, key().public_key().thumbprint());
  const std::string pem = dir() + "/jwt-es256-" + kid + ".pem";
  struct stat st {};
  ASSERT_EQ(::stat(pem.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(read_file(pem).rfind(kPkcs8Header, 0), 0u) << "not PKCS#8";
  ASSERT_EQ(::stat(dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(read_file(dir() + "/jwt-es256.keys"), "sechex-jwt-keys/v1\n" + kid + " -\n");
  for (const auto& entry : std::filesystem::directory_iterator(dir())) {
    const auto name = entry.path().filename().string();
    EXPECT_TRUE(name == "jwt-es256.keys" || name == "jwt-es256.lock" ||
                name == "jwt-es256-" + kid + ".pem")
        << "unexpected file " << name;
  }

  // Reopening finds the same key rather than making a new one.
  auto again = KeyRing::load_or_create(dir(), clock_);
  ASSERT_TRUE(again);
  EXPECT_EQ(again.value()->current_kid(), kid);
}

TEST_F(JoseTest, PemFilesAreNeverOverwrittenAndMustBePrivate) {
  const std::string pem = dir() + "/jwt-es256-" + ring_->current_kid() + ".pem";
  const std::string before = read_file(pem);
  auto other = SigningKey::generate();
  ASSERT_TRUE(other);
  EXPECT_EQ(other.value().save_pem(pem).error(), ledger::Errc::invalid_argument);
  EXPECT_EQ(read_file(pem), before);

  const std::string copy = tmp_.sub("copy.pem");
  ASSERT_TRUE(key().save_pem(copy));
  auto loaded = SigningKey::load_pem(copy);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded.value().kid(), key().kid());
  ASSERT_EQ(::chmod(copy.c_str(), 0640), 0);
  EXPECT_EQ(SigningKey::load_pem(copy).error(), ledger::Errc::key_invalid);
  EXPECT_EQ(SigningKey::load_pem(tmp_.sub("absent.pem")).error(), ledger::Errc::key_missing);

  const std::string garbage = tmp_.sub("garbage.pem");
  write_file(garbage, std::string(kPkcs8Header) +
                          "AAAA\n-----END PRIVATE"
                          " KEY-----\n");
  ASSERT_EQ(::chmod(garbage.c_str(), 0600), 0);
  EXPECT_EQ(SigningKey::load_pem(garbage).error(), ledger::Errc::key_invalid);
}

TEST_F(JoseTest, RotationKeepsOldTokensValidAndSignsWithTheNewKey) {
  const std::string old_kid = ring_->current_kid();
  const std::string old_token = issue();
  ASSERT_TRUE(ring_->rotate());
  const std::string new_kid = ring_->current_kid();
  EXPECT_NE(new_kid, old_kid);

  EXPECT_TRUE(verifier_->verify(old_token)) << "a token of the previous key must still verify";
  const std::string new_token = issue();
  EXPECT_EQ(decode(split(new_token)[0]), header(new_kid));
  auto v = verifier_->verify(new_token);
  ASSERT_TRUE(v);
  EXPECT_EQ(v.value().kid, new_kid);

  EXPECT_EQ(read_file(dir() + "/jwt-es256.keys"), "sechex-jwt-keys/v1\n" + new_kid + " -\n" +
                                                      old_kid + " " + std::to_string(now()) + "\n");
  // Another process (or a restart) sees the same ring.
  auto reopened = KeyRing::load_or_create(dir(), clock_);
  ASSERT_TRUE(reopened);
  EXPECT_EQ(reopened.value()->current_kid(), new_kid);
  EXPECT_EQ(reopened.value()->snapshot()->keys.size(), 2u);

  // Once every token of the old key has expired, the next rotation forgets it and deletes it.
  clock_.advance_micros((3600 + 60) * 1'000'000LL);
  EXPECT_EQ(refusal(old_token), JoseErrc::expired);
  ASSERT_TRUE(ring_->rotate());
  const auto snap = ring_->snapshot();
  EXPECT_EQ(snap->keys.count(old_kid), 0u);
  EXPECT_EQ(snap->keys.count(new_kid), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir() + "/jwt-es256-" + old_kid + ".pem"));
  EXPECT_EQ(snap->keys.size(), 2u);
  EXPECT_TRUE(verifier_->verify(issue()));
}

TEST_F(JoseTest, EmergencyRotationStopsOldTokensAtOnceEvenWhenCached) {
  VerifierConfig cached = config_;
  cached.cache_capacity = 100;
  const TokenVerifier v(*ring_, clock_, cached);
  const std::string old_kid = ring_->current_kid();
  const std::string token = issue();
  ASSERT_TRUE(v.verify(token));
  ASSERT_EQ(v.cache().size(), 1u);
  ASSERT_TRUE(ring_->rotate(Retire::immediately));
  EXPECT_EQ(v.verify(token).error(), JoseErrc::unknown_kid);
  EXPECT_FALSE(std::filesystem::exists(dir() + "/jwt-es256-" + old_kid + ".pem"));
  EXPECT_EQ(ring_->snapshot()->keys.size(), 1u);
}

TEST_F(JoseTest, ReloadPicksUpARotationByAnotherProcess) {
  auto other = KeyRing::load_or_create(dir(), clock_);
  ASSERT_TRUE(other);
  const auto generation = ring_->snapshot()->generation;
  ASSERT_TRUE(ring_->reload());
  EXPECT_EQ(ring_->snapshot()->generation, generation) << "nothing changed, caches stay valid";

  ASSERT_TRUE(other.value()->rotate());
  const TokenIssuer other_issuer(*other.value(), clock_, IssuerConfig{kIssuer, kAudience});
  const auto token = other_issuer.issue({"u", "s", {}}, seconds(60));
  ASSERT_TRUE(token);
  EXPECT_EQ(refusal(token.value().token), JoseErrc::unknown_kid);
  ASSERT_TRUE(ring_->reload());
  EXPECT_NE(ring_->snapshot()->generation, generation);
  EXPECT_TRUE(verifier_->verify(token.value().token));
  EXPECT_EQ(ring_->current_kid(), other.value()->current_kid());
}

TEST_F(JoseTest, DamagedKeyDirectoryIsReportedNotRepaired) {
  const std::string index = dir() + "/jwt-es256.keys";
  const std::string good = read_file(index);
  const std::string kid = ring_->current_kid();
  for (const std::string& bad :
       {std::string(), std::string("sechex-jwt-keys/v1\n"), "sechex-jwt-keys/v2\n" + kid + " -\n",
        "sechex-jwt-keys/v1\n" + kid + " -",  // torn: no final newline
        "sechex-jwt-keys/v1\n" + kid + " 123\n",
        "sechex-jwt-keys/v1\n" + kid + " -\n" + kid + " 5\n",
        std::string("sechex-jwt-keys/v1\n../../../../etc/passwd -\n"),
        "sechex-jwt-keys/v1\n" + kid + " -\n" + std::string(43, 'A') + " x\n"}) {
    write_file(index, bad);
    auto r = KeyRing::load_or_create(dir(), clock_);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error(), ledger::Errc::corruption) << bad;
  }
  // The index names a key file that is gone.
  write_file(index, "sechex-jwt-keys/v1\n" + std::string(43, 'A') + " -\n");
  EXPECT_EQ(KeyRing::load_or_create(dir(), clock_).error(), ledger::Errc::key_missing);
  // A key file holding another key than its name says.
  write_file(index, good);
  auto stranger = SigningKey::generate();
  ASSERT_TRUE(stranger);
  const std::string pem = dir() + "/jwt-es256-" + kid + ".pem";
  ASSERT_EQ(::unlink(pem.c_str()), 0);
  ASSERT_TRUE(stranger.value().save_pem(pem));
  EXPECT_EQ(KeyRing::load_or_create(dir(), clock_).error(), ledger::Errc::key_invalid);
}

TEST_F(JoseTest, KeyDirectoryWritableByOthersIsRefused) {
  // Whoever can write there can plant a key and an index naming it: refused, not repaired.
  for (const ::mode_t mode : {0770, 0707, 01777}) {
    ASSERT_EQ(::chmod(dir().c_str(), mode), 0);
    auto r = KeyRing::load_or_create(dir(), clock_);
    ASSERT_FALSE(r) << std::oct << mode;
    EXPECT_EQ(r.error(), ledger::Errc::key_invalid) << std::oct << mode;
    EXPECT_EQ(ring_->reload().error(), ledger::Errc::key_invalid);
    EXPECT_EQ(ring_->rotate().error(), ledger::Errc::key_invalid);
  }
  // Readable is fine (the key files themselves are 0600).
  ASSERT_EQ(::chmod(dir().c_str(), 0750), 0);
  EXPECT_TRUE(KeyRing::load_or_create(dir(), clock_));
  EXPECT_TRUE(ring_->reload());

  // A lock file replaced by a symlink is not followed (O_CREAT would create its target).
  const std::string lock = dir() + "/jwt-es256.lock";
  const std::string target = tmp_.sub("elsewhere");
  ASSERT_EQ(::unlink(lock.c_str()), 0);
  ASSERT_EQ(::symlink(target.c_str(), lock.c_str()), 0);
  EXPECT_EQ(ring_->reload().error(), ledger::Errc::io_error);
  EXPECT_FALSE(std::filesystem::exists(target));
}

TEST_F(JoseTest, JwksListsPublicKeysOnlyCurrentFirst) {
  const std::string first = ring_->current_kid();
  ASSERT_TRUE(ring_->rotate());
  const std::string second = ring_->current_kid();
  const json jwks = json::parse(ring_->jwks_json());
  ASSERT_TRUE(jwks.is_object());
  ASSERT_EQ(jwks.size(), 1u);
  const auto& keys = jwks.at("keys");
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].at("kid"), second);
  EXPECT_EQ(keys[1].at("kid"), first);
  for (const auto& k : keys) {
    std::set<std::string> names;
    for (const auto& [name, _] : k.items()) names.insert(name);
    EXPECT_EQ(names, (std::set<std::string>{"kty", "crv", "x", "y", "kid", "alg", "use"}));
    EXPECT_EQ(k.at("kty"), "EC");
    EXPECT_EQ(k.at("crv"), "P-256");
    EXPECT_EQ(k.at("alg"), "ES256");
    EXPECT_EQ(k.at("use"), "sig");
    auto pub = EcPublicKey::from_jwk(k);
    ASSERT_TRUE(pub);
    EXPECT_EQ(pub.value().thumbprint(), k.at("kid").get<std::string>());
  }
  // The rendered order is the documented one.
  EXPECT_EQ(ring_->jwks_json().rfind(R"({"keys":[{"kty":"EC","crv":"P-256","x":")", 0), 0u);

  // A verifier that only has the JWKS (another service) accepts our tokens.
  PublicKeys published;
  for (const auto& k : keys)
    published.emplace(k.at("kid").get<std::string>(), EcPublicKey::from_jwk(k).value());
  auto v = verify_access_token(issue(), published, config_, clock_.now_micros());
  ASSERT_TRUE(v) << v.error().message();
}

// ---- keys and known answers ----

const json kRfc7515A3Jwk = {{"kty", "EC"},
                            {"crv", "P-256"},
                            {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
                            {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
                            {"d", "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}};
constexpr char kRfc7515A3Jws[] =
    "eyJhbGciOiJFUzI1NiJ9"
    "."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    "."
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

TEST(Rfc7515, AppendixA3ExampleVerifies) {
  auto key = EcPublicKey::from_jwk(kRfc7515A3Jwk);
  ASSERT_TRUE(key) << key.error().message();
  const PublicKeys keys{{"rfc7515-a3", key.value()}};
  JwsPolicy policy;
  policy.require_kid = false;  // A.3's header is just {"alg":"ES256"}
  auto v = jws_verify_es256(kRfc7515A3Jws, keys, policy);
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(v.value().header, json({{"alg", "ES256"}}));
  EXPECT_EQ(v.value().payload,
            "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}");
  EXPECT_EQ(v.value().kid, "");

  // The raw wrapper on the signing input agrees.
  const std::string jws = kRfc7515A3Jws;
  const auto dot = jws.rfind('.');
  Bytes sig;
  ASSERT_TRUE(base64url_decode(jws.substr(dot + 1), sig));
  EXPECT_TRUE(
      ecdsa_p256_verify_p1363(key.value().sec1(), ledger::as_bytes(jws.substr(0, dot)), sig));

  // Access tokens need a kid: the same JWS is not one.
  EXPECT_EQ(jws_verify_es256(kRfc7515A3Jws, keys).error(), JoseErrc::missing_kid);
  // One changed payload byte.
  std::string tampered = jws;
  tampered[30] = tampered[30] == 'A' ? 'B' : 'A';
  EXPECT_EQ(jws_verify_es256(tampered, keys, policy).error(), JoseErrc::bad_signature);
}

TEST(Rfc7638, ThumbprintOfTheRfc7515A3Key) {
  // Computed independently (Python hashlib over the canonical member string of RFC 7638 §3.2).
  auto key = EcPublicKey::from_jwk(kRfc7515A3Jwk);
  ASSERT_TRUE(key);
  EXPECT_EQ(key.value().thumbprint(), "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
}

TEST(EcPublicKey, JwkImportIsStrict) {
  const json good = kRfc7515A3Jwk;
  ASSERT_TRUE(EcPublicKey::from_jwk(good));
  auto with = [&](const char* name, const json& value) {
    json j = good;
    j[name] = value;
    return j;
  };
  json no_x = good;
  no_x.erase("x");
  const std::vector<json> bad = {
      json::array(),
      no_x,
      with("kty", "RSA"),
      with("kty", "OKP"),
      with("crv", "P-384"),
      with("crv", "secp256k1"),
      with("use", "enc"),
      with("use", 1),
      with("key_ops", {"encrypt"}),
      with("key_ops", json::array()),
      with("key_ops", "verify"),
      with("alg", "ES384"),
      with("alg", "HS256"),
      with("x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE"),    // 31 bytes
      with("x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU="),  // padded
      with("x", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),   // off the curve
      with("y", 7),
  };
  for (const auto& j : bad) EXPECT_FALSE(EcPublicKey::from_jwk(j)) << j;
  EXPECT_TRUE(EcPublicKey::from_jwk(with("key_ops", {"sign", "verify"})));
  EXPECT_TRUE(EcPublicKey::from_jwk(with("use", "sig")));
}

// Imported keys are kept by their exact SEC1 bytes (a DPoP key arrives with every request):
// a key imported again still verifies what it signed and nothing else, a point one bit away
// (off the curve) is refused before and after its neighbour was imported, and beyond the
// cache's size imports still work (the oldest keys are imported afresh).
TEST(EcPublicKey, ReimportedKeysVerifyTheSameAndNearbyInvalidPointsStayRefused) {
  auto signer = SigningKey::generate();
  auto other = SigningKey::generate();
  ASSERT_TRUE(signer && other);
  const Bytes pub = signer.value().public_key().sec1();
  const Bytes msg = {'o', 'k'};
  const auto sig = signer.value().sign_p1363(msg);
  const auto other_sig = other.value().sign_p1363(msg);
  ASSERT_TRUE(sig && other_sig);
  Bytes off_curve = pub;
  off_curve[64] ^= 1;
  EXPECT_FALSE(EcPublicKey::from_sec1(off_curve));
  for (int round = 0; round < 3; ++round) {
    auto key = EcPublicKey::from_sec1(pub);
    ASSERT_TRUE(key);
    EXPECT_EQ(key.value().sec1(), pub);
    EXPECT_EQ(key.value().thumbprint(), signer.value().public_key().thumbprint());
    EXPECT_TRUE(key.value().verify_p1363(msg, sig.value()));
    EXPECT_FALSE(key.value().verify_p1363(msg, other_sig.value()));
    EXPECT_FALSE(EcPublicKey::from_sec1(off_curve)) << "round " << round;
  }
  // More distinct keys than the cache holds, from several threads; each verifies its own
  // signature only.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 9000; ++i) {
        auto k = SigningKey::generate();
        if (!k) {
          ++failures;
          continue;
        }
        const auto s = k.value().sign_p1363(msg);
        auto imported = EcPublicKey::from_sec1(k.value().public_key().sec1());
        if (!s || !imported || !imported.value().verify_p1363(msg, s.value()) ||
            imported.value().verify_p1363(msg, sig.value())) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto again = EcPublicKey::from_sec1(pub);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again.value().verify_p1363(msg, sig.value()));
}

TEST(EcdsaRaw, MalformedInputIsFalseNeverACrash) {
  auto signer = SigningKey::generate();
  ASSERT_TRUE(signer);
  const Bytes pub = signer.value().public_key().sec1();
  const Bytes msg = {'h', 'i'};
  auto sig = signer.value().sign_p1363(msg);
  ASSERT_TRUE(sig);
  EXPECT_TRUE(ecdsa_p256_verify_p1363(pub, msg, sig.value()));
  EXPECT_FALSE(ecdsa_p256_verify_p1363(pub, Bytes{'h', 'o'}, sig.value()));

  Bytes compressed(pub.begin(), pub.begin() + 33);
  compressed[0] = static_cast<std::uint8_t>(0x02 | (pub[64] & 1));
  Bytes off_curve = pub;
  off_curve[64] ^= 1;
  Bytes hybrid = pub;
  hybrid[0] = 0x06;
  for (const Bytes& k : {Bytes{}, Bytes{0x00}, compressed, off_curve, hybrid, Bytes(65, 0)}) {
    EXPECT_FALSE(ecdsa_p256_verify_p1363(k, msg, sig.value()));
    EXPECT_FALSE(ecdsa_p256_verify_der(k, msg, Bytes{0x30, 0x00}));
  }
  // Random garbage of every length up to twice the longest DER signature.
  std::uint32_t x = 12345;
  for (std::size_t len = 0; len <= 144; ++len) {
    for (int round = 0; round < 20; ++round) {
      Bytes g(len);
      for (auto& b : g) {
        x = x * 1103515245u + 12345u;
        b = static_cast<std::uint8_t>(x >> 16);
      }
      if (len > 1 && round % 2 == 0) {
        g[0] = 0x30;  // look like a SEQUENCE to get past the first byte
        g[1] = static_cast<std::uint8_t>(len - 2);
      }
      EXPECT_FALSE(ecdsa_p256_verify_der(pub, msg, g));
      EXPECT_FALSE(ecdsa_p256_verify_p1363(pub, msg, g));
    }
  }
}

// ---- cache ----

TEST(VerifiedTokenCache, NeverOutlivesExpOrAGenerationAndStaysBounded) {
  VerifiedTokenCache cache(3);
  VerifiedToken t;
  t.claims.exp = 1000;
  t.claims.sub = "u";
  cache.insert("token-a", t, 7);
  EXPECT_TRUE(cache.find("token-a", 999'999'999, 7));
  EXPECT_FALSE(cache.find("token-a", 1'000'000'000, 7)) << "valid at exp";
  EXPECT_FALSE(cache.find("token-a", 5, 8)) << "another ring generation";
  EXPECT_FALSE(cache.find("token-b", 5, 7));
  EXPECT_FALSE(cache.find("token-a ", 5, 7));

  for (const char* name : {"b", "c", "d", "e"}) cache.insert(name, t, 7);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_FALSE(cache.find("token-a", 5, 7)) << "oldest evicted";
  EXPECT_TRUE(cache.find("e", 5, 7));
  cache.insert("e", t, 7);  // re-inserting must not grow it
  EXPECT_EQ(cache.size(), 3u);

  VerifiedTokenCache off(0);
  off.insert("x", t, 1);
  EXPECT_EQ(off.size(), 0u);
  EXPECT_FALSE(off.find("x", 0, 1));

  t.claims.exp = std::numeric_limits<std::int64_t>::max();
  cache.insert("far", t, 7);
  EXPECT_TRUE(cache.find("far", std::numeric_limits<std::int64_t>::max() - 1, 7));
}

TEST(VerifiedTokenCache, ExpBeforeTheMicrosecondRangeDoesNotOverflow) {
  // exp * 10^6 overflowed (UB) for exp below -9223372036854; such an entry is simply never used.
  VerifiedTokenCache cache(2);
  VerifiedToken t;
  for (const std::int64_t exp :
       {std::numeric_limits<std::int64_t>::min(), std::int64_t{-10'000'000'000'000}}) {
    t.claims.exp = exp;
    cache.insert("past", t, 1);
    EXPECT_FALSE(cache.find("past", std::numeric_limits<std::int64_t>::min(), 1)) << exp;
    EXPECT_FALSE(cache.find("past", 0, 1)) << exp;
  }
}

TEST_F(JoseTest, CachedTokensStillExpireOnTime) {
  VerifierConfig cached = config_;
  cached.cache_capacity = 2;
  const TokenVerifier v(*ring_, clock_, cached);
  const std::string token = issue(seconds(120));
  ASSERT_TRUE(v.verify(token));
  ASSERT_TRUE(v.verify(token));
  EXPECT_EQ(v.cache().size(), 1u);
  clock_.advance_micros(119'999'999);
  EXPECT_TRUE(v.verify(token));
  clock_.advance_micros(1);
  EXPECT_EQ(v.verify(token).error(), JoseErrc::expired);
  // Refusals are not cached, and a refused token never enters the cache.
  auto parts = split(issue());
  parts[1] = b64("{}");
  EXPECT_EQ(v.verify(join(parts)).error(), JoseErrc::bad_signature);
  EXPECT_EQ(v.cache().size(), 1u);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(v.verify(issue()));
  EXPECT_EQ(v.cache().size(), 2u);
}

TEST_F(JoseTest, VerifyingWhileRotatingIsSafe) {
  VerifierConfig cached = config_;
  cached.cache_capacity = 16;
  const TokenVerifier v(*ring_, clock_, cached);
  std::vector<std::string> tokens;
  for (int i = 0; i < 8; ++i) tokens.push_back(issue());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        if (!v.verify(tokens[static_cast<std::size_t>(i + t) % tokens.size()])) ++failures;
        if (!issuer_->issue({"u", "s", {}}, seconds(60))) ++failures;
      }
    });
  }
  for (int r = 0; r < 3; ++r) EXPECT_TRUE(ring_->rotate());
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(ring_->snapshot()->keys.size(), 4u);
}

TEST(JoseErrors, ReasonCodesAreStable) {
  EXPECT_EQ(reason_code(JoseErrc::bad_signature), "bad_signature");
  EXPECT_EQ(reason_code(JoseErrc::embedded_key_rejected), "embedded_key_rejected");
  EXPECT_EQ(reason_code(JoseErrc::wrong_issuer), "wrong_issuer");
  EXPECT_EQ(reason_code(JoseErrc::malformed), "malformed");
  EXPECT_EQ(reason_code(ledger::Errc::io_error), "internal_error");
  EXPECT_EQ(std::error_code(JoseErrc::expired).category().name(), std::string("sechex.jose"));
  EXPECT_EQ(std::error_code(JoseErrc::expired).message(), "token has expired");
}

}  // namespace
}  // namespace sechex::api::jose
