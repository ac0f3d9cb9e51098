// Black-box tests of the identity routes (API.md "Identity") against a running ledgerd: each
// acceptance scenario of spec 004 (and the rules 003 and 002 add) by ID, through HTTP only,
// with the verification link read from the mail ledgerd wrote to its outbox.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "api/crypto/jose.h"
#include "api/routes/ledger_api.h"
#include "ledger/clock.h"
#include "support/ledgerd_fixture.h"
#include "support/smtp_server.h"

namespace sechex::api {
namespace {

namespace http = boost::beast::http;
using json = nlohmann::json;
using testing::slurp;
using namespace std::chrono_literals;

// The shared fixture (support/ledgerd_fixture.h).
class Identity : public testing::LedgerdHttpTest {};

// 004 scenarios 1, 4, 7, 13, 14 (FR-001, FR-006, FR-007, FR-009): register, the account waits
// for its email, the mailed link verifies it once, and login gives a working token pair.
TEST_F(Identity, RegisterVerifyByMailedLinkAndLogInFR001FR006FR007FR009) {
  start();
  const auto reg =
      post("/v1/auth/register",
           {{"email", "  Ann.Lee@Example.COM "}, {"password", "Tr0ub4dor&3x"}, {"consent", true}});
  ASSERT_EQ(reg.status, 201u) << reg.body;
  const auto user = data_of(reg)["userId"].get<std::string>();
  EXPECT_EQ(data_of(reg)["status"], "pending_verification");
  EXPECT_TRUE(data_of(reg)["warnings"].empty());

  // Scenario 15 / FR-006: not before the email is verified (and only with the right password).
  const auto early = login("ann.lee@example.com", "Tr0ub4dor&3x");
  EXPECT_EQ(early.status, 403u) << early.body;
  EXPECT_EQ(error_of(early)["code"], "email_not_verified");
  EXPECT_EQ(login("ann.lee@example.com", "wrong-Passw0rd").status, 401u);

  const auto mail = mail_to("ann.lee@example.com");
  ASSERT_FALSE(mail.empty()) << log();
  const auto token = token_in(mail);
  ASSERT_EQ(token.size(), 43u) << mail;
  EXPECT_EQ(post("/v1/auth/verify-email", {{"token", token + "x"}}).status, 400u);
  const auto v = post("/v1/auth/verify-email", {{"token", token}});
  ASSERT_EQ(v.status, 200u) << v.body;
  EXPECT_EQ(data_of(v)["status"], "verified");
  const auto again = post("/v1/auth/verify-email", {{"token", token}});
  EXPECT_EQ(again.status, 400u) << "single use";
  EXPECT_EQ(error_of(again)["code"], "token_invalid");

  const auto in = login("ANN.LEE@example.com", "Tr0ub4dor&3x");
  ASSERT_EQ(in.status, 200u) << in.body;
  const auto pair = data_of(in);
  EXPECT_EQ(pair["tokenType"], "Bearer");
  EXPECT_EQ(pair["expiresIn"], 3600);
  const auto me = call(http::verb::get, "/v1/me", nullptr, pair["accessToken"]);
  ASSERT_EQ(me.status, 200u) << me.body;
  EXPECT_EQ(data_of(me)["userId"], user);
  EXPECT_EQ(data_of(me)["email"], "ann.lee@example.com");
  EXPECT_EQ(data_of(me)["emailVerified"], true);
  const auto sessions = call(http::verb::get, "/v1/me/sessions", nullptr, pair["accessToken"]);
  ASSERT_EQ(sessions.status, 200u);
  ASSERT_EQ(data_of(sessions)["sessions"].size(), 1u);
  EXPECT_EQ(data_of(sessions)["sessions"][0]["current"], true);
}

// 004 scenarios 2, 3 (FR-002, FR-003, FR-005), 003 email validation and disposable warning.
TEST_F(Identity, RegistrationRefusesBadEmailsWeakPasswordsAndDuplicatesAndWarnsOnDisposable) {
  start();
  auto reg = [&](const std::string& email, const std::string& password, json consent = true) {
    return post("/v1/auth/register",
                {{"email", email}, {"password", password}, {"consent", consent}});
  };
  const auto bad = reg("a..b@example.com", "Tr0ub4dor&3x");
  EXPECT_EQ(bad.status, 400u);
  EXPECT_EQ(error_of(bad)["code"], "invalid_email");
  EXPECT_EQ(error_of(bad)["details"]["reason"], "consecutive_dots");
  EXPECT_EQ(error_of(reg("no-at-sign", "Tr0ub4dor&3x"))["details"]["reason"], "missing_at");
  const auto weak = reg("weak@example.com", "short1");
  EXPECT_EQ(weak.status, 400u);
  EXPECT_EQ(error_of(weak)["code"], "weak_password");
  const auto unmet = error_of(weak)["details"]["unmet"];
  EXPECT_NE(std::find(unmet.begin(), unmet.end(), "min_length"), unmet.end()) << weak.body;
  EXPECT_NE(std::find(unmet.begin(), unmet.end(), "upper"), unmet.end()) << weak.body;
  EXPECT_EQ(reg("noconsent@example.com", "Tr0ub4dor&3x", false).status, 400u);

  ASSERT_EQ(reg("dup@example.com", "Tr0ub4dor&3x").status, 201u);
  const auto dup = reg("DUP@example.com", "An0ther-Pass");
  EXPECT_EQ(dup.status, 409u);
  EXPECT_EQ(error_of(dup)["code"], "email_taken");

  const auto disposable = reg("someone@mailinator.com", "Tr0ub4dor&3x");
  ASSERT_EQ(disposable.status, 201u) << "a warning, not a refusal";
  EXPECT_EQ(data_of(disposable)["warnings"], json::array({"disposable_email"}));
}

// Concurrent registrations of one address: exactly one account (the email's partition decides).
TEST_F(Identity, ParallelRegistrationsOfOneAddressCreateExactlyOneAccountFR005) {
  start();
  std::vector<std::thread> threads;
  std::atomic<int> created{0}, taken{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      const auto r =
          post("/v1/auth/register",
               {{"email", "race@example.com"}, {"password", "Tr0ub4dor&3x"}, {"consent", true}});
      (r.status == 201 ? created : taken) += r.status == 201 || r.status == 409 ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(taken.load(), 7);
}

// 004 scenario 6, FR-012: five consecutive failures lock for 30 minutes; remainingAttempts
// counts down before that; even the right password is refused while locked.
TEST_F(Identity, FiveWrongPasswordsLockTheAccountWithLockedUntilFR012) {
  start();
  ASSERT_FALSE(verified("lock@example.com", "Tr0ub4dor&3x").empty());
  for (int i = 4; i >= 1; --i) {
    const auto r = login("lock@example.com", "Wr0ng-password");
    ASSERT_EQ(r.status, 401u) << r.body;
    EXPECT_EQ(error_of(r)["code"], "invalid_credentials");
    EXPECT_EQ(error_of(r)["details"]["remainingAttempts"], i);
  }
  const auto fifth = login("lock@example.com", "Wr0ng-password");
  ASSERT_EQ(fifth.status, 423u) << fifth.body;
  EXPECT_EQ(error_of(fifth)["code"], "account_locked");
  EXPECT_TRUE(error_of(fifth)["details"]["lockedUntil"].is_string());
  EXPECT_EQ(error_of(fifth)["details"]["needsAdminUnlock"], false);
  EXPECT_GT(error_of(fifth)["details"]["retryAfter"].get<int>(), 29 * 60);
  EXPECT_TRUE(fifth.headers.count("retry-after"));
  const auto right = login("lock@example.com", "Tr0ub4dor&3x");
  EXPECT_EQ(right.status, 423u) << right.body;
  // Every route that checks the password answers a lock the same way.
  EXPECT_EQ(error_of(right)["details"]["lockedUntil"], error_of(fifth)["details"]["lockedUntil"]);
  // The dashboard's counters (000 NFR-06): failures by reason, the lockout among the events.
  EXPECT_EQ(login("nobody@example.com", "Wr0ng-password").status, 401u);
  const auto m = metrics();
  EXPECT_NE(m.find(R"(sechex_login_failures_total{reason="wrong_password"} 5)"), std::string::npos)
      << m;
  EXPECT_NE(m.find(R"(sechex_login_failures_total{reason="unknown_email"} 1)"), std::string::npos)
      << m;
  EXPECT_NE(m.find(R"(sechex_login_failures_total{reason="locked"} 1)"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(sechex_login_failures_total{reason="other"} 0)"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(sechex_events_total{type="AccountLocked"} 1)"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(sechex_events_total{type="LoginFailed"} 7)"), std::string::npos) << m;
}

// The issue's concurrency rule: 50 parallel wrong-password requests for one account are
// evaluated as exactly 5 failures, then refused (the partition's command path serialises them).
TEST_F(Identity, FiftyParallelWrongPasswordsCountAsExactlyFiveFailuresThenLockFR012) {
  start();
  const auto user = verified("burst@example.com", "Tr0ub4dor&3x");
  ASSERT_FALSE(user.empty());
  std::vector<std::thread> threads;
  std::mutex mu;
  std::map<unsigned, int> statuses;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] {
      const auto r =
          login("burst@example.com", "Wr0ng-password", "203.0.113." + std::to_string(i + 1));
      std::lock_guard l(mu);
      ++statuses[r.status];
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(statuses[401], 4) << "four failures answer 401 with remainingAttempts";
  EXPECT_EQ(statuses[423], 46) << "the fifth locks; the other 45 are refused as locked";
  const auto admin = admin_token();
  std::size_t wrong = 0, locked_refusals = 0;
  for (const auto& e : audit(admin, user, "LoginFailed")) {
    const auto reason = e["event"].value("reason", "");
    wrong += reason == "wrong_password";
    locked_refusals += reason == "locked";
  }
  EXPECT_EQ(wrong, 5u);
  EXPECT_EQ(locked_refusals, 45u);
  EXPECT_EQ(audit(admin, user, "AccountLocked").size(), 1u);
}

// 004 FR-011's window and Retry-After on the manual clock: identity_routes_test.cc.

// 004 FR-010 and edge cases: unknown email, wrong password and invalid address answer with the
// same status and body, and take the same time (a dummy Argon2id hash for unknown users).
TEST_F(Identity, UnknownEmailAndWrongPasswordAreIndistinguishableInStatusBodyAndTimeFR010) {
  // A heavier hash than the default, so that the Argon2id work both paths share dominates the
  // few milliseconds of fsync and scheduling noise this machine adds to any one request.
  start({"--password-memory-kib", "65536", "--password-passes", "3"});
  const std::vector<std::string> accounts = {"known0@example.com", "known1@example.com",
                                             "known2@example.com"};
  for (const auto& a : accounts) ASSERT_FALSE(verified(a, "Tr0ub4dor&3x").empty());
  auto timed = [&](const std::string& email) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = login(email, "Wr0ng-password");
    return std::pair(r,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  };
  timed("warm-up@example.com");  // first-use costs are not what this measures
  std::vector<double> known, unknown;
  // Interleaved; every address gets at most 4 tries, so none locks (the 5th answer differs by
  // design, for known and unknown addresses alike).
  for (int round = 0; round < 4; ++round) {
    for (std::size_t i = 0; i < accounts.size(); ++i) {
      auto [a, ta] = timed(accounts[i]);
      auto [b, tb] = timed("nobody" + std::to_string(i) + "@example.com");
      ASSERT_EQ(a.status, 401u) << a.body;
      EXPECT_EQ(b.status, a.status);
      EXPECT_EQ(b.body, a.body) << "status, code, message and remainingAttempts all equal";
      known.push_back(ta);
      unknown.push_back(tb);
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  const double mk = median(known), mu = median(unknown);
  EXPECT_LT(std::abs(mk - mu), 0.2 * std::max(mk, mu))
      << "median known " << mk << " s, unknown " << mu << " s";
}

// 004 FR-018, FR-020 and API.md: refresh rotates; presenting a rotated token again revokes the
// whole family, including the newest token.
TEST_F(Identity, RefreshRotatesAndReusingARotatedTokenRevokesTheFamilyFR020) {
  start();
  ASSERT_FALSE(verified("rot@example.com", "Tr0ub4dor&3x").empty());
  const auto in = login("rot@example.com", "Tr0ub4dor&3x");
  ASSERT_EQ(in.status, 200u) << in.body;
  const auto first = data_of(in)["refreshToken"].get<std::string>();
  const auto r1 = post("/v1/auth/refresh", {{"refreshToken", first}});
  ASSERT_EQ(r1.status, 200u) << r1.body;
  const auto second = data_of(r1)["refreshToken"].get<std::string>();
  EXPECT_NE(second, first);
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, data_of(r1)["accessToken"]).status, 200u);

  const auto reuse = post("/v1/auth/refresh", {{"refreshToken", first}});
  EXPECT_EQ(reuse.status, 401u);
  EXPECT_EQ(error_of(reuse)["code"], "invalid_token");
  EXPECT_EQ(post("/v1/auth/refresh", {{"refreshToken", second}}).status, 401u)
      << "the family is revoked";
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, data_of(r1)["accessToken"]).status, 401u)
      << "and so is its session's access token";
  EXPECT_EQ(post("/v1/auth/refresh", {{"refreshToken", "forged"}}).status, 401u);
}

// 004 scenario 9, FR-016: after logout the session's tokens are refused at once; logout-all
// ends every session.
TEST_F(Identity, LogoutRevokesTheSessionAtOnceAndLogoutAllEndsEveryOneFR016) {
  start();
  ASSERT_FALSE(verified("out@example.com", "Tr0ub4dor&3x").empty());
  const auto a = data_of(login("out@example.com", "Tr0ub4dor&3x"));
  const auto b = data_of(login("out@example.com", "Tr0ub4dor&3x"));
  const auto c = data_of(login("out@example.com", "Tr0ub4dor&3x"));
  const auto out = call(http::verb::post, "/v1/auth/logout", nullptr, a["accessToken"]);
  ASSERT_EQ(out.status, 200u) << out.body;
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, a["accessToken"]).status, 401u);
  EXPECT_EQ(post("/v1/auth/refresh", {{"refreshToken", a["refreshToken"]}}).status, 401u);
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, b["accessToken"]).status, 200u)
      << "FR-017: other sessions live on";
  ASSERT_EQ(call(http::verb::post, "/v1/auth/logout-all", nullptr, b["accessToken"]).status, 200u);
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, c["accessToken"]).status, 401u);
  EXPECT_EQ(post("/v1/auth/refresh", {{"refreshToken", c["refreshToken"]}}).status, 401u);
}

