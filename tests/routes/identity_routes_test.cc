// The identity routes in-process, on the manual clock: the behaviour that depends on time passing
// (rate-limit windows, idle expiry and the activity that extends a session, link and code
// expiries) without a spawned ledgerd or sleeping. Real LogStore, ProjectionStore, KeyStore, key
// ring, Argon2id (small parameters) and session activity; requests go through the router and the
// route guards as the server dispatches them. The mail secrets are taken where the handlers queue
// them.
#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <tuple>

#include "api/auth/route_registry.h"
#include "api/crypto/token_settings.h"
#include "api/identity/session_activity.h"
#include "api/mail/mail.h"
#include "api/routes/account_api.h"
#include "api/routes/identity_api.h"
#include "api/routes/otp_api.h"
#include "ledger/crypto.h"
#include "routes/route_test.h"

namespace sechex::api {
namespace {

using json = nlohmann::json;
constexpr std::int64_t kSecond = 1'000'000;  // clock steps, in micros
constexpr std::int64_t kMinute = 60 * kSecond;
constexpr std::int64_t kHour = 60 * kMinute;
constexpr const char* kPassword = "Tr0ub4dor&3x";

class IdentityRoutes : public RouteTest {
 protected:
  // Builds the node as ledgerd's serve() wires it, under `limits`.
  void start(identity::Limits limits = {}) {
    open_node();
    PasswordHasher::Options po;
    po.params = {.t_cost = 1, .m_cost_kib = 64, .parallelism = 1};
    po.threads = 1;
    hasher_ = PasswordHasher::create(po).value();
    activity_ = std::make_unique<SessionActivity>(*commands_, *keys_, clock_, limits);
    auth_->on_authenticated([this](const Principal& who) {
      activity_->seen(projections::UserId(who.subject), projections::SessionId(who.session));
    });
    commands_deps_ = std::make_unique<identity::CommandDeps>(identity::CommandDeps{
        .commands = *commands_,
        .keys = *keys_,
        .issuer = *issuer_,
        .hasher = *hasher_,
        .lookup = lookup_,
        .disposable = identity::DisposableDomains::builtin(),
        .queue_mail = [this](const ledger::EventMeta& meta, std::string_view kind,
                             std::string_view to, std::string_view secret,
                             std::string_view locale) -> Result<ledger::Bytes> {
          {
            std::lock_guard l(mu_);
            secrets_[std::string(to)] = std::string(secret);
          }
          SECHEX_TRY(auto queued, build_mail_queued(*keys_, meta,
                                                    {std::string(kind), std::string(to),
                                                     std::string(secret), std::string(locale)}));
          return std::move(queued.bytes);
        },
        // Called once the mail's events are appended and applied: only then may a test use the
        // secret (a 202's work runs on the work queue after the answer).
        .mail_queued =
            [this] {
              {
                std::lock_guard l(mu_);
                ++mails_;
              }
              mailed_.notify_all();
            },
        .log = {},
        .on_otp_lockout = {},
        .on_otp_rate_limited = {}});
    identity_ = std::make_unique<identity::IdentityCommands>(*commands_deps_,
                                                             identity::CommandConfig{limits});
    const IdentityConfig config;
    const IdentityDeps deps{.identity = *identity_,
                            .auth = *auth_,
                            .lookup = lookup_,
                            .clock = clock_,
                            .deferred = deferred_,
                            .csrf = nullptr,
                            .log = {}};
    api_ = std::make_unique<IdentityApi>(deps, config);
    account_ = std::make_unique<AccountApi>(deps, config);
    otp_ = std::make_unique<OtpApi>(deps, config);
    api_->add_routes(*routes_);
    account_->add_routes(*routes_);
    otp_->add_routes(*routes_);
  }
  void TearDown() override { deferred_.stop(); }

