// Spec 003 FR-026: every event carries subject, type, time and connection details (sealed).
// The event schema: verification of hostile bytes, version refusal, the JSON codec and that
// every event type the issue lists exists.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "schemas/events.h"
#include "schemas/json_codec.h"
#include "support/test_util.h"

namespace sechex::schemas {
namespace {

TEST(Schema, HasEveryEventTypeTheLedgerNeeds) {
  const std::vector<std::string> required = {"UserRegistered",
                                             "EmailVerificationIssued",
                                             "EmailVerified",
                                             "LoginSucceeded",
                                             "LoginFailed",
                                             "AccountLocked",
                                             "AccountUnlocked",
                                             "SessionStarted",
                                             "TokenRefreshed",
                                             "RefreshTokenReuseDetected",
                                             "SessionRevoked",
                                             "LoggedOut",
                                             "PasswordChanged",
                                             "PasswordResetRequested",
                                             "PasswordReset",
                                             "OtpIssued",
                                             "OtpVerified",
                                             "OtpFailed",
                                             "ReauthGranted",
                                             "RateLimited",
                                             "CsrfRejected",
                                             "OAuthLoginStarted",
                                             "OAuthLoginCompleted",
                                             "ExclusiveChallengeIssued",
                                             "ExclusiveActivated",
                                             "ExclusiveActionValidated",
                                             "ExclusiveRequestRejected",
                                             "ExclusiveLocked",
                                             "ExclusiveEnded",
                                             "PaymentCreated",
                                             "PaymentStatusChanged",
                                             "WebhookReceived",
                                             "SecretCreated",
                                             "CheckIn",
                                             "ShareRevealed",
                                             "RoleGranted",
                                             "PolicyChanged",
                                             "FlagChanged",
                                             "ConsentRecorded",
                                             "SubjectErased",
                                             "KeyRotated",
                                             "ApplicationEvent",
                                             "MailQueued",
                                             "MailDelivered",
                                             "MailDeliveryFailed",
                                             "SessionSeen",
                                             "ExclusiveDeviceRemoved",
                                             "UserAttributesSet"};
  const auto& names = event_type_names();
  for (const auto& r : required) {
    EXPECT_NE(std::find(names.begin(), names.end(), r), names.end()) << r;
  }
}

TEST(Schema, PersonalDataFieldsAreSealedBytes) {
  // Evolution rule 4: PII only in *_sealed [ubyte] fields.
  for (const auto& type : event_type_names()) {
    for (const auto& f : event_fields(type)) {
      for (const char* pii : {"email", "ip", "user_agent", "description", "device", "device_model",
                              "provider_subject", "password_hash"}) {
        if (f.name == pii) ADD_FAILURE() << type << "." << f.name << " holds PII unsealed";
      }
      if (f.name.size() > 7 && f.name.substr(f.name.size() - 7) == "_sealed") {
        EXPECT_EQ(f.type, "ubyte_vector") << type << "." << f.name;
      }
    }
  }
}

TEST(Schema, EventsBuiltByTheBuilderPassTheCheck) {
  const auto ev = testing::make_event("s1", "n");
  EXPECT_EQ(check_envelope(ev.data(), ev.size()), CheckResult::ok);
  const auto* env = envelope_of(ev.data());
  EXPECT_EQ(env->subject()->str(), "s1");
  EXPECT_EQ(env->event_id()->bytes()->size(), 16u);
  EXPECT_EQ(env->schema_version(), kSchemaVersion);
}

TEST(Schema, RejectsTruncatedAndRandomBytesWithoutCrashing) {
  const auto ev = testing::make_event("s1", "n");
  // Cutting into the data must fail; the last few bytes may be alignment padding the verifier
  // does not need (the hash chain covers exact bytes anyway).
  for (std::size_t n = 0; n + 8 < ev.size(); ++n) {
    std::vector<std::uint8_t> prefix(ev.begin(), ev.begin() + static_cast<long>(n));
    EXPECT_NE(check_envelope(prefix.data(), prefix.size()), CheckResult::ok)
        << "prefix of " << n << " bytes";
  }
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::uint8_t> junk(rng() % 200);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    (void)check_envelope(junk.data(), junk.size());  // must not crash (ASan/UBSan watch)
    // Single-byte corruptions of a valid event must not crash either.
    auto mutated = ev;
    mutated[rng() % mutated.size()] = static_cast<std::uint8_t>(rng());
    (void)check_envelope(mutated.data(), mutated.size());
  }
}

TEST(Schema, RefusesNewerSchemaVersions) {
  flatbuffers::FlatBufferBuilder fbb;
  const std::array<std::uint8_t, 16> id{};
  const schema::EventId eid(flatbuffers::span<const std::uint8_t, 16>(id.data(), 16));
  auto body = schema::CreateCheckIn(fbb);
  auto env = schema::CreateEnvelope(fbb, kSchemaVersion + 1, &eid, 0, fbb.CreateString("s"), 0, 0,
                                    0, schema::Event::CheckIn, body.Union());
  schema::FinishEnvelopeBuffer(fbb, env);
  EXPECT_EQ(check_envelope(fbb.GetBufferPointer(), fbb.GetSize()), CheckResult::newer_version);
}

TEST(JsonCodec, RoundTripsAnEnvelope) {
  const auto ev = testing::make_event("s1", "note-1", 123);
  const auto json = envelope_to_json(ev.data(), ev.size());
  ASSERT_TRUE(json);
  const auto parsed = nlohmann::json::parse(*json);
  EXPECT_EQ(parsed["event_type"], "CheckIn");
  EXPECT_EQ(parsed["event"]["secret_id"], "note-1");
  EXPECT_EQ(parsed["time_micros"], 123);
  std::string error;
  const auto back = envelope_from_json(*json, &error);
  ASSERT_TRUE(back) << error;
  // Builders may lay out the same data differently; the content must be identical.
  ASSERT_EQ(check_envelope(back->data(), back->size()), CheckResult::ok);
  EXPECT_EQ(envelope_to_json(back->data(), back->size()), json);
}

TEST(JsonCodec, ReportsMalformedJsonWithAMessage) {
  std::string error;
  EXPECT_FALSE(envelope_from_json("{\"subject\": ", &error));
  EXPECT_FALSE(error.empty());
  EXPECT_FALSE(envelope_from_json("{\"no_such_field\": 1}", &error));
}

}  // namespace
}  // namespace sechex::schemas