// 004 FR-003, FR-004, FR-041: an admin raises the policy to High (an audited PolicyChanged);
// registration then needs 12 characters and a special one.
TEST_F(Identity, AnAdminSetsThePasswordPolicyToHighAndRegistrationFollowsFR004) {
  start();
  EXPECT_EQ(data_of(call(http::verb::get, "/v1/auth/password/policy"))["level"], "basic");
  const auto admin = admin_token();
  const auto anon = call(http::verb::put, "/v1/admin/policy/password", {{"level", "high"}});
  EXPECT_EQ(anon.status, 401u);
  const auto set = call(http::verb::put, "/v1/admin/policy/password", {{"level", "high"}}, admin);
  ASSERT_EQ(set.status, 200u) << set.body;
  const auto policy = data_of(call(http::verb::get, "/v1/auth/password/policy"));
  EXPECT_EQ(policy["level"], "high");
  EXPECT_EQ(policy["minLength"], 12);
  EXPECT_EQ(policy["requireSpecial"], true);
  const auto weak =
      post("/v1/auth/register",
           {{"email", "high@example.com"}, {"password", "Basic0kPass"}, {"consent", true}});
  EXPECT_EQ(weak.status, 400u);
  const auto unmet = error_of(weak)["details"]["unmet"];
  EXPECT_EQ(unmet, json::array({"min_length", "special"})) << weak.body;
  EXPECT_EQ(audit(admin, "policy", "PolicyChanged").size(), 1u);
  EXPECT_EQ(
      call(http::verb::put, "/v1/admin/policy/password", {{"level", "extreme"}}, admin).status,
      400u);
}

