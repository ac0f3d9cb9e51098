// Black-box tests of sign-in by email code, step-up re-authentication and the admin unlock
// (API.md "Identity", spec 002) against a running ledgerd, through HTTP only, with the codes
// read from the mails ledgerd wrote to its outbox. Scenario names are spec 002's.
//
// Not covered here: "OTP expiration" (a code 5 minutes old answers 410 code_expired). ledgerd
// has no way to move its clock, deliberately, and a test cannot wait 5 minutes; the edge is
// unit-tested on decide_otp in identity_decide_test.cc.
#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/ledgerd_fixture.h"

namespace sechex::api {
namespace {

namespace http = boost::beast::http;
using json = nlohmann::json;
using namespace std::chrono_literals;

// The shared fixture (support/ledgerd_fixture.h) and the OTP routes.
class Otp : public testing::LedgerdHttpTest {
 protected:
  testing::HttpReply request_code(const std::string& email) {
    return post("/v1/auth/otp/request", {{"email", email}});
  }
  testing::HttpReply verify(const std::string& email, const std::string& code) {
    return post("/v1/auth/otp/verify", {{"email", email}, {"code", code}});
  }
  static std::string wrong(const std::string& code) {
    return code == "00000000" ? "00000001" : "00000000";
  }
};

// 002 "Strong OTP Generation" / "OTP code generation": 8 digits on a line of their own, mailed
// to the account, and they sign in once (a token pair like login). An unknown address hears the
// same 202 and gets nothing.
TEST_F(Otp, MailedEightDigitCodeSignsInOnceOTPCodeGeneration) {
  start();
  const auto user = verified("otp.ann@example.com");
  ASSERT_FALSE(user.empty());
  const auto r = request_code("OTP.Ann@example.com");
  ASSERT_EQ(r.status, 202u) << r.body;
  const auto code = nth_code("otp.ann@example.com", 2);
  ASSERT_EQ(code.size(), 8u) << log();
  EXPECT_EQ(r.body.find(code), std::string::npos);

  const auto unknown = request_code("nobody@example.com");
  EXPECT_EQ(unknown.status, 202u);
  EXPECT_EQ(unknown.body, r.body) << "no enumeration";

  const auto in = verify("otp.ann@example.com", code);
  ASSERT_EQ(in.status, 200u) << in.body;
  const auto pair = data_of(in);
  EXPECT_EQ(pair["tokenType"], "Bearer");
  EXPECT_EQ(pair["expiresIn"], 3600);
  EXPECT_FALSE(pair["refreshToken"].get<std::string>().empty());
  const auto me = call(http::verb::get, "/v1/me", nullptr, pair["accessToken"]);
  ASSERT_EQ(me.status, 200u) << me.body;
  EXPECT_EQ(data_of(me)["userId"], user);

  const auto again = verify("otp.ann@example.com", code);
  EXPECT_EQ(again.status, 401u) << "single use";
  EXPECT_EQ(error_of(again)["code"], "invalid_code");
  const auto anon = verify("nobody@example.com", code);
  EXPECT_EQ(anon.status, 401u);
  EXPECT_EQ(error_of(anon)["code"], "invalid_code") << "an unknown address answers alike";
  EXPECT_EQ(mail_count("nobody@example.com"), 0u);

  const auto admin = admin_token();
  EXPECT_EQ(audit_count(admin, user, "OtpIssued"), 1u);
  EXPECT_EQ(audit_count(admin, user, "OtpVerified"), 1u);
  EXPECT_EQ(audit_count(admin, user, "LoginSucceeded"), 1u);
  EXPECT_EQ(audit_count(admin, user, "OtpFailed"), 1u);
}

// A new code replaces the previous one: the old code is refused.
TEST_F(Otp, ASecondRequestReplacesTheFirstCode) {
  start();
  ASSERT_FALSE(verified("otp.bo@example.com").empty());
  ASSERT_EQ(request_code("otp.bo@example.com").status, 202u);
  const auto first = nth_code("otp.bo@example.com", 2);
  ASSERT_EQ(request_code("otp.bo@example.com").status, 202u);
  const auto second = nth_code("otp.bo@example.com", 3);
  ASSERT_EQ(first.size(), 8u);
  ASSERT_EQ(second.size(), 8u);
  if (first != second) {  // 1 in 10^8 they are equal
    const auto old = verify("otp.bo@example.com", first);
    EXPECT_EQ(old.status, 401u) << old.body;
    EXPECT_EQ(error_of(old)["code"], "invalid_code");
  }
  EXPECT_EQ(verify("otp.bo@example.com", second).status, 200u);
}

// The per-account bound on code requests (the 6th answers 202 and mails nothing), checked
// without sleeping for an absence: identity_routes_test.cc.

// 002 "Per-email validation rate limit": more than 5 validations within 15 minutes -> 429 with
// Retry-After (even with the right code), logged; an unknown address is limited alike.
TEST_F(Otp, SixthValidationWithinFifteenMinutesIs429PerEmailValidationRateLimit) {
  start();
  const auto user = verified("otp.di@example.com");
  ASSERT_FALSE(user.empty());
  ASSERT_EQ(request_code("otp.di@example.com").status, 202u);
  const auto code = nth_code("otp.di@example.com", 2);
  ASSERT_EQ(code.size(), 8u);
  for (const auto* email : {"otp.di@example.com", "nobody.di@example.com"}) {
    for (int i = 0; i < 5; ++i) {
      const auto r = verify(email, wrong(code));
      EXPECT_EQ(r.status, 401u) << email << " " << i << " " << r.body;
    }
    const auto limited = verify(email, code);
    EXPECT_EQ(limited.status, 429u) << email << " " << limited.body;
    EXPECT_EQ(error_of(limited)["code"], "rate_limited");
    ASSERT_FALSE(header(limited, "retry-after").empty()) << email;
    const auto retry = std::stoi(header(limited, "retry-after"));
    EXPECT_GT(retry, 0);
    EXPECT_LE(retry, 15 * 60);
    EXPECT_EQ(error_of(limited)["details"]["retryAfter"], retry);
  }
  EXPECT_NE(log().find("otp validation rate limit hit for " + user), std::string::npos) << log();
  EXPECT_EQ(audit_count(admin_token(), user, "RateLimited"), 1u);
}

// 002 "Account lockout after repeated failures": more than 10 failures in an hour lock the
// account until an admin unlocks it, raise a security alert (audit event, metric, log line)
// and mail the owner. The validation limit is raised so 11 failures fit in one test.
TEST_F(Otp, MoreThanTenFailuresLockUntilAdminUnlockAccountLockoutAfterRepeatedFailures) {
  start({"--otp-validations-per-window", "100"});
  const auto email = std::string("otp.ed@example.com");
  const auto user = verified(email);
  ASSERT_FALSE(user.empty());
  const auto owner_token = access_token(email);
  ASSERT_EQ(request_code(email).status, 202u);
  const auto code = nth_code(email, 2);
  ASSERT_EQ(code.size(), 8u);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(verify(email, wrong(code)).status, 401u) << i;
  const auto locked = verify(email, wrong(code));
  ASSERT_EQ(locked.status, 423u) << locked.body;
  EXPECT_EQ(error_of(locked)["code"], "account_locked");
  EXPECT_EQ(error_of(locked)["details"]["needsAdminUnlock"], true);
  EXPECT_EQ(verify(email, code).status, 423u) << "even the right code";
  EXPECT_EQ(login(email, kPassword).status, 423u) << "the whole account is locked";

  // The alert: metric, one log line naming the account by id only, and the owner's mail.
  const auto metrics = this->metrics();
  EXPECT_NE(metrics.find(R"(sechex_security_alerts_total{kind="otp_lockout"} 1)"),
            std::string::npos)
      << metrics;
  EXPECT_NE(log().find("security alert otp_lockout: account " + user), std::string::npos) << log();
  EXPECT_EQ(log().find(email), std::string::npos);
  const auto mails = mails_to(email, 3);
  ASSERT_EQ(mails.size(), 3u);
  EXPECT_NE(mails[2].find("too many times"), std::string::npos) << mails[2];
  EXPECT_EQ(code_in(mails[2]), "");

  // Unlocking takes an admin: no token 401, a user's token 403, an unknown id 404.
  const auto path = "/v1/admin/users/" + user + "/unlock";
  EXPECT_EQ(post(path, {{"reason", "support ticket 1"}}).status, 401u);
  EXPECT_EQ(post(path, {{"reason", "support ticket 1"}}, owner_token).status, 403u);
  const auto admin = admin_token();
  const auto unknown = post("/v1/admin/users/u_nosuchuser/unlock", json::object(), admin);
  EXPECT_EQ(unknown.status, 404u) << unknown.body;
  EXPECT_EQ(post("/v1/admin/users/u%41/unlock", json::object(), admin).status, 404u);
  const auto unlocked = post(path, {{"reason", "support ticket 1"}}, admin);
  ASSERT_EQ(unlocked.status, 200u) << unlocked.body;
  EXPECT_EQ(data_of(unlocked)["status"], "unlocked");
  EXPECT_EQ(audit_count(admin, user, "AccountLocked"), 1u);
  EXPECT_EQ(audit_count(admin, user, "AccountUnlocked"), 1u);

  // 002 "Rate limit reset" by the admin: login works, and one wrong code does not re-lock.
  EXPECT_EQ(login(email, kPassword).status, 200u);
  EXPECT_EQ(verify(email, wrong(code)).status, 401u);
  ASSERT_EQ(request_code(email).status, 202u);
  EXPECT_EQ(verify(email, nth_code(email, 4)).status, 200u);
}

// The code appears nowhere but in its mail: not in responses, logs or the exported ledger
// (outside the mail's own sealed secret, see below).
TEST_F(Otp, TheCodeNeverAppearsInLogsResponsesOrTheExport) {
  start();
  const auto user = verified("otp.fay@example.com");
  ASSERT_FALSE(user.empty());
  const auto r = request_code("otp.fay@example.com");
  const auto code = nth_code("otp.fay@example.com", 2);
  ASSERT_EQ(code.size(), 8u);
  const auto in = verify("otp.fay@example.com", code);
  ASSERT_EQ(in.status, 200u);
  EXPECT_EQ(r.body.find(code), std::string::npos);
  EXPECT_EQ(in.body.find(code), std::string::npos);
  const auto token = data_of(in)["accessToken"].get<std::string>();
  ASSERT_EQ(post("/v1/auth/otp/request", json::object(), token).status, 202u);
  const auto reauth_code = nth_code("otp.fay@example.com", 3);
  ASSERT_EQ(reauth_code.size(), 8u);
  ASSERT_EQ(post("/v1/auth/reauth", {{"code", reauth_code}}, token).status, 200u);
  ASSERT_EQ(stop(), 0);
  const auto err = log();
  EXPECT_EQ(err.find(code), std::string::npos);
  EXPECT_EQ(err.find(reauth_code), std::string::npos);
  const auto exported = ctl({"export", "--format", "jsonl"});
  ASSERT_EQ(exported.code, 0) << exported.err;
  EXPECT_NE(exported.out.find("OtpIssued"), std::string::npos);
  // Exports never open sealed credentials: MailQueued's `secret` shows as redacted.
  EXPECT_NE(exported.out.find(R"("secret":"[redacted]")"), std::string::npos);
  EXPECT_EQ(exported.out.find(code), std::string::npos);
  EXPECT_EQ(exported.out.find(reauth_code), std::string::npos);
  EXPECT_EQ(ctl({"verify"}).code, 0);
}

// 002 "Sensitive Operation Re-authentication": a Reauth code (requested with the Bearer token,
// mailed to the caller) or the password gives a 5-minute reauth token; codes of one purpose do
// not serve the other.
TEST_F(Otp, ReauthWithCodeOrPasswordGivesAFiveMinuteTokenServerShareRevealRequiresReauth) {
  start();
  const auto email = std::string("otp.gus@example.com");
  const auto user = verified(email);
  ASSERT_FALSE(user.empty());
  const auto token = access_token(email);
  EXPECT_EQ(post("/v1/auth/reauth", {{"password", kPassword}}).status, 401u) << "needs a token";
  EXPECT_EQ(post("/v1/auth/reauth", {{"password", kPassword}, {"code", "12345678"}}, token).status,
            400u);

  ASSERT_EQ(post("/v1/auth/otp/request", json::object(), token).status, 202u);
  const auto code = nth_code(email, 2);
  ASSERT_EQ(code.size(), 8u);
  EXPECT_EQ(verify(email, code).status, 401u) << "a Reauth code does not sign in";
  const auto by_code = post("/v1/auth/reauth", {{"code", code}}, token);
  ASSERT_EQ(by_code.status, 200u) << by_code.body;
  EXPECT_EQ(data_of(by_code)["expiresIn"], 300);
  EXPECT_EQ(data_of(by_code)["reauthToken"].get<std::string>().size(), 43u);
  EXPECT_EQ(post("/v1/auth/reauth", {{"code", code}}, token).status, 401u) << "single use";

  ASSERT_EQ(request_code(email).status, 202u);
  const auto login_code = nth_code(email, 3);
  EXPECT_EQ(post("/v1/auth/reauth", {{"code", login_code}}, token).status, 401u)
      << "a Login code does not step up";

  const auto by_password = post("/v1/auth/reauth", {{"password", kPassword}}, token);
  ASSERT_EQ(by_password.status, 200u) << by_password.body;
  EXPECT_EQ(data_of(by_password)["expiresIn"], 300);
  EXPECT_NE(data_of(by_password)["reauthToken"], data_of(by_code)["reauthToken"]);
  EXPECT_EQ(audit_count(admin_token(), user, "ReauthGranted"), 2u);
}

// A wrong password on reauth counts toward the login lock (5 -> 423), so step-up cannot be used
// to guess the password.
TEST_F(Otp, WrongPasswordOnReauthCountsTowardTheLoginLock) {
  start();
  const auto email = std::string("otp.hal@example.com");
  ASSERT_FALSE(verified(email).empty());
  const auto token = access_token(email);
  for (int i = 0; i < 4; ++i) {
    const auto r = post("/v1/auth/reauth", {{"password", "Wr0ng-password"}}, token);
    ASSERT_EQ(r.status, 401u) << r.body;
    EXPECT_EQ(error_of(r)["details"]["remainingAttempts"], 4 - i);
  }
  const auto fifth = post("/v1/auth/reauth", {{"password", "Wr0ng-password"}}, token);
  EXPECT_EQ(fifth.status, 423u) << fifth.body;
  EXPECT_EQ(error_of(fifth)["code"], "account_locked");
  EXPECT_EQ(login(email, kPassword).status, 423u);
  EXPECT_EQ(post("/v1/auth/reauth", {{"password", kPassword}}, token).status, 423u);
}

}  // namespace
}  // namespace sechex::api