  Response call(const std::string& method, const std::string& path, const json& body = nullptr,
                const std::string& token = "", const std::string& ip = "192.0.2.1") {
    Request r;
    r.method = method;
    r.path = path;
    if (!token.empty()) r.headers["authorization"] = "Bearer " + token;
    if (!body.is_null()) {
      r.headers["content-type"] = "application/json";
      r.body = body.dump();
    }
    r.request_id = "req-" + std::to_string(++requests_);
    r.peer = ip;
    r.scheme = "https";
    return dispatch(std::move(r));
  }
  // The secret of the `n`th mail queued since the start, once it is queued (the 202 routes queue
  // theirs on the work queue after answering); "" if it never comes.
  std::string secret_of_mail(int n, const std::string& to) {
    std::unique_lock l(mu_);
    if (!mailed_.wait_for(l, std::chrono::seconds(10), [&] { return mails_ >= n; })) return "";
    return secrets_[to];
  }
  static json data_of(const Response& r) { return json::parse(r.body)["data"]; }
  static json error_of(const Response& r) { return json::parse(r.body)["error"]; }
  static std::string header(const Response& r, std::string_view name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "";
  }

  // A registered account whose address is verified.
  void verified(const std::string& email) {
    const auto before = mails_sent();
    const auto reg =
        call("POST", "/v1/auth/register",
             {{"email", email}, {"password", kPassword}, {"consent", true}}, "", "198.51.100.1");
    ASSERT_EQ(reg.status, 201u) << reg.body;
    const auto token = secret_of_mail(before + 1, email);
    ASSERT_FALSE(token.empty());
    const auto v = call("POST", "/v1/auth/verify-email", {{"token", token}});
    ASSERT_EQ(v.status, 200u) << v.body;
  }
  int mails_sent() {
    std::lock_guard l(mu_);
    return mails_;
  }
  Response login(const std::string& email, const std::string& password,
                 const std::string& ip = "198.51.100.2") {
    return call("POST", "/v1/auth/login", {{"email", email}, {"password", password}}, "", ip);
  }

