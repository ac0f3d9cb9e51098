// Our AES-256-GCM, Ed25519 and HMAC-SHA-256 wrappers against the Wycheproof vectors in
// ../shared/testvectors/wycheproof/. Every vector in scope is checked; out-of-scope groups (AES
// key sizes and tag sizes the ledger never uses) are counted rather than silently dropped, and
// the counts are pinned so a changed vector file cannot quietly shrink the coverage.
#include "support/wycheproof.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "ledger/crypto.h"

namespace sechex::ledger {
namespace {

using nlohmann::json;
const auto& load = sechex::testing::load_wycheproof;
const auto& hex = sechex::testing::wycheproof_hex;

constexpr std::size_t kOpenSslMaxGcmIv = 128;  // bytes; see aes_gcm_seal in crypto.h

std::string id(const json& t) {
  return "tcId " + std::to_string(t.value("tcId", -1)) + " (" + t.value("comment", "") + ")";
}

struct Counts {
  int valid = 0;
  int invalid = 0;
  int acceptable = 0;
  int refused = 0;  // valid per Wycheproof, outside what the wrapper supports: checked to fail
  int skipped = 0;
  int tested() const { return valid + invalid + acceptable + refused; }
};

void report(const char* file, const Counts& c, const std::string& detail) {
  std::printf(
      "[wycheproof] %s: %d vectors tested (%d valid, %d invalid, %d acceptable, %d valid but "
      "unsupported and checked to be refused), %d skipped%s\n",
      file, c.tested(), c.valid, c.invalid, c.acceptable, c.refused, c.skipped, detail.c_str());
  ::testing::Test::RecordProperty("tested", c.tested());
  ::testing::Test::RecordProperty("skipped", c.skipped);
}

TEST(Wycheproof, AesGcm256SealsAndOpensEveryVectorAsSpecified) {
  const json doc = load("aes_gcm_test.json");
  ASSERT_FALSE(doc.is_discarded());
  ASSERT_EQ(doc.value("algorithm", ""), "AES-GCM");
  Counts c;
  for (const auto& group : doc.at("testGroups")) {
    // Our wrapper is AES-256 with full 16-byte tags only; other groups cannot be expressed.
    const bool in_scope = group.at("keySize") == 256 && group.at("tagSize") == 128;
    for (const auto& t : group.at("tests")) {
      if (!in_scope) {
        ++c.skipped;
        continue;
      }
      SCOPED_TRACE(id(t));
      const Bytes key = hex(t.at("key")), iv = hex(t.at("iv")), aad = hex(t.at("aad")),
                  msg = hex(t.at("msg")), tag = hex(t.at("tag"));
      Bytes ct_tag = hex(t.at("ct"));
      ct_tag.insert(ct_tag.end(), tag.begin(), tag.end());
      const auto opened = crypto::aes_gcm_open(key, iv, aad, ct_tag);
      const std::string result = t.at("result");
      if (result == "valid" && iv.size() > kOpenSslMaxGcmIv) {
        // GCM allows such IVs but OpenSSL 3 refuses them; the wrapper must say so plainly.
        ++c.refused;
        EXPECT_EQ(crypto::aes_gcm_seal(key, iv, aad, msg).error(), Errc::invalid_argument);
        ASSERT_FALSE(opened);
        EXPECT_EQ(opened.error(), Errc::invalid_argument);
      } else if (result == "valid") {
        ++c.valid;
        const auto sealed = crypto::aes_gcm_seal(key, iv, aad, msg);
        ASSERT_TRUE(sealed) << sealed.error().message();
        EXPECT_EQ(to_hex(sealed.value()), to_hex(ct_tag));
        ASSERT_TRUE(opened) << opened.error().message();
        EXPECT_EQ(to_hex(opened.value()), to_hex(msg));
      } else if (result == "invalid") {
        ++c.invalid;
        ASSERT_FALSE(opened);
        // An empty IV is a caller error; everything else is a forgery.
        EXPECT_EQ(opened.error(),
                  iv.empty() ? Errc::invalid_argument : Errc::authentication_failed);
      } else {
        // "acceptable": legal but questionable; record what we do rather than asserting a side.
        ++c.acceptable;
        std::printf("[wycheproof] AES-GCM acceptable %s: open %s\n", id(t).c_str(),
                    opened ? "succeeds" : "fails");
      }
    }
  }
  report("aes_gcm_test.json", c, " (AES-128/192 groups, outside our AES-256-only wrapper)");
  EXPECT_EQ(c.tested() + c.skipped, doc.at("numberOfTests").get<int>());
  // Counts for Wycheproof 0.9rc5: 105 AES-256 vectors with IVs of 0 to 2056 bits; only the
  // 2056-bit one exceeds OpenSSL's limit.
  EXPECT_EQ(c.valid, 75);
  EXPECT_EQ(c.refused, 1);
  EXPECT_EQ(c.invalid, 29);
  EXPECT_EQ(c.skipped, 211);
}

TEST(Wycheproof, Ed25519VerifiesExactlyTheValidSignatures) {
  const json doc = load("ed25519_test.json");
  ASSERT_FALSE(doc.is_discarded());
  ASSERT_EQ(doc.value("algorithm", ""), "EDDSA");
  Counts c;
  for (const auto& group : doc.at("testGroups")) {
    const Bytes pk = hex(group.at("publicKey").at("pk"));
    for (const auto& t : group.at("tests")) {
      SCOPED_TRACE(id(t));
      const bool ok = crypto::ed25519_verify(pk, hex(t.at("msg")), hex(t.at("sig")));
      const std::string result = t.at("result");
      if (result == "valid") {
        ++c.valid;
        EXPECT_TRUE(ok);
      } else if (result == "invalid") {
        ++c.invalid;
        EXPECT_FALSE(ok);
      } else {
        ++c.acceptable;
        std::printf("[wycheproof] Ed25519 acceptable %s: verify %s\n", id(t).c_str(),
                    ok ? "accepts" : "rejects");
      }
    }
  }
  report("ed25519_test.json", c, "");
  EXPECT_EQ(c.tested(), doc.at("numberOfTests").get<int>());
  EXPECT_EQ(c.valid, 88);
  EXPECT_EQ(c.invalid, 63);
}

TEST(Wycheproof, HmacSha256MatchesFullTagsAndNeverAcceptsTruncatedOnes) {
  const json doc = load("hmac_sha256_test.json");
  ASSERT_FALSE(doc.is_discarded());
  ASSERT_EQ(doc.value("algorithm", ""), "HMACSHA256");
  Counts full;
  int truncated = 0;
  for (const auto& group : doc.at("testGroups")) {
    const int tag_bits = group.at("tagSize");
    for (const auto& t : group.at("tests")) {
      SCOPED_TRACE(id(t));
      const auto mac = crypto::hmac_sha256(hex(t.at("key")), hex(t.at("msg")));
      ASSERT_TRUE(mac);
      const Bytes tag = hex(t.at("tag"));
      const bool valid = t.at("result") == "valid";
      ASSERT_TRUE(valid || t.at("result") == "invalid") << "unexpected result " << t.at("result");
      const bool match = crypto::constant_time_equal(mac.value(), tag);
      if (tag_bits == 256) {
        ++(valid ? full.valid : full.invalid);
        EXPECT_EQ(match, valid);
        continue;
      }
      // The ledger never truncates MACs, so a truncated tag must never pass our comparison. The
      // vector still checks the computation: a valid truncated tag is a prefix of our full MAC.
      ++truncated;
      EXPECT_FALSE(match);
      ASSERT_EQ(tag.size() * 8, static_cast<std::size_t>(tag_bits));
      const bool prefix = crypto::constant_time_equal(ByteView(mac.value()).first(tag.size()), tag);
      EXPECT_EQ(prefix, valid);
    }
  }
  report("hmac_sha256_test.json", full,
         "; plus " + std::to_string(truncated) +
             " truncated-tag (128-bit) vectors, each refused by the full-tag comparison and its "
             "computation checked as a prefix of our MAC");
  EXPECT_EQ(full.tested() + truncated, doc.at("numberOfTests").get<int>());
  EXPECT_EQ(full.valid, 33);
  EXPECT_EQ(full.invalid, 54);
  EXPECT_EQ(truncated, 87);
}

}  // namespace
}  // namespace sechex::ledger
