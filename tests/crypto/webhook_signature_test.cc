// Standard Webhooks signatures (api/crypto/webhook_signature.h; API.md "Payments"): the
// reference vector of ../shared/testvectors/standards.json verifies and signs to the same bytes,
// and each way a delivery can be forged, replayed or garbled is refused with its own reason.
#include "api/crypto/webhook_signature.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

namespace sechex::api::webhooks {
namespace {

using json = nlohmann::json;

json reference() {
  std::ifstream in(std::string(SECHEX_SHARED_DIR) + "/testvectors/standards.json");
  EXPECT_TRUE(in) << "cannot open ../shared/testvectors/standards.json";
  return json::parse(in, nullptr, false)["standard_webhooks"];
}

struct Vector {
  json v = reference();
  std::string secret = v["secret"].get<std::string>();
  std::string id = v["id"].get<std::string>();
  std::int64_t ts = v["timestamp"].get<std::int64_t>();
  std::string ts_text = std::to_string(ts);
  std::string body = v["body"].get<std::string>();
  std::string signature = v["signature"].get<std::string>();
  Message message() const { return {id, ts_text, signature, body}; }
};

std::error_code refusal_of(const Result<void>& r) {
  if (r) return {};
  return r.error();
}

TEST(WebhookSignature, ReferenceVectorSignsToTheSameBytesAndVerifiesAtItsTimestamp) {
  const Vector v;
  const auto secret = Secret::parse(v.secret);
  ASSERT_TRUE(secret);
  EXPECT_EQ(sign(secret.value(), v.id, v.ts, v.body).value(), v.signature);
  EXPECT_TRUE(verify(secret.value(), v.message(), v.ts));
  EXPECT_EQ(secret.value().text(), v.secret);
}

TEST(WebhookSignature, AnyOneOfSeveralSignaturesCountsAndOtherVersionsAreIgnored) {
  const Vector v;
  const auto secret = Secret::parse(v.secret).value();
  auto m = v.message();
  const std::string rotated = "v1,bm90IHRoZSBzaWduYXR1cmU= v2,whatever " + v.signature;
  m.signature = rotated;
  EXPECT_TRUE(verify(secret, m, v.ts));
  const std::string only_other = "v1a," + v.signature.substr(3);
  m.signature = only_other;
  EXPECT_EQ(refusal_of(verify(secret, m, v.ts)), SignatureErrc::no_valid_signature);
}

// One forgery per case: each changes one thing of the reference delivery.
TEST(WebhookSignature, EachForgeryIsRefusedWithItsReason) {
  const Vector v;
  const auto secret = Secret::parse(v.secret).value();
  const auto other = Secret::generate().value();
  struct Case {
    const char* name;
    std::function<void(Message&, std::string&)> change;
    SignatureErrc expected;
    const Secret* key = nullptr;
  };
  std::string scratch;
  const std::vector<Case> cases = {
      {"body changed",
       [](Message& m, std::string& s) {
         s = "{\"test\": 2432232315}";
         m.body = s;
       },
       SignatureErrc::no_valid_signature},
      {"id changed",
       [](Message& m, std::string& s) {
         s = "msg_other";
         m.id = s;
       },
       SignatureErrc::no_valid_signature},
      {"timestamp changed within the window",
       [&](Message& m, std::string& s) {
         s = std::to_string(v.ts + 1);
         m.timestamp = s;
       },
       SignatureErrc::no_valid_signature},
      {"signature bit flipped",
       [&](Message& m, std::string& s) {
         s = v.signature;
         s[5] = s[5] == 'A' ? 'B' : 'A';
         m.signature = s;
       },
       SignatureErrc::no_valid_signature},
      {"signature not base64",
       [](Message& m, std::string& s) {
         s = "v1,%%%";
         m.signature = s;
       },
       SignatureErrc::no_valid_signature},
      {"another secret", [](Message&, std::string&) {}, SignatureErrc::no_valid_signature, &other},
      {"no signature", [](Message& m, std::string&) { m.signature = {}; },
       SignatureErrc::missing_header},
      {"no id", [](Message& m, std::string&) { m.id = {}; }, SignatureErrc::missing_header},
      {"id with a space",
       [](Message& m, std::string& s) {
         s = "msg 1";
         m.id = s;
       },
       SignatureErrc::bad_id},
      {"id too long",
       [](Message& m, std::string& s) {
         s = std::string(257, 'a');
         m.id = s;
       },
       SignatureErrc::bad_id},
      {"timestamp not digits",
       [](Message& m, std::string& s) {
         s = "16142653x0";
         m.timestamp = s;
       },
       SignatureErrc::bad_timestamp},
      {"timestamp signed",
       [](Message& m, std::string& s) {
         s = "+1614265330";
         m.timestamp = s;
       },
       SignatureErrc::bad_timestamp},
      {"timestamp huge",
       [](Message& m, std::string& s) {
         s = std::string(40, '9');
         m.timestamp = s;
       },
       SignatureErrc::bad_timestamp},
  };
  for (const auto& c : cases) {
    auto m = v.message();
    c.change(m, scratch);
    EXPECT_EQ(refusal_of(verify(c.key ? *c.key : secret, m, v.ts)), c.expected) << c.name;
  }
}

TEST(WebhookSignature, TimestampsOutsideFiveMinutesEitherWayAreStale) {
  const Vector v;
  const auto secret = Secret::parse(v.secret).value();
  EXPECT_TRUE(verify(secret, v.message(), v.ts + 300));
  EXPECT_TRUE(verify(secret, v.message(), v.ts - 300));
  EXPECT_EQ(refusal_of(verify(secret, v.message(), v.ts + 301)), SignatureErrc::stale_timestamp);
  EXPECT_EQ(refusal_of(verify(secret, v.message(), v.ts - 301)), SignatureErrc::stale_timestamp);
}

TEST(WebhookSignature, SecretsMustBeWhsecBase64OfEnoughBytes) {
  EXPECT_FALSE(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));  // no prefix
  EXPECT_FALSE(Secret::parse("whsec_"));
  EXPECT_FALSE(Secret::parse("whsec_c2hvcnQ="));  // 5 bytes
  EXPECT_FALSE(Secret::parse("whsec_not base64!"));
  const auto fresh = Secret::generate().value();
  EXPECT_EQ(fresh.key().size(), 32u);
  const auto again = Secret::parse(fresh.text());
  ASSERT_TRUE(again);
  EXPECT_EQ(again.value().key(), fresh.key());
  EXPECT_NE(Secret::generate().value().key(), fresh.key());
}

}  // namespace
}  // namespace sechex::api::webhooks