  const LookupHasher lookup_{test_key('l')};
  WorkQueue deferred_{{.max_queued = 64, .threads = 1}};
  std::unique_ptr<PasswordHasher> hasher_;
  std::unique_ptr<SessionActivity> activity_;  // not started: the test drains it
  std::unique_ptr<identity::CommandDeps> commands_deps_;
  std::unique_ptr<identity::IdentityCommands> identity_;
  std::unique_ptr<IdentityApi> api_;
  std::unique_ptr<AccountApi> account_;
  std::unique_ptr<OtpApi> otp_;
  std::mutex mu_;
  std::condition_variable mailed_;
  std::map<std::string, std::string> secrets_;  // address -> the secret of its latest mail
  int mails_ = 0;                               // queued since the start
  int requests_ = 0;
};

// 004 FR-011: at most 5 attempts per client per 15 minutes, whatever the accounts; Retry-After
// says when the oldest attempt leaves the window, to the second.
TEST_F(IdentityRoutes, TheSixthLoginAttemptFromOneClientWaitsForTheOldestToLeaveTheWindowFR011) {
  start();
  for (int i = 0; i < 5; ++i) {
    const auto r =
        login("user" + std::to_string(i) + "@example.com", "Wr0ng-password", "192.0.2.9");
    EXPECT_EQ(r.status, 401u) << r.body;
  }
  clock_.advance_micros(3 * kSecond);
  const auto sixth = login("other@example.com", "Wr0ng-password", "192.0.2.9");
  ASSERT_EQ(sixth.status, 429u) << sixth.body;
  EXPECT_EQ(error_of(sixth)["code"], "rate_limited");
  EXPECT_EQ(header(sixth, "Retry-After"), std::to_string(15 * 60 - 3));
  EXPECT_EQ(error_of(sixth)["details"]["retryAfter"], 15 * 60 - 3);
  EXPECT_EQ(login("other@example.com", "Wr0ng-password", "192.0.2.10").status, 401u)
      << "another client is not limited";
  clock_.advance_micros((15 * 60 - 3) * kSecond);
  EXPECT_EQ(login("other@example.com", "Wr0ng-password", "192.0.2.9").status, 401u)
      << "once the oldest attempt has left the window, the client may try again";
}

// 002 "Active session tracking", "Session activity window", "Idle session expiration" on a 4 s
// window: a session used every 1.5 s for 7 s outlives its first expiry because each use extended
// it; after 6 s without use it has expired: its refresh token is refused (004 FR-018) and so is
// its access token, which itself is good for an hour.
TEST_F(IdentityRoutes, ActivityExtendsTheSessionAndIdleExpiryEndsItActiveSessionTracking) {
  identity::Limits limits;
  limits.idle = std::chrono::seconds{4};
  start(limits);
  verified("idle@example.com");
  const auto in = login("idle@example.com", kPassword);
  ASSERT_EQ(in.status, 200u) << in.body;
  const std::string access = data_of(in)["accessToken"];
  const std::string refresh = data_of(in)["refreshToken"];
  for (int step = 0; step < 5; ++step) {  // 7.5 s in all, past the first expiry at 4 s
    clock_.advance_micros(1500 * 1000);
    const auto me = call("GET", "/v1/me", nullptr, access);
    ASSERT_EQ(me.status, 200u) << "at " << (step + 1) * 1.5 << " s: " << me.body;
    activity_->drain();  // what the activity thread does between requests
  }
  const auto sessions = call("GET", "/v1/me/sessions", nullptr, access);
  ASSERT_EQ(sessions.status, 200u) << sessions.body;
  ASSERT_EQ(data_of(sessions)["sessions"].size(), 1u) << sessions.body;
  EXPECT_EQ(data_of(sessions)["sessions"][0]["current"], true);

  clock_.advance_micros(6 * kSecond);
  const auto me = call("GET", "/v1/me", nullptr, access);
  EXPECT_EQ(me.status, 401u) << me.body;
  const auto refused = call("POST", "/v1/auth/refresh", {{"refreshToken", refresh}});
  EXPECT_EQ(refused.status, 401u) << refused.body;
  EXPECT_EQ(error_of(refused)["code"], "invalid_token");
  EXPECT_EQ(login("idle@example.com", kPassword).status, 200u) << "re-authentication works";
}

// Without activity the session ends exactly at its idle window: alive a microsecond before.
TEST_F(IdentityRoutes, AnUnusedSessionEndsAtItsIdleWindowIdleSessionExpiration) {
  identity::Limits limits;
  limits.idle = std::chrono::seconds{2};
  start(limits);
  verified("idle.access@example.com");
  const auto in = login("idle.access@example.com", kPassword);
  ASSERT_EQ(in.status, 200u) << in.body;
  const std::string access = data_of(in)["accessToken"];
  // The activity queued by the request below is never drained: it must not extend the session.
  clock_.advance_micros(2 * kSecond - 1);
  EXPECT_EQ(call("GET", "/v1/me", nullptr, access).status, 200u);
  clock_.advance_micros(1);
  EXPECT_EQ(call("GET", "/v1/me", nullptr, access).status, 401u);
}

// 004 FR-007, scenario 13: a verification link works for 24 hours and not a microsecond longer.
TEST_F(IdentityRoutes, AVerificationLinkExpiresAfter24HoursFR007) {
  start();
  for (const auto& [email, age, status] : {std::tuple{"early@example.com", 24 * kHour - 1, 200u},
                                           std::tuple{"late@example.com", 24 * kHour, 410u}}) {
    const auto before = mails_sent();
    ASSERT_EQ(call("POST", "/v1/auth/register",
                   {{"email", email}, {"password", kPassword}, {"consent", true}})
                  .status,
              201u);
    const auto token = secret_of_mail(before + 1, email);
    ASSERT_FALSE(token.empty());
    clock_.advance_micros(age);
    const auto v = call("POST", "/v1/auth/verify-email", {{"token", token}});
    EXPECT_EQ(v.status, status) << email << " " << v.body;
    if (status == 410u) {
      EXPECT_EQ(error_of(v)["code"], "token_expired");
    }
  }
}

// 004 FR-025: a reset link works for an hour; after it, 410 token_expired and the password stays.
TEST_F(IdentityRoutes, AResetLinkExpiresAfterAnHourFR025) {
  start();
  verified("reset@example.com");
  const auto forgot = [&] {
    const auto before = mails_sent();
    EXPECT_EQ(call("POST", "/v1/auth/password/forgot", {{"email", "reset@example.com"}}).status,
              202u);
    return secret_of_mail(before + 1, "reset@example.com");
  };
  const auto late = forgot();
  ASSERT_FALSE(late.empty());
  clock_.advance_micros(kHour);
  const auto refused =
      call("POST", "/v1/auth/password/reset", {{"token", late}, {"newPassword", "N3w-passw0rd!x"}});
  EXPECT_EQ(refused.status, 410u) << refused.body;
  EXPECT_EQ(error_of(refused)["code"], "token_expired");
  EXPECT_EQ(login("reset@example.com", kPassword).status, 200u) << "the password is unchanged";

  const auto early = forgot();
  ASSERT_FALSE(early.empty());
  clock_.advance_micros(kHour - 1);
  const auto done = call("POST", "/v1/auth/password/reset",
                         {{"token", early}, {"newPassword", "N3w-passw0rd!x"}});
  EXPECT_EQ(done.status, 200u) << done.body;
  EXPECT_EQ(login("reset@example.com", "N3w-passw0rd!x").status, 200u);
}

// 002 "OTP expiration": a code is good for five minutes; after them the right code answers 410
// code_expired (ask for a new one) and signs nobody in.
TEST_F(IdentityRoutes, ASignInCodeExpiresAfterFiveMinutesOtpExpiration) {
  start();
  verified("code@example.com");
  const auto request = [&] {
    const auto before = mails_sent();
    EXPECT_EQ(call("POST", "/v1/auth/otp/request", {{"email", "code@example.com"}}).status, 202u);
    return secret_of_mail(before + 1, "code@example.com");
  };
  const auto late = request();
  ASSERT_EQ(late.size(), 8u);
  clock_.advance_micros(5 * kMinute);
  const auto refused =
      call("POST", "/v1/auth/otp/verify", {{"email", "code@example.com"}, {"code", late}});
  EXPECT_EQ(refused.status, 410u) << refused.body;
  EXPECT_EQ(error_of(refused)["code"], "code_expired");

  const auto early = request();
  ASSERT_EQ(early.size(), 8u);
  clock_.advance_micros(5 * kMinute - 1);
  const auto in =
      call("POST", "/v1/auth/otp/verify", {{"email", "code@example.com"}, {"code", early}});
  EXPECT_EQ(in.status, 200u) << in.body;
  EXPECT_TRUE(data_of(in).contains("accessToken"));
}

// 002 (request limits): code requests are bounded per account, silently: the 6th within 15
// minutes still answers 202 but mails nothing, and the last mailed code keeps working. The
// absence is checked once every queued 202 work has run (the work queue stopped and drained).
TEST_F(IdentityRoutes, CodeRequestsBeyondTheMailBoundAnswer202AndMailNothing) {
  start();
  verified("bound@example.com");
  std::string fifth;
  for (int i = 0; i < 5; ++i) {
    const auto before = mails_sent();
    ASSERT_EQ(call("POST", "/v1/auth/otp/request", {{"email", "bound@example.com"}}).status, 202u);
    fifth = secret_of_mail(before + 1, "bound@example.com");
    ASSERT_EQ(fifth.size(), 8u) << i;
  }
  const auto before_sixth = mails_sent();
  EXPECT_EQ(call("POST", "/v1/auth/otp/request", {{"email", "bound@example.com"}}).status, 202u);
  deferred_.stop();  // runs what is queued, then no more
  EXPECT_EQ(mails_sent(), before_sixth) << "the sixth request mailed a code";
  const auto in =
      call("POST", "/v1/auth/otp/verify", {{"email", "bound@example.com"}, {"code", fifth}});
  EXPECT_EQ(in.status, 200u) << "the fifth code was replaced: " << in.body;
}

}  // namespace
}  // namespace sechex::api