// FR-031 and the issue's "every flow's events present in the audit API with a verifying chain".
TEST_F(Identity, EveryFlowIsInTheAuditTrailAndTheChainVerifiesFR031) {
  start();
  const auto user = verified("trail@example.com", "Tr0ub4dor&3x");
  ASSERT_FALSE(user.empty());
  EXPECT_EQ(login("trail@example.com", "Wr0ng-password").status, 401u);
  const auto in = data_of(login("trail@example.com", "Tr0ub4dor&3x"));
  ASSERT_EQ(post("/v1/auth/refresh", {{"refreshToken", in["refreshToken"]}}).status, 200u);
  ASSERT_EQ(call(http::verb::post, "/v1/auth/logout", nullptr, in["accessToken"]).status, 200u);
  const auto admin = admin_token();
  for (const auto* type :
       {"UserRegistered", "ConsentRecorded", "EmailVerificationIssued", "EmailVerified",
        "LoginFailed", "LoginSucceeded", "SessionStarted", "TokenRefreshed", "LoggedOut"}) {
    EXPECT_FALSE(audit(admin, user, type).empty()) << type;
  }
  // No secret in the trail: the password and the refresh token appear nowhere in an export.
  ASSERT_EQ(stop(), 0);
  const auto exported = ctl({"export", "--format", "jsonl"});
  ASSERT_EQ(exported.code, 0) << exported.err;
  EXPECT_EQ(exported.out.find("Tr0ub4dor&3x"), std::string::npos);
  EXPECT_EQ(exported.out.find(in["refreshToken"].get<std::string>()), std::string::npos);
  EXPECT_EQ(ctl({"verify"}).code, 0);
}

// 004 FR-021..FR-023, FR-027: a change needs the current password, follows the policy, and
// ends every other session; the caller continues with a fresh pair.
TEST_F(Identity, PasswordChangeNeedsTheCurrentPasswordAndRevokesOtherSessionsFR021FR027) {
  start();
  ASSERT_FALSE(verified("chg@example.com", "Tr0ub4dor&3x").empty());
  const auto a = data_of(login("chg@example.com", "Tr0ub4dor&3x"));
  const auto b = data_of(login("chg@example.com", "Tr0ub4dor&3x"));
  auto change = [&](const json& pair, const std::string& current, const std::string& next) {
    return call(http::verb::post, "/v1/auth/password/change",
                {{"currentPassword", current}, {"newPassword", next}}, pair["accessToken"]);
  };
  const auto wrong = change(a, "Wr0ng-password", "N3w-Passw0rd!");
  EXPECT_EQ(wrong.status, 401u) << wrong.body;
  EXPECT_EQ(error_of(wrong)["details"]["remainingAttempts"], 4) << "counts like a failed login";
  const auto weak = change(a, "Tr0ub4dor&3x", "weak");
  EXPECT_EQ(weak.status, 400u);
  EXPECT_EQ(error_of(weak)["code"], "weak_password");
  const auto done = change(a, "Tr0ub4dor&3x", "N3w-Passw0rd!");
  ASSERT_EQ(done.status, 200u) << done.body;
  const auto fresh = data_of(done);
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, fresh["accessToken"]).status, 200u)
      << "the caller's fresh session works at once";
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, a["accessToken"]).status, 401u);
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, b["accessToken"]).status, 401u)
      << "FR-027: every other session's tokens are invalid";
  EXPECT_EQ(post("/v1/auth/refresh", {{"refreshToken", b["refreshToken"]}}).status, 401u);
  EXPECT_EQ(login("chg@example.com", "Tr0ub4dor&3x").status, 401u);
  EXPECT_EQ(login("chg@example.com", "N3w-Passw0rd!").status, 200u);
}

// API.md: forgot, resend and OTP request answer 202 for any address and list a 429. The per-client
// limit counts every request whatever it names, so unknown addresses use it up like known ones:
// the 429 says nothing about the address asked for (004 FR-024/FR-026 enumeration). It carries
// Retry-After, the first refusal of a burst is audited, and other clients are not affected.
TEST_F(Identity, MailSendingRoutesLimitEachClientWhateverTheAddressFR024) {
  start();
  ASSERT_FALSE(verified("limited.known@example.com").empty());
  ASSERT_EQ(
      post("/v1/auth/register",
           {{"email", "limited.pending@example.com"}, {"password", kPassword}, {"consent", true}})
          .status,
      201u);
  struct Route {
    const char* path;
    int limit;
    const char* known;  // an address the route would mail
    const char* ip;
  };
  const Route routes[] = {
      {"/v1/auth/password/forgot", 5, "limited.known@example.com", "192.0.2.51"},
      {"/v1/auth/verify-email/resend", 5, "limited.pending@example.com", "192.0.2.52"},
      {"/v1/auth/otp/request", 20, "limited.known@example.com", "192.0.2.53"},
  };
  for (const auto& route : routes) {
    for (int i = 0; i < route.limit; ++i) {
      const auto r = call(http::verb::post, route.path,
                          {{"email", "nobody" + std::to_string(i) + "@example.com"}}, "", route.ip);
      ASSERT_EQ(r.status, 202u) << route.path << " " << i << " " << r.body;
    }
    const auto limited = call(http::verb::post, route.path, {{"email", route.known}}, "", route.ip);
    ASSERT_EQ(limited.status, 429u) << route.path << " " << limited.body;
    EXPECT_EQ(error_of(limited)["code"], "rate_limited");
    const auto retry = std::stoi(header(limited, "retry-after"));
    EXPECT_GT(retry, 850) << route.path << ": the first request leaves the window in ~15 min";
    EXPECT_LE(retry, 15 * 60);
    EXPECT_EQ(error_of(limited)["details"]["retryAfter"], retry);
    EXPECT_EQ(
        call(http::verb::post, route.path, {{"email", "nobody@example.com"}}, "", route.ip).status,
        429u)
        << route.path << ": an unknown address is refused alike";
    EXPECT_EQ(call(http::verb::post, route.path, {{"email", route.known}}).status, 202u)
        << route.path << ": another client is not limited";
  }
  // One RateLimited per burst and route (two refusals each), under the client's anon:ip subject.
  const auto r =
      call(http::verb::get, "/v1/admin/audit?type=RateLimited&limit=1000", nullptr, admin_token());
  ASSERT_EQ(r.status, 200u) << r.body;
  std::size_t by_ip = 0;
  const auto entries = data_of(r)["entries"];  // a copy: data_of's value is a temporary
  for (const auto& e : entries) {
    if (e.value("subject", "").rfind("anon:ip:", 0) == 0) ++by_ip;
  }
  EXPECT_EQ(by_ip, std::size(routes));
}

