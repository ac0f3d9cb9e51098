// The ES256 code against the Wycheproof vectors in ../shared/testvectors/wycheproof/:
//   ecdsa_secp256r1_sha256_p1363_test.json  -> ecdsa_p256_verify_p1363
//   ecdsa_secp256r1_sha256_test.json        -> ecdsa_p256_verify_der
//   json_web_signature_test.json            -> jws_verify_es256
// Every vector is run; the counts are printed and pinned, so a vector file that changes shape (or
// a group this code silently stops recognising) fails instead of shrinking the coverage.
//
// "acceptable" results: these files have none today. Should one appear, the strict wrappers are
// expected to refuse it (they accept only canonical encodings), and it is counted separately.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "api/crypto/jose.h"
#include "support/wycheproof.h"

namespace sechex::api::jose {
namespace {

using nlohmann::json;
const auto& load = sechex::testing::load_wycheproof;
const auto& hex = sechex::testing::wycheproof_hex;

std::string id(const json& t) {
  return "tcId " + std::to_string(t.value("tcId", -1)) + " (" + t.value("comment", "") + ")";
}

struct EcdsaCounts {
  int groups = 0;
  int valid = 0;
  int invalid = 0;
  int acceptable = 0;
  int skipped = 0;
  int tested() const { return valid + invalid + acceptable; }
};

using Verify = bool (*)(ByteView, ByteView, ByteView);

EcdsaCounts run_ecdsa(const json& doc, const char* group_type, Verify verify) {
  EcdsaCounts c;
  for (const auto& group : doc.at("testGroups")) {
    const auto& key = group.at("publicKey");
    // Only P-256 with SHA-256 is what the wrappers implement; anything else is counted, and the
    // pinned count of skipped vectors (zero) makes it fail loudly.
    if (group.value("type", "") != group_type || key.value("curve", "") != "secp256r1" ||
        group.value("sha", "") != "SHA-256") {
      c.skipped += static_cast<int>(group.at("tests").size());
      continue;
    }
    ++c.groups;
    const Bytes pub = hex(key.at("uncompressed"));
    // Where the group also gives the key as a JWK, the JWK import must land on the same point.
    if (group.contains("publicKeyJwk")) {
      auto from_jwk = EcPublicKey::from_jwk(group.at("publicKeyJwk"));
      EXPECT_TRUE(from_jwk) << group.at("publicKeyJwk");
      if (from_jwk) {
        EXPECT_EQ(from_jwk.value().sec1(), pub);
      }
    }
    for (const auto& t : group.at("tests")) {
      SCOPED_TRACE(id(t));
      const Bytes msg = hex(t.at("msg")), sig = hex(t.at("sig"));
      const bool ok = verify(pub, msg, sig);
      const std::string result = t.at("result");
      if (result == "valid") {
        ++c.valid;
        EXPECT_TRUE(ok);
      } else if (result == "invalid") {
        ++c.invalid;
        EXPECT_FALSE(ok);
      } else {
        EXPECT_EQ(result, "acceptable");
        ++c.acceptable;
        EXPECT_FALSE(ok) << "strict wrappers refuse legacy encodings";
      }
    }
  }
  return c;
}

void report(const char* file, const EcdsaCounts& c) {
  std::printf(
      "[wycheproof] %s: %d vectors tested in %d groups (%d valid, %d invalid, %d acceptable), "
      "%d skipped\n",
      file, c.tested(), c.groups, c.valid, c.invalid, c.acceptable, c.skipped);
  ::testing::Test::RecordProperty("tested", c.tested());
}

TEST(JoseWycheproof, EcdsaP256Sha256P1363) {
  const json doc = load("ecdsa_secp256r1_sha256_p1363_test.json");
  ASSERT_FALSE(doc.is_discarded());
  const auto c = run_ecdsa(doc, "EcdsaP1363Verify", ecdsa_p256_verify_p1363);
  report("ecdsa_secp256r1_sha256_p1363_test.json", c);
  EXPECT_EQ(c.tested(), doc.at("numberOfTests").get<int>());
  EXPECT_EQ(c.tested(), 262);
  EXPECT_EQ(c.groups, 112);
  EXPECT_EQ(c.valid, 173);
  EXPECT_EQ(c.invalid, 89);
  EXPECT_EQ(c.acceptable, 0);
  EXPECT_EQ(c.skipped, 0);
}

TEST(JoseWycheproof, EcdsaP256Sha256Der) {
  const json doc = load("ecdsa_secp256r1_sha256_test.json");
  ASSERT_FALSE(doc.is_discarded());
  const auto c = run_ecdsa(doc, "EcdsaVerify", ecdsa_p256_verify_der);
  report("ecdsa_secp256r1_sha256_test.json", c);
  EXPECT_EQ(c.tested(), doc.at("numberOfTests").get<int>());
  EXPECT_EQ(c.tested(), 484);
  EXPECT_EQ(c.groups, 113);
  EXPECT_EQ(c.valid, 174);
  EXPECT_EQ(c.invalid, 310);
  EXPECT_EQ(c.acceptable, 0);
  EXPECT_EQ(c.skipped, 0);
}

// What a JWS claims to be, read from its header the way an attacker would want it read.
enum class Kind { es256, none, hmac, embedded_key, other_alg, unparseable };

Kind classify(const std::string& jws) {
  const auto dot = jws.find('.');
  if (dot == std::string::npos || jws.find('.', dot + 1) == std::string::npos ||
      jws.find('.', jws.find('.', dot + 1) + 1) != std::string::npos) {
    return Kind::unparseable;
  }
  Bytes raw;
  if (!base64url_decode(std::string_view(jws).substr(0, dot), raw)) return Kind::unparseable;
  const json h = json::parse(raw.begin(), raw.end(), nullptr, /*allow_exceptions=*/false);
  if (!h.is_object()) return Kind::unparseable;
  for (const char* k : {"jwk", "jku", "x5u", "x5c"}) {
    if (h.contains(k)) return Kind::embedded_key;
  }
  const std::string alg = h.value("alg", "");
  std::string lower = alg;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lower == "none") return Kind::none;
  if (alg.rfind("HS", 0) == 0) return Kind::hmac;
  if (alg == "ES256") return Kind::es256;
  return Kind::other_alg;
}

TEST(JoseWycheproof, JsonWebSignature) {
  const json doc = load("json_web_signature_test.json");
  ASSERT_FALSE(doc.is_discarded());
  // Stands in for the group's key in groups whose key we cannot use (HMAC, RSA, P-521): the
  // verifier must refuse those tokens on their header alone, whatever key sits under the kid.
  auto stand_in = SigningKey::generate();
  ASSERT_TRUE(stand_in);

  int total = 0, es256_groups = 0, es256_valid = 0, es256_invalid = 0, refused_at_import = 0,
      foreign = 0, foreign_valid_refused = 0;
  int by_kind[6] = {};
  for (const auto& group : doc.at("testGroups")) {
    const json pub = group.value("public", json::object());
    const std::string kid = group.at("private").value("kid", "");
    const bool es256 = pub.value("kty", "") == "EC" && pub.value("crv", "") == "P-256";
    PublicKeys keys;
    bool usable = true;
    if (es256) {
      ++es256_groups;
      auto key = EcPublicKey::from_jwk(pub);
      // Groups whose key is published for encryption (use=enc, key_ops=[encrypt]) must not
      // verify anything: the key is refused when imported.
      usable = static_cast<bool>(key);
      if (key) keys.emplace(kid, key.value());
    } else {
      keys.emplace(kid, stand_in.value().public_key());
    }
    for (const auto& t : group.at("tests")) {
      SCOPED_TRACE(id(t) + " in group " + group.value("comment", ""));
      ++total;
      const std::string jws = t.at("jws").get<std::string>();
      const std::string result = t.at("result");
      ASSERT_TRUE(result == "valid" || result == "invalid") << result;
      const Kind kind = classify(jws);
      ++by_kind[static_cast<int>(kind)];
      const auto r = jws_verify_es256(jws, keys);
      if (es256 && !usable) {
        EXPECT_EQ(result, "invalid");
        ++refused_at_import;
        ++es256_invalid;
        continue;
      }
      if (es256 && result == "valid") {
        ++es256_valid;
        EXPECT_TRUE(r) << r.error().message();
        continue;
      }
      if (!es256) {
        ++foreign;
        if (result == "valid") ++foreign_valid_refused;  // valid HS/RS/PS/ES512: not ES256
      } else {
        ++es256_invalid;
      }
      ASSERT_FALSE(r) << "accepted " << jws;
      switch (kind) {
        case Kind::none:
        case Kind::hmac:
        case Kind::other_alg:
          EXPECT_EQ(r.error(), JoseErrc::alg_not_allowed) << r.error().message();
          break;
        case Kind::embedded_key:
          EXPECT_EQ(r.error(), JoseErrc::embedded_key_rejected) << r.error().message();
          break;
        case Kind::unparseable:
          EXPECT_TRUE(r.error() == JoseErrc::malformed || r.error() == JoseErrc::bad_base64 ||
                      r.error() == JoseErrc::bad_json)
              << r.error().message();
          break;
        case Kind::es256:
          EXPECT_TRUE(r.error() == JoseErrc::bad_signature || r.error() == JoseErrc::unknown_kid)
              << r.error().message();
          break;
      }
    }
  }
  const auto kind = [&](Kind k) { return by_kind[static_cast<int>(k)]; };
  std::printf(
      "[wycheproof] json_web_signature_test.json: %d vectors tested; ES256 groups %d: %d valid "
      "accepted, %d invalid refused (%d by refusing a key not meant for signatures); other "
      "groups: %d refused (%d of them valid for their own algorithm). By header: %d ES256, %d "
      "alg none, %d HMAC (incl. key confusion), %d embedded key, %d other alg, %d unparseable\n",
      total, es256_groups, es256_valid, es256_invalid, refused_at_import, foreign,
      foreign_valid_refused, kind(Kind::es256), kind(Kind::none), kind(Kind::hmac),
      kind(Kind::embedded_key), kind(Kind::other_alg), kind(Kind::unparseable));
  ::testing::Test::RecordProperty("tested", total);

  EXPECT_EQ(total, doc.at("numberOfTests").get<int>());
  EXPECT_EQ(total, 401);
  EXPECT_EQ(es256_groups, 4);
  EXPECT_EQ(es256_valid, 2);
  EXPECT_EQ(es256_invalid, 39);
  EXPECT_EQ(refused_at_import, 2);
  EXPECT_EQ(foreign, 360);
  EXPECT_EQ(foreign_valid_refused, 44);
  EXPECT_EQ(kind(Kind::es256), 32);
  EXPECT_EQ(kind(Kind::none), 5);
  EXPECT_EQ(kind(Kind::hmac), 27);
  EXPECT_EQ(kind(Kind::embedded_key), 1);
  EXPECT_EQ(kind(Kind::other_alg), 309);
  EXPECT_EQ(kind(Kind::unparseable), 27);
}

}  // namespace
}  // namespace sechex::api::jose