namespace sechex::schemas {
namespace {

std::vector<std::uint8_t> golden(const std::string& name) {
  std::ifstream in(std::string(SECHEX_SOURCE_DIR) + "/tests/ledger/testdata/" + name);
  std::string hex;
  in >> hex;
  ledger::Bytes bytes;
  EXPECT_TRUE(ledger::from_hex(hex, bytes)) << name;
  return bytes;
}

// Evolution rule: every build reads what schema version 1 wrote. The files were made with
// `flatc -b` from these JSON documents (tests/ledger/testdata/README.md), not by our builder.
TEST(GoldenV1Events, StillDecodeWithTheirOriginalContent) {
  const auto reg = golden("v1_registered.hex");
  ASSERT_EQ(check_envelope(reg.data(), reg.size()), CheckResult::ok);
  const auto* e = envelope_of(reg.data());
  EXPECT_EQ(e->subject()->str(), "user-golden");
  EXPECT_EQ(e->time_micros(), 1'767'225'600'000'000);
  EXPECT_EQ(e->event_id()->bytes()->Get(15), 16);
  ASSERT_EQ(e->event_type(), schema::Event::UserRegistered);
  EXPECT_EQ(e->event_as_UserRegistered()->consent_version()->str(), "2026-01");
  EXPECT_EQ(e->event_as_UserRegistered()->email_sealed()->size(), 3u);
  EXPECT_EQ(e->source()->ip_sealed()->Get(1), 170);

  const auto pay = golden("v1_payment.hex");
  ASSERT_EQ(check_envelope(pay.data(), pay.size()), CheckResult::ok);
  const auto* p = envelope_of(pay.data())->event_as_PaymentCreated();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->amount_minor(), 1999);
  EXPECT_EQ(p->currency()->str(), "EUR");

  const auto app = golden("v1_app.hex");
  ASSERT_EQ(check_envelope(app.data(), app.size()), CheckResult::ok);
  const auto* a = envelope_of(app.data())->event_as_ApplicationEvent();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type()->str(), "invoice.sent");
  EXPECT_EQ(envelope_of(app.data())->actor()->str(), "app:billing");
}

// The direct walk that renders audit entries must give exactly what the FlatBuffers text
// generator gives, for every event type and every field type in use.
TEST(EnvelopeParts, DirectRenderingEqualsTheTextGeneratorForEveryEventType) {
  int n = 0;
  for (const auto& type : event_type_names()) {
    nlohmann::ordered_json event = nlohmann::ordered_json::object();
    for (const auto& f : event_fields(type)) {
      if (f.type == "string") {
        event[f.name] = "v\u00e9\"" + f.name;
      } else if (f.type == "bool") {
        event[f.name] = true;
      } else if (f.type == "ubyte_vector") {
        event[f.name] = {0, 7, 255};
      } else if (f.type.rfind("enum:", 0) == 0) {
        event[f.name] = 1;
      } else {
        event[f.name] = 7;
      }
    }
    nlohmann::ordered_json env;
    env["event_id"] = {{"bytes", std::vector<int>(16, 3)}};
    env["time_micros"] = 1;
    env["subject"] = "s";
    env["source"] = {{"ip_sealed", {1, 2}}, {"user_agent_sealed", {3}}};
    env["event_type"] = type;
    env["event"] = event;
    std::string error;
    const auto bytes = envelope_from_json(env.dump(), &error);
    ASSERT_TRUE(bytes) << type << ": " << error;
    const auto text = envelope_to_json(bytes->data(), bytes->size());
    ASSERT_TRUE(text);
    const auto expected = nlohmann::json::parse(*text);
    const auto parts = envelope_parts_to_json(bytes->data());
    ASSERT_TRUE(parts) << type;
    EXPECT_EQ((*parts)["event"], expected["event"]) << type;
    EXPECT_EQ((*parts)["source"], expected["source"]) << type;
    ++n;
  }
  EXPECT_EQ(n, static_cast<int>(event_type_names().size()));
  EXPECT_GT(n, 40);
}

}  // namespace
}  // namespace sechex::schemas