// 004 FR-012 with FR-025: locked out after 5 wrong passwords, the owner recovers at once by
// resetting the password through the mailed link (AccountUnlocked{reason password_reset} in the
// chain) instead of waiting 30 minutes; the old password stays refused.
TEST_F(Identity, APasswordResetEndsALockoutFromWrongPasswordsFR012FR025) {
  start();
  const auto user = verified("recover@example.com");
  ASSERT_FALSE(user.empty());
  for (int i = 0; i < 5; ++i) login("recover@example.com", "Wr0ng-password");
  ASSERT_EQ(login("recover@example.com", kPassword).status, 423u) << "locked";
  ASSERT_EQ(post("/v1/auth/password/forgot", {{"email", "recover@example.com"}}).status, 202u);
  const auto token = token_in(mail_with("recover@example.com", "reset-password?token="));
  ASSERT_FALSE(token.empty()) << log();
  ASSERT_EQ(
      post("/v1/auth/password/reset", {{"token", token}, {"newPassword", "R3cover-Passw0rd!"}})
          .status,
      200u);
  EXPECT_EQ(login("recover@example.com", "R3cover-Passw0rd!").status, 200u) << "unlocked";
  EXPECT_EQ(login("recover@example.com", kPassword).status, 401u);
  const auto unlocked = audit(admin_token(), user, "AccountUnlocked");
  ASSERT_EQ(unlocked.size(), 1u);
}

// 004 scenarios 10-12, FR-024..FR-028, FR-040: forgot answers 202 for any address; the reset
// link goes only to a verified address, works once, revokes every session and is confirmed by
// mail.
TEST_F(Identity, ForgotAndResetByMailedOneTimeLinkRevokeEverySessionFR025FR027FR028) {
  start();
  ASSERT_FALSE(verified("reset@example.com", "Tr0ub4dor&3x").empty());
  ASSERT_EQ(
      post("/v1/auth/register",
           {{"email", "unverified@example.com"}, {"password", "Tr0ub4dor&3x"}, {"consent", true}})
          .status,
      201u);
  const auto session = data_of(login("reset@example.com", "Tr0ub4dor&3x"));
  for (const auto* email : {"nobody@example.com", "unverified@example.com", "reset@example.com"}) {
    const auto r = post("/v1/auth/password/forgot", {{"email", email}});
    EXPECT_EQ(r.status, 202u) << email << " " << r.body;
  }
  const auto mail = mail_with("reset@example.com", "reset-password?token=");
  ASSERT_FALSE(mail.empty()) << log();
  const auto token = token_in(mail);
  ASSERT_FALSE(token.empty()) << mail;
  // FR-026: no link to the unverified address. Its request came first, so a mail for it would
  // have been due before the one just read: only its verification mail is there.
  EXPECT_EQ(mail_count("unverified@example.com"), 1u);

  const auto weak = post("/v1/auth/password/reset", {{"token", token}, {"newPassword", "weak"}});
  EXPECT_EQ(weak.status, 400u);
  EXPECT_EQ(error_of(weak)["code"], "weak_password");
  const auto done =
      post("/v1/auth/password/reset", {{"token", token}, {"newPassword", "R3set-Passw0rd!"}});
  ASSERT_EQ(done.status, 200u) << done.body;
  EXPECT_EQ(data_of(done)["status"], "password_reset");
  const auto again =
      post("/v1/auth/password/reset", {{"token", token}, {"newPassword", "An0ther-Passw0rd!"}});
  EXPECT_EQ(again.status, 400u) << "FR-028: one use";
  EXPECT_EQ(error_of(again)["code"], "token_invalid");
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, session["accessToken"]).status, 401u)
      << "scenario 12: existing tokens are invalidated";
  EXPECT_EQ(post("/v1/auth/refresh", {{"refreshToken", session["refreshToken"]}}).status, 401u);
  EXPECT_EQ(login("reset@example.com", "R3set-Passw0rd!").status, 200u);
  EXPECT_FALSE(mail_with("reset@example.com", "Your password was reset").empty())
      << "FR-040: a confirmation mail";
}

// 004 FR-036 (GDPR access): the caller's profile, sessions and own events, sealed fields opened.
TEST_F(Identity, ExportGivesTheCallerTheirProfileSessionsAndOwnEventsFR036) {
  start();
  const auto user = verified("gdpr@example.com", "Tr0ub4dor&3x");
  ASSERT_FALSE(user.empty());
  const auto other = verified("someone-else@example.com", "Tr0ub4dor&3x");
  const auto pair = data_of(login("gdpr@example.com", "Tr0ub4dor&3x"));
  const auto r = call(http::verb::get, "/v1/me/export", nullptr, pair["accessToken"]);
  ASSERT_EQ(r.status, 200u) << r.body;
  const auto d = data_of(r);
  EXPECT_EQ(d["profile"]["email"], "gdpr@example.com");
  EXPECT_EQ(d["sessions"].size(), 1u);
  std::set<std::string> types;
  for (const auto& e : d["events"]) {
    EXPECT_EQ(e["subject"], user) << "only the caller's own events";
    types.insert(e["type"].get<std::string>());
  }
  for (const auto* t : {"UserRegistered", "EmailVerified", "LoginSucceeded", "SessionStarted"}) {
    EXPECT_TRUE(types.count(t)) << t;
  }
  EXPECT_NE(r.body.find("gdpr@example.com"), std::string::npos);
  EXPECT_EQ(r.body.find("someone-else@example.com"), std::string::npos);
  EXPECT_EQ(r.body.find("Tr0ub4dor&3x"), std::string::npos);
  EXPECT_EQ(call(http::verb::get, "/v1/me/export").status, 401u);
}

// 002 "Account deletion requires re-auth": without a re-authentication token, 403.
TEST_F(Identity, DeletingTheAccountWithoutReauthenticationIsRefused) {
  start();
  ASSERT_FALSE(verified("keep@example.com", "Tr0ub4dor&3x").empty());
  const auto pair = data_of(login("keep@example.com", "Tr0ub4dor&3x"));
  const auto r = call(http::verb::delete_, "/v1/me", nullptr, pair["accessToken"]);
  EXPECT_EQ(r.status, 403u) << r.body;
  EXPECT_EQ(error_of(r)["code"], "reauth_required");
  const auto forged =
      testing::http_call_with(port_, http::verb::delete_, "/v1/me", {{"X-Reauth-Token", "forged"}},
                              pair["accessToken"].get<std::string>());
  EXPECT_EQ(forged.status, 403u);
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, pair["accessToken"]).status, 200u);
}

