// The one mapping of an identity command's refusal to API.md's answer (api/routes/refusals.h):
// every refusal has its status and code, and the figures a client acts on are in the details.
#include "api/routes/refusals.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ledger/time_format.h"

namespace sechex::api {
namespace {

using identity::Refusal;
using identity::Refused;

TEST(Refusals, EveryRefusalHasTheStatusAndCodeOfApiMd) {
  const struct {
    Refused why;
    unsigned status;
    const char* code;
  } expected[] = {
      {Refused::not_owner, 421, "misdirected"},
      {Refused::overloaded, 503, "overloaded"},
      {Refused::unavailable, 503, "unavailable"},
      {Refused::password_changed, 503, "unavailable"},
      {Refused::internal, 500, "internal_error"},
      {Refused::email_taken, 409, "email_taken"},
      {Refused::invalid_email, 400, "invalid_email"},
      {Refused::weak_password, 400, "weak_password"},
      {Refused::link_invalid, 400, "token_invalid"},
      {Refused::link_expired, 410, "token_expired"},
      {Refused::rate_limited, 429, "rate_limited"},
      {Refused::account_locked, 423, "account_locked"},
      {Refused::email_not_verified, 403, "email_not_verified"},
      {Refused::invalid_credentials, 401, "invalid_credentials"},
      {Refused::wrong_password, 401, "invalid_credentials"},
      {Refused::invalid_code, 401, "invalid_code"},
      {Refused::code_expired, 410, "code_expired"},
      {Refused::invalid_token, 401, "invalid_token"},
      {Refused::no_account, 404, "not_found"},
      {Refused::not_found, 404, "not_found"},
      {Refused::reauth_required, 403, "reauth_required"},
      {Refused::not_premium, 403, "not_premium"},
      {Refused::attestation_failed, 401, "attestation_failed"},
      {Refused::device_unsupported, 400, "device_unsupported"},
      {Refused::invalid_role, 400, "invalid_role"},
      {Refused::spoof_attempt, 401, "spoof_attempt"},
      {Refused::replay_detected, 409, "replay_detected"},
      {Refused::exclusive_locked, 423, "reauth_required"},
      {Refused::feature_disabled, 403, "feature_disabled"},
      {Refused::invalid_flag, 404, "not_found"},
      {Refused::dpop_nonce_required, 401, "use_dpop_nonce"},
  };
  for (const auto& e : expected) {
    const auto error = to_api_error(Refusal(e.why));
    EXPECT_EQ(error.status, e.status) << identity::to_string(e.why);
    EXPECT_EQ(error.code, e.code) << identity::to_string(e.why);
    EXPECT_FALSE(error.message.empty()) << identity::to_string(e.why);
  }
}

// 000 FR-09 and API.md: an unsupported device is told why, what would do, and where to read.
TEST(Refusals, AnUnsupportedDeviceGetsItsReasonGuidanceAndUpgradeLink) {
  Refusal r(Refused::device_unsupported);
  r.reason = "key_unsupported";
  r.url = "https://id.example.com/help/devices";
  const auto e = to_api_error(r);
  EXPECT_EQ(e.details["reason"], "key_unsupported");
  EXPECT_EQ(e.details["upgradeUrl"], "https://id.example.com/help/devices");
  EXPECT_NE(e.details["guidance"].get<std::string>().find("P-256"), std::string::npos);
  Refusal failed(Refused::attestation_failed);
  failed.reason = "user_not_verified";
  EXPECT_EQ(to_api_error(failed).details["reason"], "user_not_verified");
}

// RFC 9449 §7.1: a refused proof, forged or replayed, names the error in WWW-Authenticate.
TEST(Refusals, SpoofAndReplayRefusalsCarryTheDpopChallenge) {
  for (auto why : {Refused::spoof_attempt, Refused::replay_detected}) {
    const auto e = to_api_error(Refusal(why));
    ASSERT_EQ(e.headers.size(), 1u) << identity::to_string(why);
    EXPECT_EQ(e.headers[0].first, "WWW-Authenticate");
    EXPECT_NE(e.headers[0].second.find("error=\"invalid_dpop_proof\""), std::string::npos);
  }
}

TEST(Refusals, ALockSaysWhenItEndsOrThatOnlyAnAdminEndsItFR012) {
  Refusal timed(Refused::account_locked);
  timed.locked_until = time_from_micros(1'767'225'600'000'000);
  timed.retry_after_seconds = 1800;
  const auto t = to_api_error(timed);
  EXPECT_EQ(t.details["lockedUntil"], format_rfc3339(timed.locked_until));
  EXPECT_EQ(t.details["needsAdminUnlock"], false);
  EXPECT_EQ(t.details["retryAfter"], 1800);
  EXPECT_EQ(t.retry_after_seconds, 1800);

  Refusal admin(Refused::account_locked);
  admin.locked_until = identity::kNever;
  const auto a = to_api_error(admin);
  EXPECT_TRUE(a.details["lockedUntil"].is_null());
  EXPECT_EQ(a.details["needsAdminUnlock"], true);
  EXPECT_FALSE(a.details.contains("retryAfter"));
  EXPECT_EQ(a.retry_after_seconds, 0) << "no Retry-After for a lock only an admin lifts";
}

TEST(Refusals, TheFiguresAClientActsOnAreInTheDetails) {
  Refusal wrong(Refused::invalid_credentials);
  wrong.remaining_attempts = 3;
  EXPECT_EQ(to_api_error(wrong).details["remainingAttempts"], 3);

  Refusal limited(Refused::rate_limited);
  limited.retry_after_seconds = 42;
  const auto l = to_api_error(limited);
  EXPECT_EQ(l.details["retryAfter"], 42);
  EXPECT_EQ(l.retry_after_seconds, 42);

  Refusal misdirected(Refused::not_owner);
  misdirected.partition = ledger::Partition{5};
  misdirected.owner = "http://node-b:8080";
  const auto m = to_api_error(misdirected);
  EXPECT_EQ(m.details["partition"], 5);
  EXPECT_EQ(m.details["owner"], "http://node-b:8080");

  Refusal email(Refused::invalid_email);
  email.email_reason = "no_at_sign";
  EXPECT_EQ(to_api_error(email).details["reason"], "no_at_sign");

  Refusal weak(Refused::weak_password);
  weak.password_check.unmet = {"min_length"};
  weak.policy = identity::PasswordPolicy::for_level(identity::PasswordLevel::high);
  const auto w = to_api_error(weak);
  EXPECT_EQ(w.details["unmet"], nlohmann::json::array({"min_length"}));
  EXPECT_EQ(w.details["policy"]["level"], "high");

  // A verification link says where to ask for a new one; a reset link does not.
  Refusal verify(Refused::link_expired);
  verify.link = identity::Link::verify_email;
  EXPECT_EQ(to_api_error(verify).details["resendUrl"], "/v1/auth/verify-email/resend");
  Refusal reset(Refused::link_expired);
  reset.link = identity::Link::password_reset;
  EXPECT_FALSE(to_api_error(reset).details.contains("resendUrl"));

  const auto token = to_api_error(Refusal(Refused::invalid_token));
  ASSERT_EQ(token.headers.size(), 1u);
  EXPECT_EQ(token.headers[0].first, "WWW-Authenticate");
  EXPECT_EQ(to_api_error(Refusal(Refused::reauth_required)).details["reauthUrl"],
            "/v1/auth/reauth");
}

}  // namespace
}  // namespace sechex::api
