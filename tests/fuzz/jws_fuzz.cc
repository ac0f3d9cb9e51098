// libFuzzer target for the JWS / access-token parser (api/crypto/jose.h): arbitrary bytes go to
// jws_verify_es256 (with and without a required kid), verify_access_token and the verified-token
// cache against a fixed key set, and to base64url_decode and EcPublicKey::from_jwk. Every input
// must give a verdict without crashing, leaking or hitting UB, and whatever is accepted must obey
// the rules jose.h promises.
//
// The key is RFC 7515 appendix A.3's (public, so the seeds in corpus/jws can be re-signed with
// tests/fuzz/make_jws_seeds.py); its kid is the RFC 7638 thumbprint.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/crypto/jose.h"
#include "api/json/json_input.h"

namespace {

namespace jose = sechex::api::jose;

constexpr char kKid[] = "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U";
constexpr char kIssuer[] = "https://ledger.example";
constexpr char kAudience[] = "sechex-api";
// 2026-01-01T00:00:00Z: the seeds' tokens are valid at this time (iat just before, exp after).
constexpr std::int64_t kNowMicros = 1'767'225'600'000'000;
constexpr std::int64_t kNowSeconds = kNowMicros / 1'000'000;
constexpr std::int64_t kSkew = 60;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Fixture {
  jose::PublicKeys one;  // the A.3 key under its thumbprint
  jose::PublicKeys two;  // the same key under a second kid too: no kid-less fallback
  jose::VerifierConfig config;

  Fixture() {
    const nlohmann::json jwk = {{"kty", "EC"},
                                {"crv", "P-256"},
                                {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
                                {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}};
    auto key = jose::EcPublicKey::from_jwk(jwk);
    check(key.has_value() && key.value().thumbprint() == kKid);
    one.emplace(kKid, key.value());
    two = one;
    two.emplace("second", key.value());
    config.issuer = kIssuer;
    config.audience = kAudience;
    config.clock_skew = std::chrono::seconds(kSkew);
  }
};

// What an accepted JWS must look like whatever the policy.
void check_accepted_header(const jose::VerifiedJws& v, const jose::PublicKeys& keys) {
  check(v.header.is_object());
  const auto alg = v.header.find("alg");
  check(alg != v.header.end() && alg->is_string() && alg->get<std::string>() == "ES256");
  for (const char* name : {"crit", "jku", "x5u", "jwk", "x5c"}) check(!v.header.contains(name));
  if (!v.kid.empty()) check(keys.count(v.kid) == 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Fixture f;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // base64url: one spelling per byte string, so whatever decodes re-encodes to the input.
  jose::Bytes decoded;
  if (jose::base64url_decode(input, decoded)) check(jose::base64url_encode(decoded) == input);

  // A JWK, when the input is a JSON object.
  const auto json = sechex::api::parse_json_input(input);
  if (json) {
    auto key = jose::EcPublicKey::from_jwk(json.value());
    if (key) check(jose::EcPublicKey::from_sec1(key.value().sec1()).has_value());
  }

  // Generic JWS, kid required (the default policy).
  if (auto v = jose::jws_verify_es256(input, f.two)) {
    check(!v.value().kid.empty());
    check_accepted_header(v.value(), f.two);
  } else {
    check(v.error().category() == jose::jose_category());
  }
  // Kid optional with a single key (RFC 7515's examples).
  jose::JwsPolicy loose;
  loose.require_kid = false;
  if (auto v = jose::jws_verify_es256(input, f.one, loose)) check_accepted_header(v.value(), f.one);
  // With a typ requirement; and the kid-less fallback must not pick a key among several.
  loose.typ = "JWT";
  if (auto v = jose::jws_verify_es256(input, f.two, loose)) {
    check_accepted_header(v.value(), f.two);
    check(!v.value().kid.empty() && v.value().header.at("typ") == "JWT");
  }

  // Access tokens, and the cache they go through.
  auto token = jose::verify_access_token(input, f.one, f.config, kNowMicros);
  if (token) {
    const auto& c = token.value().claims;
    check(token.value().kid == kKid);
    check(c.iss == kIssuer && c.aud == kAudience);
    check(kNowSeconds < c.exp);
    check(c.iat <= kNowSeconds + kSkew && (!c.nbf || *c.nbf <= kNowSeconds + kSkew));
    check(!c.sub.empty() && !c.sid.empty() && !c.jti.empty());
    // One valid text per token: its signature's s is the low one (s <= n/2, jose.h).
    jose::Bytes sig;
    check(jose::base64url_decode(input.substr(input.rfind('.') + 1), sig) && sig.size() == 64);
    static constexpr std::uint8_t kHalfOrder[32] = {0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00,
                                                    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42,
                                                    0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8};
    check(!std::lexicographical_compare(kHalfOrder, kHalfOrder + 32, sig.begin() + 32, sig.end()));
    jose::VerifiedTokenCache cache(2);
    cache.insert(input, token.value(), 1);
    check(cache.find(input, kNowMicros, 1).has_value());
    check(!cache.find(input, kNowMicros, 2).has_value());
    check(c.exp > INT64_MAX / 1'000'000 || !cache.find(input, c.exp * 1'000'000, 1).has_value());
  } else {
    const std::string_view reason = jose::reason_code(token.error());
    check(!reason.empty() && reason != "internal_error" && reason != "ok");
  }
  return 0;
}