// API.md "Browser sessions", 003 CSRF, 004 FR-033/FR-035: login sets __Host- cookies; a cookie
// authenticates reads; a state change by cookie needs the session's CSRF token and this site,
// and each refusal is 403 csrf_rejected and an audited CsrfRejected event. Bearer requests need
// no CSRF token.
TEST_F(Identity, CookieSessionsNeedTheSessionsCsrfTokenForStateChangesFR033FR035) {
  start();
  const auto user = verified("browser@example.com", "Tr0ub4dor&3x");
  ASSERT_FALSE(user.empty());
  const auto in = login("browser@example.com", "Tr0ub4dor&3x");
  ASSERT_EQ(in.status, 200u);
  // The reply holds two Set-Cookie headers; the client keeps the last of each name, so read
  // the pair from the body and check the attributes on the one kept.
  ASSERT_TRUE(in.headers.count("set-cookie"));
  const auto set = in.headers.at("set-cookie");
  EXPECT_NE(set.find("__Host-"), std::string::npos) << set;
  EXPECT_NE(set.find("; Secure; HttpOnly; SameSite=Lax"), std::string::npos) << set;
  const auto pair = data_of(in);
  const std::string jar = "__Host-access=" + pair["accessToken"].get<std::string>() +
                          "; __Host-refresh=" + pair["refreshToken"].get<std::string>();
  auto as_browser = [&](http::verb verb, const std::string& target, testing::Headers extra) {
    extra.emplace_back("Cookie", jar);
    extra.emplace_back("X-Forwarded-For", "198.51.100.200");
    return testing::http_call_with(port_, verb, target, extra, "", "", 30s);
  };
  EXPECT_EQ(as_browser(http::verb::get, "/v1/me", {}).status, 200u) << "reads by cookie";
  const auto no_token = as_browser(http::verb::post, "/v1/auth/logout", {});
  EXPECT_EQ(no_token.status, 403u) << no_token.body;
  EXPECT_EQ(error_of(no_token)["code"], "csrf_rejected");
  EXPECT_EQ(error_of(no_token)["details"]["reason"], "missing_csrf_token");
  const auto csrf = as_browser(http::verb::get, "/v1/auth/csrf", {});
  ASSERT_EQ(csrf.status, 200u) << csrf.body;
  const auto token = data_of(csrf)["csrfToken"].get<std::string>();
  const auto cross = as_browser(http::verb::post, "/v1/auth/logout",
                                {{"X-CSRF-Token", token}, {"Sec-Fetch-Site", "cross-site"}});
  EXPECT_EQ(cross.status, 403u);
  EXPECT_EQ(error_of(cross)["details"]["reason"], "cross_site");
  const auto forged = as_browser(http::verb::post, "/v1/auth/logout", {{"X-CSRF-Token", "x"}});
  EXPECT_EQ(error_of(forged)["details"]["reason"], "invalid_csrf_token");
  // A cross-site login is refused too (login CSRF).
  const auto foreign_login = testing::http_call_with(
      port_, http::verb::post, "/v1/auth/login", {{"Origin", "https://evil.example"}}, "",
      json{{"email", "browser@example.com"}, {"password", "Tr0ub4dor&3x"}}.dump());
  EXPECT_EQ(foreign_login.status, 403u) << foreign_login.body;

  const auto out = as_browser(http::verb::post, "/v1/auth/logout",
                              {{"X-CSRF-Token", token}, {"Sec-Fetch-Site", "same-origin"}});
  ASSERT_EQ(out.status, 200u) << out.body;
  EXPECT_NE(out.headers.at("set-cookie").find("Max-Age=0"), std::string::npos)
      << "logout clears the cookies";
  EXPECT_EQ(as_browser(http::verb::get, "/v1/me", {}).status, 401u);
  EXPECT_EQ(audit(admin_token(), user, "CsrfRejected").size(), 3u);
}

// 003 US7-1, US7-4: a browser's sign-up form carries a token bound to its pre-session cookie
// (GET /v1/auth/csrf without a session sets it), each token is accepted once, and API clients
// (no cookies, Origin or fetch metadata) register as before.
TEST_F(Identity, SignUpFormNeedsAPreSessionTokenUsedOnceUS7_1US7_4) {
  start();
  const auto signup = [&](const std::string& email, testing::Headers headers) {
    headers.emplace_back("X-Forwarded-For", "198.51.100.210");
    return testing::http_call_with(
        port_, http::verb::post, "/v1/auth/register", headers, "",
        json{{"email", email}, {"password", kPassword}, {"consent", true}}.dump(), 30s);
  };
  const auto bare = signup("form.a@example.com", {{"Sec-Fetch-Site", "same-origin"}});
  ASSERT_EQ(bare.status, 403u) << bare.body;
  EXPECT_EQ(error_of(bare)["code"], "csrf_rejected");

  const auto csrf = testing::http_call_with(port_, http::verb::get, "/v1/auth/csrf", {});
  ASSERT_EQ(csrf.status, 200u) << csrf.body;
  std::string pre;
  for (const auto& c : csrf.set_cookies) {
    if (c.starts_with("__Host-presession=")) pre = c.substr(0, c.find(';'));
  }
  ASSERT_FALSE(pre.empty()) << "a pre-session cookie for the form";
  const std::string token = data_of(csrf)["csrfToken"];
  const testing::Headers form = {
      {"Cookie", pre}, {"X-CSRF-Token", token}, {"Sec-Fetch-Site", "same-origin"}};
  const auto wrong_cookie = signup("form.a@example.com", {{"Cookie", "__Host-presession=x"},
                                                          {"X-CSRF-Token", token},
                                                          {"Sec-Fetch-Site", "same-origin"}});
  EXPECT_EQ(wrong_cookie.status, 403u) << "bound to its pre-session";
  const auto cross =
      signup("form.a@example.com",
             {{"Cookie", pre}, {"X-CSRF-Token", token}, {"Sec-Fetch-Site", "cross-site"}});
  EXPECT_EQ(error_of(cross)["details"]["reason"], "cross_site");
  const auto ok = signup("form.a@example.com", form);
  ASSERT_EQ(ok.status, 201u) << ok.body;
  const auto again = signup("form.b@example.com", form);
  ASSERT_EQ(again.status, 403u) << again.body;
  EXPECT_EQ(error_of(again)["details"]["reason"], "invalid_csrf_token") << "single use";
  // A second token of the same pre-session works (one per request).
  const auto second =
      testing::http_call_with(port_, http::verb::get, "/v1/auth/csrf", {{"Cookie", pre}});
  ASSERT_EQ(second.status, 200u);
  EXPECT_TRUE(second.set_cookies.empty()) << "the pre-session is kept";
  EXPECT_EQ(signup("form.b@example.com", {{"Cookie", pre},
                                          {"X-CSRF-Token", data_of(second)["csrfToken"]},
                                          {"Sec-Fetch-Site", "same-origin"}})
                .status,
            201u);
  EXPECT_EQ(post("/v1/auth/register",
                 {{"email", "api.client@example.com"}, {"password", kPassword}, {"consent", true}})
                .status,
            201u)
      << "API clients are not browsers";
}

// 003 US7-2 and 004 FR-036: PATCH /v1/me by a cookie session needs a token (each used once;
// the answer hands the next), is audited, and withdrawing consent ends every session and the
// processing that needs it (payments) until it is given again.
TEST_F(Identity, ProfileUpdatesNeedATokenAndConsentCanBeWithdrawnUS7_2) {
  start();
  const auto user = verified("profile@example.com");
  ASSERT_FALSE(user.empty());
  const auto in = data_of(login("profile@example.com", kPassword));
  const std::string jar = "__Host-access=" + in["accessToken"].get<std::string>();
  const auto patch = [&](const json& body, testing::Headers headers) {
    headers.emplace_back("Cookie", jar);
    headers.emplace_back("X-Forwarded-For", "198.51.100.211");
    return testing::http_call_with(port_, http::verb::patch, "/v1/me", headers, "", body.dump(),
                                   30s);
  };
  EXPECT_EQ(patch({{"displayName", "Pat"}}, {}).status, 403u);
  const auto csrf =
      testing::http_call_with(port_, http::verb::get, "/v1/auth/csrf", {{"Cookie", jar}});
  const std::string token = data_of(csrf)["csrfToken"];
  const auto named = patch({{"displayName", "Pat Q."}},
                           {{"X-CSRF-Token", token}, {"Sec-Fetch-Site", "same-origin"}});
  ASSERT_EQ(named.status, 200u) << named.body;
  EXPECT_EQ(data_of(named)["displayName"], "Pat Q.");
  const auto next = header(named, "x-csrf-token");
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(patch({{"locale", "zh-CN"}}, {{"X-CSRF-Token", token}}).status, 403u)
      << "resubmitted token";
  const auto localised = patch({{"locale", "zh-CN"}}, {{"X-CSRF-Token", next}});
  ASSERT_EQ(localised.status, 200u) << localised.body;
  EXPECT_EQ(data_of(localised)["locale"], "zh-CN");
  EXPECT_EQ(data_of(localised)["displayName"], "Pat Q.");
  for (const auto& bad : {json{{"displayName", ""}}, json{{"locale", "fr"}},
                          json{{"consent", "no"}}, json{{"email", "x@example.com"}}}) {
    EXPECT_EQ(call(http::verb::patch, "/v1/me", bad, in["accessToken"]).status, 400u) << bad;
  }
  EXPECT_EQ(audit_count(admin_token(), user, "ProfileUpdated"), 2u);

  // Consent withdrawn by bearer: sessions end, payments refuse until consent is back.
  const auto other = data_of(login("profile@example.com", kPassword));
  const auto withdrawn =
      call(http::verb::patch, "/v1/me", {{"consent", false}}, other["accessToken"]);
  ASSERT_EQ(withdrawn.status, 200u) << withdrawn.body;
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, other["accessToken"]).status, 401u);
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, in["accessToken"]).status, 401u);
  const std::string back = data_of(login("profile@example.com", kPassword))["accessToken"];
  const auto pay = [&] {
    return testing::http_call_with(port_, http::verb::post, "/v1/payments",
                                   {{"Idempotency-Key", "consent-" + std::to_string(next_ip_++)},
                                    {"X-Forwarded-For", "198.51.100.212"}},
                                   back, json{{"amount", 100}, {"currency", "EUR"}}.dump(), 30s);
  };
  const auto refused = pay();
  ASSERT_EQ(refused.status, 403u) << refused.body;
  EXPECT_EQ(error_of(refused)["code"], "consent_required");
  ASSERT_EQ(call(http::verb::patch, "/v1/me", {{"consent", true}}, back).status, 200u);
  EXPECT_EQ(pay().status, 201u);
  EXPECT_EQ(audit_count(admin_token(), user, "ConsentRecorded"), 3u);
}

// 002 "Email Verification Enforcement": secrets and check-ins refuse an unverified user with
// 403 email_not_verified and a resend link. Login refuses unverified users, and an operator
// token is never a user (issue 12), so the test signs the pending user's token itself with the
// data directory's own key ring, as ledgerd would for a session.
TEST_F(Identity, SecretsAndCheckInsRefuseAnUnverifiedUserWithAResendLink) {
  start();
  const auto reg =
      post("/v1/auth/register",
           {{"email", "pending@example.com"}, {"password", "Tr0ub4dor&3x"}, {"consent", true}});
  ASSERT_EQ(reg.status, 201u);
  const auto user = data_of(reg)["userId"].get<std::string>();
  const api::TokenSettings settings;
  auto ring = api::jose::KeyRing::load_or_create(api::jwt_keys_dir(data()), SystemClock::instance(),
                                                 settings.ring_options());
  ASSERT_TRUE(ring) << ring.error().message();
  const api::jose::TokenIssuer issuer(*ring.value(), SystemClock::instance(),
                                      settings.issuer_config());
  const auto issued = issuer.issue({user, "sess-pending", {}}, std::chrono::seconds(600));
  ASSERT_TRUE(issued);
  const auto token = issued.value().token;
  // An operator's token naming the user is not the user.
  const auto op = ctl({"tokens", "issue", "--role", "service", "--subject", user});
  ASSERT_EQ(op.code, 0) << op.err;
  const auto as_operator =
      call(http::verb::post, "/v1/secrets", json::object(), op.out.substr(0, op.out.size() - 1));
  EXPECT_EQ(as_operator.status, 403u) << as_operator.body;
  EXPECT_EQ(error_of(as_operator)["code"], "forbidden");
  for (const auto* target : {"/v1/secrets", "/v1/secrets/sec_x/check-in"}) {
    const auto r = call(http::verb::post, target, json::object(), token);
    EXPECT_EQ(r.status, 403u) << target << " " << r.body;
    EXPECT_EQ(error_of(r)["code"], "email_not_verified");
    EXPECT_EQ(error_of(r)["details"]["resendUrl"], "/v1/auth/verify-email/resend");
  }
}

// The issue's "done when", end to end: a verified user keeps a secret, checks in, reveals the
// server share only after a step-up (002), then erases the account (GDPR, crypto-shredding):
// its sessions end, it can no longer log in, its personal data reads as erased, and the chain
// still verifies.
TEST_F(Identity, SecretStepUpRevealAndErasureEndToEndKeepTheChainVerifiable) {
  start();
  const auto user = verified("whole@example.com", "Tr0ub4dor&3x");
  ASSERT_FALSE(user.empty());
  ASSERT_FALSE(verified("other@example.com", "Tr0ub4dor&3x").empty());
  const auto pair = data_of(login("whole@example.com", "Tr0ub4dor&3x"));
  const auto other = data_of(login("other@example.com", "Tr0ub4dor&3x"));
  const std::string access = pair["accessToken"];
  const auto created = call(http::verb::post, "/v1/secrets", json::object(), access);
  ASSERT_EQ(created.status, 201u) << created.body;
  const auto id = data_of(created)["secretId"].get<std::string>();
  EXPECT_EQ(
      call(http::verb::post, "/v1/secrets/" + id + "/check-in", json::object(), access).status,
      200u);
  EXPECT_EQ(call(http::verb::post, "/v1/secrets/" + id + "/check-in", json::object(),
                 other["accessToken"])
                .status,
            404u)
      << "another user's secret does not exist for them";
  const auto reveal = [&](const std::string& reauth) {
    return testing::http_call_with(port_, http::verb::post, "/v1/secrets/" + id + "/reveal-share",
                                   {{"X-Reauth-Token", reauth}}, access, "{}", 30s);
  };
  const auto without = reveal("");
  EXPECT_EQ(without.status, 403u);
  EXPECT_EQ(error_of(without)["code"], "reauth_required");

  const auto step_up =
      call(http::verb::post, "/v1/auth/reauth", {{"password", "Tr0ub4dor&3x"}}, access);
  ASSERT_EQ(step_up.status, 200u) << step_up.body;
  const std::string reauth = data_of(step_up)["reauthToken"];
  EXPECT_EQ(data_of(step_up)["expiresIn"], 300);
  const auto shown = reveal(reauth);
  ASSERT_EQ(shown.status, 200u) << shown.body;
  EXPECT_EQ(data_of(shown)["serverShare"].get<std::string>().size(), 43u);
  // Someone else's step-up does not open this user's doors.
  const auto their_step_up = call(http::verb::post, "/v1/auth/reauth",
                                  {{"password", "Tr0ub4dor&3x"}}, other["accessToken"]);
  ASSERT_EQ(their_step_up.status, 200u);
  EXPECT_EQ(reveal(data_of(their_step_up)["reauthToken"]).status, 403u);

  const auto erase = testing::http_call_with(port_, http::verb::delete_, "/v1/me",
                                             {{"X-Reauth-Token", reauth}}, access, "", 30s);
  ASSERT_EQ(erase.status, 200u) << erase.body;
  EXPECT_EQ(data_of(erase)["status"], "erased");
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, access).status, 401u) << "sessions ended";
  const auto again = login("whole@example.com", "Tr0ub4dor&3x");
  EXPECT_EQ(again.status, 401u) << again.body;
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, other["accessToken"]).status, 200u);

  ASSERT_EQ(stop(), 0);
  EXPECT_EQ(ctl({"verify"}).code, 0) << "the chain verifies after the erasure";
  const auto exported = ctl({"export", "--format", "jsonl", "--subject", user});
  ASSERT_EQ(exported.code, 0) << exported.err;
  EXPECT_EQ(exported.out.find("whole@example.com"), std::string::npos);
  EXPECT_NE(exported.out.find("[erased]"), std::string::npos);
  EXPECT_NE(exported.out.find("SubjectErased"), std::string::npos);
}

// The issue's email path on a real SMTP server (aiosmtpd via ops/smtp): ledgerd with
// --smtp-url delivers the verification mail, whose link verifies the account; the mail is
// an RFC 5322 message with its Message-ID and the link on it.
TEST_F(Identity, TheVerificationMailArrivesThroughARealSmtpServerAndItsLinkWorks) {
  testing::SmtpServer smtp(dir_.sub("smtp"));
  ASSERT_EQ(smtp.start_error(), "");
  start({"--smtp-url", smtp.url(), "--smtp-from", "Sechex <no-reply@example.com>", "--public-url",
         "https://id.example.com"});
  const auto reg =
      post("/v1/auth/register",
           {{"email", "smtp-user@example.com"}, {"password", "Tr0ub4dor&3x"}, {"consent", true}});
  ASSERT_EQ(reg.status, 201u) << reg.body;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (smtp.count() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(smtp.count(), 1u) << log();
  const auto mail = smtp.message(1);
  EXPECT_EQ(smtp.envelope(1)["rcpt_tos"], json::array({"smtp-user@example.com"}));
  EXPECT_NE(mail.find("Message-ID: <"), std::string::npos) << mail;
  EXPECT_NE(mail.find("https://id.example.com/verify-email?token="), std::string::npos) << mail;
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(data()) / "outbox") &&
               !std::filesystem::is_empty(std::filesystem::path(data()) / "outbox"))
      << "with SMTP configured nothing is written to the outbox folder";
  const auto v = post("/v1/auth/verify-email", {{"token", token_in(mail)}});
  EXPECT_EQ(v.status, 200u) << v.body;
  EXPECT_EQ(login("smtp-user@example.com", "Tr0ub4dor&3x").status, 200u);
}

// API.md: `message` follows Accept-Language (en, zh-CN); `code` never changes.
TEST_F(Identity, ErrorMessagesFollowAcceptLanguageWhileCodesStay) {
  start();
  const auto zh = testing::http_call_with(
      port_, http::verb::post, "/v1/auth/login",
      {{"Accept-Language", "zh-CN,zh;q=0.9,en;q=0.5"}, {"X-Forwarded-For", "198.51.100.77"}}, "",
      json{{"email", "nobody@example.com"}, {"password", "Wr0ng-password"}}.dump(), 30s);
  EXPECT_EQ(zh.status, 401u);
  EXPECT_EQ(error_of(zh)["code"], "invalid_credentials");
  EXPECT_EQ(error_of(zh)["message"], "邮箱或密码错误");
  const auto en = login("nobody@example.com", "Wr0ng-password");
  EXPECT_EQ(error_of(en)["code"], "invalid_credentials");
  EXPECT_EQ(error_of(en)["message"], "the email or password is incorrect");
}

// Mails are in the language the error messages are negotiated in (i18n.h, q-values included).
// It was picked by finding "zh" anywhere in Accept-Language, so `en, zh;q=0` (Chinese refused)
// got a Chinese mail while its errors came in English (issue 13).
TEST_F(Identity, TheMailLanguageIsNegotiatedLikeTheErrorMessages) {
  start();
  auto register_with = [&](const std::string& email, const std::string& languages) {
    const auto r = testing::http_call_with(
        port_, http::verb::post, "/v1/auth/register",
        {{"Accept-Language", languages}, {"X-Forwarded-For", "198.51.100.78"}}, "",
        json{{"email", email}, {"password", kPassword}, {"consent", true}}.dump(), 30s);
    EXPECT_EQ(r.status, 201u) << r.body;
    return mail_to(email);
  };
  for (const auto& [email, languages] : std::vector<std::pair<std::string, std::string>>{
           {"refuses-zh@example.com", "en, zh;q=0"},
           {"prefers-en@example.com", "zh-CN;q=0.5, en"},
           {"ties@example.com", "zh-CN, en"}}) {
    const auto mail = register_with(email, languages);
    EXPECT_NE(mail.find("Please confirm your email address"), std::string::npos)
        << languages << "\n"
        << mail;
  }
  const auto zh = register_with("prefers-zh@example.com", "zh-CN,zh;q=0.9,en;q=0.5");
  EXPECT_NE(zh.find("请打开以下链接"), std::string::npos) << zh;
}

// Argon2id parameters raised by the operator: the next successful login stores a hash with the
// new ones (PasswordChanged without revoking sessions), and the password keeps working.
TEST_F(Identity, ALoginRehashesAPasswordMadeWithOlderParameters) {
  start({"--password-memory-kib", "8192", "--password-passes", "1"});
  const auto user = verified("rehash@example.com", "Tr0ub4dor&3x");
  ASSERT_FALSE(user.empty());
  ASSERT_EQ(stop(), 0);
  start();  // the defaults: 19456 KiB, 2 passes
  const auto first = login("rehash@example.com", "Tr0ub4dor&3x");
  ASSERT_EQ(first.status, 200u) << first.body;
  const auto admin = admin_token();
  const auto changed = audit(admin, user, "PasswordChanged");
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_FALSE(changed[0]["event"].value("revoked_other_sessions", false));
  EXPECT_EQ(changed[0]["event"].value("password_hash", ""), "[redacted]");
  EXPECT_EQ(call(http::verb::get, "/v1/me", nullptr, data_of(first)["accessToken"]).status, 200u)
      << "the session that caused the rehash stays valid";
  EXPECT_EQ(login("rehash@example.com", "Tr0ub4dor&3x").status, 200u);
  EXPECT_EQ(audit(admin, user, "PasswordChanged").size(), 1u) << "rehashed once";
}

// 002 "Session Idle Timeout": --session-idle is a number of seconds, positive, and the
// rememberMe window is at least as long; anything else stops ledgerd with a clear message.
TEST_F(Identity, SessionIdleFlagsAreValidatedSessionIdleTimeout) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--session-idle", "0"}, "--session-idle must be 1.."},
      {{"--session-idle", "-4"}, "--session-idle must be 1.."},
      {{"--session-idle", "4s"}, "--session-idle"},
      {{"--session-idle-remember-me", "0"}, "--session-idle-remember-me must be 1.."},
      {{"--session-idle", "600", "--session-idle-remember-me", "300"},
       "--session-idle-remember-me (300 s) must be at least --session-idle (600 s)"},
  };
  for (const auto& [flags, says] : cases) {
    std::vector<std::string> args = {SECHEX_LEDGERD, "--data-dir", data(), "--listen",
                                     "127.0.0.1:0"};
    args.insert(args.end(), flags.begin(), flags.end());
    const auto r = testing::run(args, {"SECHEX_KEK="});
    EXPECT_EQ(r.code, 2) << says;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
  }
}

// 002 "Active session tracking", "Session activity window" and "Idle session expiration" on a
// 4 s window (--session-idle 4): a session used every 1.5 s for 7 s is still alive after it,
// past its original expiry, so the activity extended it; after 6 s without a request it has
// expired, and its refresh token is refused (004 FR-018: refreshing needs a live session).
// Kept end to end for the wiring (--session-idle, the authenticator feeding session activity and
// its thread); the same on the manual clock, with the access token: identity_routes_test.cc.
TEST_F(Identity, ActivityExtendsTheSessionAndIdleExpiryRefusesItsRefreshActiveSessionTracking) {
  start({"--session-idle", "4"});
  ASSERT_FALSE(verified("idle@example.com").empty());
  const auto in = login("idle@example.com", kPassword);
  ASSERT_EQ(in.status, 200u) << in.body;
  const auto logged_in = std::chrono::steady_clock::now();
  const std::string access = data_of(in)["accessToken"];
  const std::string refresh = data_of(in)["refreshToken"];
  while (std::chrono::steady_clock::now() - logged_in < 7s) {
    std::this_thread::sleep_for(1500ms);
    const auto me = call(http::verb::get, "/v1/me", nullptr, access);
    ASSERT_EQ(me.status, 200u) << me.body;
  }
  // The listing shows only sessions alive now (the predicate refresh uses too).
  const auto sessions = call(http::verb::get, "/v1/me/sessions", nullptr, access);
  ASSERT_EQ(sessions.status, 200u) << sessions.body;
  ASSERT_EQ(data_of(sessions)["sessions"].size(), 1u)
      << "the session lapsed while in use: " << sessions.body;
  EXPECT_EQ(data_of(sessions)["sessions"][0]["current"], true);

  std::this_thread::sleep_for(6s);
  const auto refused = post("/v1/auth/refresh", {{"refreshToken", refresh}});
  EXPECT_EQ(refused.status, 401u) << refused.body;
  EXPECT_EQ(error_of(refused)["code"], "invalid_token");
  EXPECT_EQ(login("idle@example.com", kPassword).status, 200u) << "re-authentication works";
}

// An idle-expired session's access token, to the microsecond: identity_routes_test.cc.

// API.md "Browser sessions", 003 CSRF, 004 FR-018/FR-020: a browser refreshes with its
// __Host-refresh cookie, and that state change needs the session's CSRF token from this site
// like any other: without it (or cross-site, or forged) 403 csrf_rejected. With it the pair
// rotates and both cookies are set anew; the old refresh cookie presented again is reuse:
// refused, the whole family revoked (RefreshTokenReuseDetected in the audit API), the new
// cookies with it.
TEST_F(Identity, RefreshByCookieNeedsTheCsrfTokenRotatesTheCookiesAndReuseRevokesFR020FR033) {
  start();
  const auto user = verified("cookie.refresh@example.com");
  ASSERT_FALSE(user.empty());
  const auto in = login("cookie.refresh@example.com", kPassword);
  ASSERT_EQ(in.status, 200u) << in.body;
  const std::string refresh = data_of(in)["refreshToken"];
  auto as_browser = [&](http::verb verb, const std::string& target, const std::string& jar,
                        testing::Headers extra, const std::string& body = "{}") {
    extra.emplace_back("Cookie", jar);
    extra.emplace_back("X-Forwarded-For", "198.51.100.201");
    // A JSON body without refreshToken (or none at all): the cookie is the credential.
    return testing::http_call_with(port_, verb, target, extra, "",
                                   verb == http::verb::post ? body : "", 30s);
  };
  // The token by the refresh cookie alone: the access cookie (1 h) may be gone by then.
  const auto csrf = as_browser(http::verb::get, "/v1/auth/csrf", "__Host-refresh=" + refresh, {});
  ASSERT_EQ(csrf.status, 200u) << csrf.body;
  const std::string token = data_of(csrf)["csrfToken"];
  EXPECT_EQ(as_browser(http::verb::get, "/v1/auth/csrf", "__Host-refresh=forged", {}).status, 401u)
      << "an unknown refresh cookie gets no token";
  const auto refresh_by = [&](const std::string& refresh_token, testing::Headers proof,
                              const std::string& body = "{}") {
    return as_browser(http::verb::post, "/v1/auth/refresh", "__Host-refresh=" + refresh_token,
                      std::move(proof), body);
  };
  const std::vector<std::pair<testing::Headers, std::string>> refusals = {
      {{}, "missing_csrf_token"},
      {{{"X-CSRF-Token", "forged"}}, "invalid_csrf_token"},
      {{{"X-CSRF-Token", token}, {"Sec-Fetch-Site", "cross-site"}}, "cross_site"},
      {{{"X-CSRF-Token", token}, {"Origin", "https://evil.example"}}, "cross_site"},
  };
  for (const auto& [proof, reason] : refusals) {
    const auto r = refresh_by(refresh, proof);
    EXPECT_EQ(r.status, 403u) << reason << " " << r.body;
    EXPECT_EQ(error_of(r)["code"], "csrf_rejected") << reason;
    EXPECT_EQ(error_of(r)["details"]["reason"], reason);
    EXPECT_TRUE(r.set_cookies.empty()) << reason;
  }

  const testing::Headers ours = {{"X-CSRF-Token", token}, {"Sec-Fetch-Site", "same-origin"}};
  // The refusals did not use the token up; a browser's POST may come without a body.
  const auto rotated = refresh_by(refresh, ours, "");
  ASSERT_EQ(rotated.status, 200u) << rotated.body;
  const std::string next_access = data_of(rotated)["accessToken"];
  const std::string next_refresh = data_of(rotated)["refreshToken"];
  EXPECT_NE(next_refresh, refresh);
  ASSERT_EQ(rotated.set_cookies.size(), 2u) << rotated.body;
  EXPECT_EQ(rotated.set_cookies[0].rfind("__Host-access=" + next_access + ";", 0), 0u)
      << rotated.set_cookies[0];
  EXPECT_EQ(rotated.set_cookies[1].rfind("__Host-refresh=" + next_refresh + ";", 0), 0u)
      << rotated.set_cookies[1];
  for (const auto& c : rotated.set_cookies) {
    EXPECT_NE(c.find("; Path=/; Secure; HttpOnly; SameSite=Lax"), std::string::npos) << c;
  }
  const std::string next_jar = "__Host-access=" + next_access + "; __Host-refresh=" + next_refresh;
  EXPECT_EQ(as_browser(http::verb::get, "/v1/me", next_jar, {}).status, 200u);

  // The token was spent (single use, US7-4); a stolen rotated refresh cookie replayed with
  // fresh CSRF tokens of the session reaches reuse detection.
  EXPECT_EQ(refresh_by(next_refresh, ours).status, 403u) << "a spent CSRF token is refused";
  EXPECT_FALSE(header(rotated, "x-csrf-token").empty()) << "the answer hands the next token";
  const auto fresh_token = [&] {
    const auto c = as_browser(http::verb::get, "/v1/auth/csrf", next_jar, {});
    EXPECT_EQ(c.status, 200u) << c.body;
    return testing::Headers{{"X-CSRF-Token", data_of(c)["csrfToken"].get<std::string>()},
                            {"Sec-Fetch-Site", "same-origin"}};
  };
  const auto second = fresh_token();
  const auto replay = refresh_by(refresh, {{"X-CSRF-Token", header(rotated, "x-csrf-token")},
                                           {"Sec-Fetch-Site", "same-origin"}});
  EXPECT_EQ(replay.status, 401u) << replay.body;
  EXPECT_EQ(error_of(replay)["code"], "invalid_token");
  EXPECT_EQ(refresh_by(next_refresh, second).status, 401u) << "the family is revoked";
  EXPECT_EQ(as_browser(http::verb::get, "/v1/me", next_jar, {}).status, 401u)
      << "and its session's access cookie";
  const auto admin = admin_token();
  EXPECT_EQ(audit_count(admin, user, "TokenRefreshed"), 1u);
  EXPECT_EQ(audit_count(admin, user, "RefreshTokenReuseDetected"), 1u);
  EXPECT_EQ(audit_count(admin, user, "CsrfRejected"), refusals.size() + 1)
      << "each refusal audited, the spent token's too";
}

}  // namespace
}  // namespace sechex::api
