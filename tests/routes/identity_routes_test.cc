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
#include "api/crypto/dpop.h"
#include "api/crypto/token_settings.h"
#include "api/identity/session_activity.h"
#include "api/mail/mail.h"
#include "api/routes/account_api.h"
#include "api/routes/admin_api.h"
#include "api/routes/exclusive_api.h"
#include "api/routes/identity_api.h"
#include "api/routes/ledger_api.h"
#include "api/routes/otp_api.h"
#include "crypto/attestation_mint.h"
#include "ledger/crypto.h"
#include "ledger/time_format.h"
#include "routes/route_test.h"

namespace sechex::api {
namespace {

using json = nlohmann::json;
constexpr std::int64_t kSecond = 1'000'000;  // clock steps, in micros
constexpr std::int64_t kMinute = 60 * kSecond;
constexpr std::int64_t kHour = 60 * kMinute;
constexpr const char* kPassword = "Tr0ub4dor&3x";
constexpr const char* kAppId = "TEAM123456.com.example.exclusive";
constexpr const char* kOrigin = "https://id.example.com";
constexpr const char* kRpId = "id.example.com";

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
            kinds_.emplace_back(kind);
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
    admin_ = std::make_unique<AdminApi>(deps, config);
    admin_->add_routes(*routes_);
    ledger_api_ = std::make_unique<LedgerApi>(*commands_, *keys_, *auth_, *ring_, clock_);
    ledger_api_->add_routes(*routes_);
    // Exclusive mode, trusting the test CA of the minted attestations.
    roots_ = std::make_unique<webauthn::TrustStore>(
        webauthn::TrustStore::from_pem(testing::attest::pem_of(ca_.cert.get())).value());
    identity::ExclusiveConfig xc;
    xc.origin = kOrigin;
    xc.rp_id = kRpId;
    xc.roots = roots_.get();
    xc.upgrade_url = "https://id.example.com/help/devices";
    app_roots_ = std::make_unique<webauthn::TrustStore>(
        webauthn::TrustStore::from_pem(testing::attest::pem_of(app_ca_.cert.get())).value());
    xc.app_attest = webauthn::AppAttestApp{kAppId, false, app_roots_.get()};
    xc.public_url = kOrigin;
    xc.rate_per_second = 5;              // small, so the limit is reached in a test
    xc.idle = std::chrono::minutes{10};  // shorter than the token, so the lock shows
    if (nonces_) {
      xc.nonces = std::make_shared<const dpop::NonceSource>(ledger::Bytes(32, 0x4e));
    }
    exclusive_commands_ = std::make_unique<identity::ExclusiveCommands>(*commands_deps_, *identity_,
                                                                        *verifier_, std::move(xc));
    exclusive_ = std::make_unique<ExclusiveApi>(deps, config, *exclusive_commands_);
    exclusive_->add_routes(*routes_);
  }
  void TearDown() override { deferred_.stop(); }

  Response call(const std::string& method, const std::string& path, const json& body = nullptr,
                const std::string& token = "", const std::string& ip = "192.0.2.1") {
    Request r;
    r.method = method;
    r.path = path.substr(0, path.find('?'));
    if (path.find('?') != std::string::npos) r.query = path.substr(path.find('?') + 1);
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
  std::unique_ptr<AdminApi> admin_;
  std::unique_ptr<LedgerApi> ledger_api_;
  testing::attest::TestCa ca_;
  std::unique_ptr<webauthn::TrustStore> roots_;
  testing::attest::TestCa app_ca_;  // stands in for Apple's App Attestation root
  std::unique_ptr<webauthn::TrustStore> app_roots_;
  std::unique_ptr<identity::ExclusiveCommands> exclusive_commands_;
  std::unique_ptr<ExclusiveApi> exclusive_;
  bool nonces_ = false;  // exclusive mode with server nonces (--dpop-nonce)
  std::mutex mu_;
  std::condition_variable mailed_;
  std::map<std::string, std::string> secrets_;  // address -> the secret of its latest mail
  std::vector<std::string> kinds_;              // of every mail built, in order
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

// ---- Exclusive mode activation (API.md "Exclusive mode"; specs 000 FR-01/FR-04/FR-09, 001) ----

namespace mint = testing::attest;

// A device as the tests play it: a hardware key attested by the test CA (packed, full chain).
struct Device {
  mint::Key credential = mint::ec_key();
  mint::Key leaf = mint::ec_key();
  mint::AuthDataSpec auth{kRpId, 0x45, ledger::Bytes(16, 0x2a), ledger::Bytes(16, 0x07)};
  std::string origin = kOrigin;
  std::string type = "webauthn.create";

  // {deviceAttestation, clientDataJSON} over `challenge`, base64url.
  json attest(const mint::TestCa& ca, const std::string& challenge, const mint::Bytes& cose) const {
    const std::string client_data = json{
        {"type", type},
        {"challenge", challenge},
        {"origin", origin},
        {"crossOrigin", false}}.dump();
    const auto cdh = ledger::crypto::sha256(ledger::as_bytes(client_data));
    const auto auth_data = mint::auth_data(auth, cose);
    const auto sig =
        mint::sign(leaf.get(), mint::concat(auth_data, mint::Bytes(cdh.begin(), cdh.end())));
    mint::CertSpec spec;
    const auto cert = ca.issue(leaf.get(), spec);
    const auto object =
        mint::attestation_object("packed", {-7, sig, {mint::der_of(cert.get())}}, auth_data);
    return {{"deviceAttestation", jose::base64url_encode(ledger::ByteView(object))},
            {"clientDataJSON", jose::base64url_encode(std::string_view(client_data))}};
  }
  json attest(const mint::TestCa& ca, const std::string& challenge) const {
    return attest(ca, challenge, mint::cose_key(credential.get()));
  }
  std::string thumbprint() const {
    return jose::EcPublicKey::from_sec1(mint::point_of(credential.get())).value().thumbprint();
  }
};

// A native iOS app's App Attest key (fmt apple-appattest), its leaf issued by the test CA in
// place of Apple's App Attestation CA: key id = SHA-256 of the key = credential id, rpIdHash =
// SHA-256(app id), counter 0, the nonce extension over authData and the client data hash.
struct AppAttestDevice {
  mint::Key key = mint::ec_key();
  std::string app_id = kAppId;
  bool development = false;

  json attest(const mint::TestCa& ca, const std::string& challenge) const {
    const std::string client_data =
        json{{"type", "webauthn.create"}, {"challenge", challenge}, {"origin", kOrigin}}.dump();
    const auto cdh = ledger::crypto::sha256(ledger::as_bytes(client_data));
    const auto key_id = ledger::crypto::sha256(mint::point_of(key.get()));
    std::string aaguid =
        development ? "appattestdevelop" : std::string("appattest") + std::string(7, '\0');
    mint::AuthDataSpec spec{app_id, 0x40, mint::Bytes(aaguid.begin(), aaguid.end()),
                            mint::Bytes(key_id.begin(), key_id.end()), 0};
    const auto auth = mint::auth_data(spec, mint::cose_key(key.get()));
    const auto nonce =
        ledger::crypto::sha256(mint::concat(auth, mint::Bytes(cdh.begin(), cdh.end())));
    mint::CertSpec leaf;
    leaf.extensions.emplace_back(
        "1.2.840.113635.100.8.2",
        mint::tlv({0x30},
                  mint::tlv({0xa1}, mint::tlv({0x04}, mint::Bytes(nonce.begin(), nonce.end())))));
    const auto cert = ca.issue(key.get(), leaf);
    const auto object = mint::attestation_object(
        "apple-appattest", {std::nullopt, {}, {mint::der_of(cert.get())}}, auth);
    return {{"deviceAttestation", jose::base64url_encode(ledger::ByteView(object))},
            {"clientDataJSON", jose::base64url_encode(std::string_view(client_data))}};
  }
  std::string thumbprint() const {
    return jose::EcPublicKey::from_sec1(mint::point_of(key.get())).value().thumbprint();
  }
};

class ExclusiveRoutes : public IdentityRoutes {
 protected:
  // A verified account, signed in: its access token and user id.
  void sign_in(const std::string& email) {
    ASSERT_NO_FATAL_FAILURE(verified(email));
    const auto in = login(email, kPassword);
    ASSERT_EQ(in.status, 200u) << in.body;
    token_ = data_of(in)["accessToken"];
    user_ = verifier_->verify(token_).value().claims.sub;
  }
  void grant(const std::string& role, bool granted = true) {
    ASSERT_TRUE(commands_->run(
        commands_->partition_for(user_), [&]() -> Result<std::vector<ledger::Bytes>> {
          ledger::EventBuilder b(nullptr, {.subject = user_,
                                           .actor = "admin:root",
                                           .request_id = "r",
                                           .time_micros = clock_.now_micros(),
                                           .ip = std::nullopt,
                                           .user_agent = std::nullopt});
          auto& f = b.fbb();
          SECHEX_TRY(auto e, b.finish(schema::CreateRoleGranted(f, f.CreateString(role), granted)));
          return std::vector<ledger::Bytes>{std::move(e)};
        }));
  }
  std::string challenge() {
    const auto r = call("POST", "/v1/secure/exclusive/challenge", nullptr, token_);
    EXPECT_EQ(r.status, 200u) << r.body;
    return r.status == 200u ? data_of(r)["challenge"].get<std::string>() : "";
  }
  Response activate(const json& body, const std::string& reauth = "") {
    Request r;
    r.method = "POST";
    r.path = "/v1/secure/exclusive/start";
    r.headers["authorization"] = "Bearer " + token_;
    r.headers["content-type"] = "application/json";
    if (!reauth.empty()) r.headers["x-reauth-token"] = reauth;
    r.body = body.dump();
    r.request_id = "req-x";
    r.peer = "192.0.2.1";
    r.scheme = "https";
    return dispatch(std::move(r));
  }
  std::string reason_of(const Response& r) { return error_of(r)["details"]["reason"]; }
  std::string admin_token() {
    return issuer_->issue({"root", "s-admin", {"admin"}}, std::chrono::hours(1)).value().token;
  }
  Response put(const std::string& path, const json& body, const std::string& as) {
    return call("PUT", path, body, as);
  }
  // A streamed answer's whole body.
  static std::string collect(Response& r) {
    std::string out = r.body;
    while (r.next_chunk) {
      auto c = r.next_chunk();
      if (!c) ADD_FAILURE() << c.error().message();
      if (!c || c.value().empty()) break;
      out += c.value();
    }
    return out;
  }

  std::string token_;
  std::string user_;
};

// 000 FR-01, FR-04; API.md: a premium user's attested hardware key with UV gets a 30-minute
// session token bound to it (cnf.jkt), the device is enrolled with its key sealed, and the token
// is never a bearer token.
TEST_F(ExclusiveRoutes, APremiumUserActivatesWithAnAttestedKeyAndGetsAKeyBoundToken) {
  start();
  sign_in("ann@example.com");
  const auto refused = call("POST", "/v1/secure/exclusive/challenge", nullptr, token_);
  ASSERT_EQ(refused.status, 403u) << refused.body;
  EXPECT_EQ(error_of(refused)["code"], "not_premium");
  grant("premium");

  const auto issued = call("POST", "/v1/secure/exclusive/challenge", nullptr, token_);
  ASSERT_EQ(issued.status, 200u) << issued.body;
  EXPECT_EQ(data_of(issued)["expiresIn"], 300);
  ledger::Bytes raw;
  ASSERT_TRUE(jose::base64url_decode(data_of(issued)["challenge"].get<std::string>(), raw));
  EXPECT_GE(raw.size(), 16u) << "at least 16 random bytes";

  const Device phone;
  const auto body = phone.attest(ca_, data_of(issued)["challenge"]);
  const auto started = activate(body);
  ASSERT_EQ(started.status, 201u) << started.body;
  EXPECT_EQ(data_of(started)["expiresIn"], 1800);
  const std::string session_token = data_of(started)["sessionToken"];
  const auto claims = verifier_->verify(session_token).value().claims;
  EXPECT_EQ(claims.cnf_jkt, phone.thumbprint()) << "bound to the attested key";
  EXPECT_EQ(claims.sub, user_);
  EXPECT_EQ(claims.exp - claims.iat, 1800);
  EXPECT_EQ(call("GET", "/v1/me", nullptr, session_token).status, 401u)
      << "a key-bound token is not a bearer token";

  // The challenge was used up: the same attestation again is refused.
  const auto again = activate(body);
  ASSERT_EQ(again.status, 401u) << again.body;
  EXPECT_EQ(error_of(again)["code"], "attestation_failed");
  EXPECT_EQ(reason_of(again), "wrong_challenge");

  const auto devices = call("GET", "/v1/me/devices", nullptr, token_);
  ASSERT_EQ(devices.status, 200u) << devices.body;
  ASSERT_EQ(data_of(devices)["devices"].size(), 1u);
  EXPECT_EQ(data_of(devices)["devices"][0]["deviceId"], data_of(started)["deviceId"]);
  EXPECT_EQ(data_of(devices)["devices"][0]["format"], "packed");
  EXPECT_EQ(data_of(devices)["devices"][0]["attestationType"], "basic");
}

// API.md admin roles: premium is granted and revoked by an admin, audited, and read from the
// projection on every request, so a revocation takes effect at once.
TEST_F(ExclusiveRoutes, AnAdminGrantsAndRevokesPremiumAndItTakesEffectAtOnce) {
  start();
  sign_in("fay@example.com");
  const auto admin =
      issuer_->issue({"root", "s-admin", {"admin"}}, std::chrono::hours(1)).value().token;
  const auto roles = [&](const json& body, const std::string& as, const std::string& who) {
    return call("POST", "/v1/admin/users/" + who + "/roles", body, as);
  };
  EXPECT_EQ(roles({{"grant", {"premium"}}}, token_, user_).status, 403u) << "admins only";
  const auto granted = roles({{"grant", {"premium"}}}, admin, user_);
  ASSERT_EQ(granted.status, 200u) << granted.body;
  EXPECT_EQ(data_of(granted)["roles"], json::array({"premium"}));
  EXPECT_EQ(call("POST", "/v1/secure/exclusive/challenge", nullptr, token_).status, 200u);
  const auto again = roles({{"grant", {"premium"}}}, admin, user_);
  EXPECT_EQ(data_of(again)["roles"], json::array({"premium"})) << "granting twice changes nothing";

  const auto unknown = roles({{"grant", {"superuser"}}}, admin, user_);
  ASSERT_EQ(unknown.status, 400u) << unknown.body;
  EXPECT_EQ(error_of(unknown)["code"], "invalid_role");
  EXPECT_EQ(roles({{"grant", {"premium"}}, {"revoke", {"premium"}}}, admin, user_).status, 400u);
  EXPECT_EQ(roles({{"grant", "premium"}}, admin, user_).status, 400u);
  EXPECT_EQ(roles(json::object(), admin, user_).status, 400u);
  EXPECT_EQ(roles({{"grant", {"premium"}}}, admin, "no-such-user").status, 404u);

  const auto revoked = roles({{"revoke", {"premium"}}}, admin, user_);
  ASSERT_EQ(revoked.status, 200u) << revoked.body;
  EXPECT_EQ(data_of(revoked)["roles"], json::array());
  const auto refused = call("POST", "/v1/secure/exclusive/challenge", nullptr, token_);
  EXPECT_EQ(refused.status, 403u) << "with the same access token: read on every request";
  EXPECT_EQ(error_of(refused)["code"], "not_premium");
}

// 000 FR-08; API.md admin rows: an admin sets a user's attributes and the exclusive_mode flag's
// rules, each audited; the flag decides who may start, read on every request; until it is set
// it is enabled for everyone.
TEST_F(ExclusiveRoutes, TheFlagAndTheAttributesAnAdminSetsDecideWhoMayStartFR08) {
  start();
  sign_in("gus@example.com");
  grant("premium");
  const auto admin = admin_token();
  const auto unset = call("GET", "/v1/admin/flags/exclusive_mode", nullptr, admin);
  ASSERT_EQ(unset.status, 200u) << unset.body;
  EXPECT_EQ(data_of(unset)["set"], false);
  EXPECT_EQ(data_of(unset)["enabled"], true) << "enabled for everyone until set";
  EXPECT_EQ(call("GET", "/v1/admin/flags/exclusive_mode", nullptr, token_).status, 403u);
  EXPECT_EQ(call("GET", "/v1/admin/flags/no_such_flag", nullptr, admin).status, 404u);

  const auto attrs = "/v1/admin/users/" + user_ + "/attributes";
  EXPECT_EQ(put(attrs, {{"region", "eu"}}, token_).status, 403u) << "admins only";
  EXPECT_EQ(put("/v1/admin/users/nobody/attributes", {{"region", "eu"}}, admin).status, 404u);
  const auto bad = put(attrs, {{"region", "e u"}}, admin);
  ASSERT_EQ(bad.status, 400u) << bad.body;
  EXPECT_EQ(error_of(bad)["details"]["field"], "region");
  const auto set = put(attrs, {{"region", "eu"}, {"segment", "gold-tier"}}, admin);
  ASSERT_EQ(set.status, 200u) << set.body;
  EXPECT_EQ(data_of(set)["region"], "eu");

  const auto us_only =
      put("/v1/admin/flags/exclusive_mode", {{"enabled", true}, {"regions", {"us"}}}, admin);
  ASSERT_EQ(us_only.status, 200u) << us_only.body;
  EXPECT_EQ(data_of(us_only)["set"], true);
  EXPECT_EQ(data_of(us_only)["regions"], json::array({"us"}));
  const auto refused = call("POST", "/v1/secure/exclusive/challenge", nullptr, token_);
  ASSERT_EQ(refused.status, 403u) << refused.body;
  EXPECT_EQ(error_of(refused)["code"], "feature_disabled");
  const auto status = data_of(call("GET", "/v1/secure/exclusive/status", nullptr, token_));
  EXPECT_EQ(status["available"], false);
  EXPECT_EQ(status["reason"], "feature_disabled");
  EXPECT_EQ(status["premium"], true);

  ASSERT_EQ(put(attrs, {{"region", "us"}}, admin).status, 200u);
  EXPECT_EQ(call("POST", "/v1/secure/exclusive/challenge", nullptr, token_).status, 200u)
      << "the attributes are read on every request";
  ASSERT_EQ(put("/v1/admin/flags/exclusive_mode",
                {{"enabled", true}, {"regions", {"us"}}, {"segments", {"gold-tier"}}}, admin)
                .status,
            200u);
  EXPECT_EQ(call("POST", "/v1/secure/exclusive/challenge", nullptr, token_).status, 403u)
      << "PUT attributes replaced both: no segment any more";
  EXPECT_EQ(
      put("/v1/admin/flags/exclusive_mode", {{"enabled", true}, {"percentage", 150}}, admin).status,
      400u);
  EXPECT_EQ(put("/v1/admin/flags/other", {{"enabled", true}}, admin).status, 404u);

  // Audited: who changed what, and the attributes are sealed (personal data, FR-01 style).
  int flags = 0, attributes = 0;
  for (std::uint32_t p = 0; p < log_->partition_count(); ++p) {
    const ledger::Partition part{p};
    const auto records = log_->read_range(part, ledger::Seq{0}, log_->head(part).next).value();
    for (const auto& r : records) {
      const auto* env = schema::GetEnvelope(r.event.data());
      if (env->event_type() == schema::Event::FlagChanged) {
        ++flags;
        EXPECT_EQ(env->actor()->str(), "admin:root");
      }
      if (env->event_type() == schema::Event::UserAttributesSet) {
        ++attributes;
        EXPECT_EQ(env->actor()->str(), "admin:root");
        const std::string bytes(r.event.begin(), r.event.end());
        EXPECT_EQ(bytes.find("gold-tier"), std::string::npos) << "sealed, not in clear";
      }
    }
  }
  EXPECT_EQ(flags, 2);
  EXPECT_EQ(attributes, 2);
}

// Issue 14 (apple-appattest): a native iOS app of the configured app id activates with App
// Attest; a development key is refused unless allowed, another app's key is a wrong RP, and the
// client data is checked as for WebAuthn (challenge, origin).
TEST_F(ExclusiveRoutes, ANativeIosAppActivatesWithAppAttestForItsAppOnly) {
  start();
  sign_in("ios@example.com");
  grant("premium");
  const AppAttestDevice phone;
  const auto foreign = activate(phone.attest(ca_, challenge()));
  ASSERT_EQ(foreign.status, 401u) << "a WebAuthn vendor's CA never vouches for App Attest";
  EXPECT_EQ(reason_of(foreign), "untrusted_chain");
  const auto started = activate(phone.attest(app_ca_, challenge()));
  ASSERT_EQ(started.status, 201u) << started.body;
  EXPECT_EQ(
      verifier_->verify(data_of(started)["sessionToken"].get<std::string>()).value().claims.cnf_jkt,
      phone.thumbprint());
  const auto devices = data_of(call("GET", "/v1/me/devices", nullptr, token_))["devices"];
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0]["format"], "apple-appattest");

  AppAttestDevice development;
  development.development = true;
  const auto reauth = call("POST", "/v1/auth/reauth", {{"password", kPassword}}, token_);
  ASSERT_EQ(reauth.status, 200u) << reauth.body;
  const std::string step_up = data_of(reauth)["reauthToken"];
  const auto dev = activate(development.attest(app_ca_, challenge()), step_up);
  ASSERT_EQ(dev.status, 401u) << dev.body;
  EXPECT_EQ(reason_of(dev), "development_key");
  AppAttestDevice other_app;
  other_app.app_id = "ZZZZZZZZZZ.com.example.other";
  const auto other = activate(other_app.attest(app_ca_, challenge()), step_up);
  ASSERT_EQ(other.status, 401u) << other.body;
  EXPECT_EQ(reason_of(other), "wrong_rp");
  const auto stale = challenge();
  (void)challenge();  // a newer challenge replaces it
  const auto replaced = activate(AppAttestDevice{}.attest(app_ca_, stale), step_up);
  ASSERT_EQ(replaced.status, 401u) << replaced.body;
  EXPECT_EQ(reason_of(replaced), "wrong_challenge");
}

// A real Android Keystore chain makes a 4.5-5.5 KB base64url attestation: start takes strings up
// to what the attestation parser takes (16 KiB of CBOR), and refuses longer ones with a 400.
TEST_F(ExclusiveRoutes, StartTakesAttestationsAsLongAsRealDeviceChains) {
  start();
  sign_in("long@example.com");
  grant("premium");
  (void)challenge();
  const auto real_size =
      activate({{"deviceAttestation", std::string(6000, 'A')}, {"clientDataJSON", "e30"}});
  ASSERT_EQ(real_size.status, 401u) << "read, then refused as an attestation: " << real_size.body;
  EXPECT_EQ(error_of(real_size)["code"], "attestation_failed");
  const auto too_long =
      activate({{"deviceAttestation", std::string(30'000, 'A')}, {"clientDataJSON", "e30"}});
  ASSERT_EQ(too_long.status, 400u) << too_long.body;
  EXPECT_EQ(error_of(too_long)["details"]["reason"], "string_too_long");
}

// API.md: each way an activation can be wrong is refused for its own reason, and a refused
// attempt spends its challenge (single use, whatever the fate).
TEST_F(ExclusiveRoutes, EachWrongActivationIsRefusedForItsReasonAndSpendsTheChallenge) {
  start();
  sign_in("bob@example.com");
  grant("premium");
  const auto refused_with = [&](const Device& d) {
    const auto r = activate(d.attest(ca_, challenge()));
    EXPECT_EQ(r.status, 401u) << r.body;
    return r.status == 401u ? reason_of(r) : std::string();
  };
  Device no_uv;
  no_uv.auth.flags = 0x41;  // UP | AT: no biometric or PIN (000 FR-04)
  EXPECT_EQ(refused_with(no_uv), "user_not_verified");
  Device other_rp;
  other_rp.auth.rp_id = "evil.example";
  EXPECT_EQ(refused_with(other_rp), "wrong_rp");
  Device other_origin;
  other_origin.origin = "https://evil.example";
  EXPECT_EQ(refused_with(other_origin), "wrong_origin");
  Device assertion;
  assertion.type = "webauthn.get";
  EXPECT_EQ(refused_with(assertion), "wrong_type");

  // The challenge of a refused attempt is spent.
  const Device good;
  const auto c = challenge();
  ASSERT_EQ(activate(no_uv.attest(ca_, c)).status, 401u);
  const auto late = activate(good.attest(ca_, c));
  ASSERT_EQ(late.status, 401u) << late.body;
  EXPECT_EQ(reason_of(late), "wrong_challenge");

  // A challenge past its 5 minutes is gone.
  const auto old = challenge();
  clock_.advance_micros(5 * kMinute);
  const auto expired = activate(good.attest(ca_, old));
  EXPECT_EQ(reason_of(expired), "wrong_challenge");

  // A chain from another CA.
  const mint::TestCa stranger;
  const auto untrusted = activate(good.attest(stranger, challenge()));
  ASSERT_EQ(untrusted.status, 401u) << untrusted.body;
  EXPECT_EQ(reason_of(untrusted), "untrusted_chain");

  // 000 FR-09: a key that is not P-256 is told so, with guidance, not silently refused.
  const auto p384 = mint::ec_key("P-384");
  const auto unsupported =
      activate(good.attest(ca_, challenge(), mint::cose_key(p384.get(), 2, -35)));
  ASSERT_EQ(unsupported.status, 400u) << unsupported.body;
  EXPECT_EQ(error_of(unsupported)["code"], "device_unsupported");
  EXPECT_EQ(error_of(unsupported)["details"]["upgradeUrl"], "https://id.example.com/help/devices");

  const auto malformed =
      activate({{"deviceAttestation", "not base64url!"}, {"clientDataJSON", "x"}});
  ASSERT_EQ(malformed.status, 401u) << malformed.body;
  EXPECT_EQ(reason_of(malformed), "bad_encoding");
  EXPECT_EQ(activate({{"clientDataJSON", "x"}}).status, 400u) << "deviceAttestation is required";
}

// API.md: a second device needs a step-up and the same device does not; removing a device ends
// its sessions and it is listed no more.
TEST_F(ExclusiveRoutes, ASecondDeviceNeedsAStepUpAndARemovedDeviceIsGone) {
  start();
  sign_in("cat@example.com");
  grant("premium");
  const Device first, second;
  const auto one = activate(first.attest(ca_, challenge()));
  ASSERT_EQ(one.status, 201u) << one.body;
  const auto same = activate(first.attest(ca_, challenge()));
  ASSERT_EQ(same.status, 201u) << "the enrolled device again needs no step-up: " << same.body;
  EXPECT_EQ(data_of(same)["deviceId"], data_of(one)["deviceId"]);
  const auto mails_before = mails_sent();

  const auto c = challenge();
  const auto without = activate(second.attest(ca_, c));
  ASSERT_EQ(without.status, 403u) << without.body;
  EXPECT_EQ(error_of(without)["code"], "reauth_required");
  const auto reauth = call("POST", "/v1/auth/reauth", {{"password", kPassword}}, token_);
  ASSERT_EQ(reauth.status, 200u) << reauth.body;
  const auto with = activate(second.attest(ca_, c), data_of(reauth)["reauthToken"]);
  ASSERT_EQ(with.status, 201u) << "the challenge was not spent by the step-up refusal: "
                               << with.body;
  EXPECT_EQ(mails_sent(), mails_before + 1) << "API.md: the owner is mailed about the new device";
  {
    std::lock_guard l(mu_);
    EXPECT_EQ(kinds_.back(), projections::kMailExclusiveNewDevice);
    EXPECT_EQ(std::count(kinds_.begin(), kinds_.end(), projections::kMailExclusiveNewDevice), 1)
        << "not for the first device, nor for the enrolled one again";
  }
  ASSERT_EQ(data_of(call("GET", "/v1/me/devices", nullptr, token_))["devices"].size(), 2u);

  const std::string removed = data_of(one)["deviceId"];
  EXPECT_EQ(call("DELETE", "/v1/me/devices/" + removed, nullptr, token_).status, 200u);
  const auto left = data_of(call("GET", "/v1/me/devices", nullptr, token_))["devices"];
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0]["deviceId"], data_of(with)["deviceId"]);
  EXPECT_EQ(call("DELETE", "/v1/me/devices/" + removed, nullptr, token_).status, 404u);
  EXPECT_FALSE(
      projections::exclusive_session(
          *store_,
          verifier_->verify(data_of(one)["sessionToken"].get<std::string>()).value().claims.sid)
          .value()
          ->active_at(clock_.now()))
      << "the removed device's session ended";
}

// API.md "Browsers": with dpopJwk the WebAuthn challenge is SHA-256(challenge || thumbprint) and
// the session is bound to the WebCrypto key, not to the attested credential.
TEST_F(ExclusiveRoutes, ABrowsersDpopKeyIsBoundThroughTheChallengeItCommitsTo) {
  start();
  sign_in("dan@example.com");
  grant("premium");
  const Device browser;
  const auto webcrypto = mint::ec_key();
  const auto dpop = jose::EcPublicKey::from_sec1(mint::point_of(webcrypto.get())).value();
  const auto jkt = dpop.thumbprint();
  // Before any device is enrolled: a challenge committed to a key, sent without the key.
  const auto c3 = challenge();
  ledger::Bytes raw3;
  ASSERT_TRUE(jose::base64url_decode(c3, raw3));
  raw3.insert(raw3.end(), jkt.begin(), jkt.end());
  const auto committed3 = ledger::crypto::sha256(raw3);
  EXPECT_EQ(reason_of(activate(browser.attest(ca_, jose::base64url_encode(ledger::ByteView(
                                                       committed3.data(), committed3.size()))))),
            "wrong_challenge")
      << "a challenge committed to a key, without the key";
  const auto c = challenge();
  ledger::Bytes raw;
  ASSERT_TRUE(jose::base64url_decode(c, raw));
  raw.insert(raw.end(), jkt.begin(), jkt.end());
  const auto committed = ledger::crypto::sha256(raw);
  auto body = browser.attest(
      ca_, jose::base64url_encode(ledger::ByteView(committed.data(), committed.size())));
  body["dpopJwk"] = dpop.jwk("");
  body["dpopJwk"].erase("kid");
  const auto started = activate(body);
  ASSERT_EQ(started.status, 201u) << started.body;
  EXPECT_EQ(
      verifier_->verify(data_of(started)["sessionToken"].get<std::string>()).value().claims.cnf_jkt,
      jkt);

  // The plain challenge with a dpopJwk, or the committed one without: refused.
  const auto c2 = challenge();
  auto plain = browser.attest(ca_, c2);
  plain["dpopJwk"] = body["dpopJwk"];
  EXPECT_EQ(reason_of(activate(plain)), "wrong_challenge");
}

// ---- Every request signed (000 FR-02, FR-03, FR-05; 001 /validate, /end) ----

// A browser in exclusive mode: a WebCrypto key signs the proofs, bound through the challenge.
class SignedRequests : public ExclusiveRoutes {
 protected:
  void SetUp() override {
    start();
    ASSERT_NO_FATAL_FAILURE(sign_in("eve@example.com"));
    grant("premium");
    key_ = std::make_unique<jose::SigningKey>(jose::SigningKey::generate().value());
    ASSERT_NO_FATAL_FAILURE(new_session());
  }
  // An activation of the same device and key: a new session token.
  void new_session() {
    const auto& pub = key_->public_key();
    jwk_ = json{{"kty", "EC"},
                {"crv", "P-256"},
                {"x", jose::base64url_encode(ledger::ByteView(pub.x().data(), pub.x().size()))},
                {"y", jose::base64url_encode(ledger::ByteView(pub.y().data(), pub.y().size()))}};
    const auto jkt = pub.thumbprint();
    ledger::Bytes raw;
    ASSERT_TRUE(jose::base64url_decode(challenge(), raw));
    raw.insert(raw.end(), jkt.begin(), jkt.end());
    const auto committed = ledger::crypto::sha256(raw);
    auto body = device_.attest(
        ca_, jose::base64url_encode(ledger::ByteView(committed.data(), committed.size())));
    body["dpopJwk"] = jwk_;
    const auto started = activate(body);
    ASSERT_EQ(started.status, 201u) << started.body;
    session_token_ = data_of(started)["sessionToken"];
  }
  // A proof of this key for `method path` now, with `jti`.
  std::string proof(const std::string& jti,
                    const std::string& path = "/v1/secure/exclusive/validate",
                    const std::string& method = "POST", std::optional<std::int64_t> iat = {},
                    const jose::SigningKey* key = nullptr, const std::string& token = "") const {
    const json header{{"typ", "dpop+jwt"}, {"alg", "ES256"}, {"jwk", jwk_}};
    json claims{{"jti", jti},
                {"htm", method},
                {"htu", std::string(kOrigin) + path},
                {"iat", iat.value_or(clock_.now_micros() / 1'000'000)},
                {"ath", dpop::ath_of(token.empty() ? session_token_ : token)}};
    if (!nonce_.empty()) claims["nonce"] = nonce_;
    return jose::jws_sign_es256(key != nullptr ? *key : *key_, header.dump(), claims.dump())
        .value();
  }
  Response signed_call(const std::string& path, const std::string& dpop_header,
                       const json& body = json{{"action", "transfer"},
                                               {"payload", {{"amount", 5}}}},
                       const std::string& scheme = "DPoP") {
    Request r;
    r.method = "POST";
    r.path = path;
    r.headers["authorization"] = scheme + " " + session_token_;
    if (!dpop_header.empty()) r.headers["dpop"] = dpop_header;
    r.headers["content-type"] = "application/json";
    r.body = body.dump();
    r.request_id = "req-s";
    r.peer = "192.0.2.1";
    r.scheme = "https";
    return dispatch(std::move(r));
  }
  Response validate(const std::string& jti) {
    return signed_call("/v1/secure/exclusive/validate", proof(jti));
  }
  // The reasons of the ExclusiveRequestRejected events chained so far, in log order.
  std::vector<std::string> rejections() const {
    std::vector<std::string> out;
    for (std::uint32_t p = 0; p < log_->partition_count(); ++p) {
      const ledger::Partition part{p};
      const auto records = log_->read_range(part, ledger::Seq{0}, log_->head(part).next).value();
      for (const auto& r : records) {
        const auto* env = schema::GetEnvelope(r.event.data());
        if (const auto* e = env->event_as_ExclusiveRequestRejected())
          out.push_back(e->reason()->str());
      }
    }
    return out;
  }

  Device device_;
  std::unique_ptr<jose::SigningKey> key_;
  json jwk_;
  std::string session_token_;
  std::string nonce_;  // put in the next proofs when set
};

class NoncedRequests : public SignedRequests {
 protected:
  void SetUp() override {
    nonces_ = true;
    SignedRequests::SetUp();
  }
};

// RFC 9449 §9 (--dpop-nonce): a proof without the server's nonce is answered 401 use_dpop_nonce
// with the nonce to use, chained as such (000 FR-05) and its jti not spent; signed again with
// it, it is served, and the answer hands out the nonce for the next one; an old nonce is
// refused again.
TEST_F(NoncedRequests, AProofMustCarryAFreshServerNonce) {
  const auto first = validate("n-1");
  ASSERT_EQ(first.status, 401u) << first.body;
  EXPECT_EQ(error_of(first)["code"], "use_dpop_nonce");
  EXPECT_EQ(header(first, "WWW-Authenticate"), "DPoP algs=\"ES256\", error=\"use_dpop_nonce\"");
  nonce_ = header(first, "DPoP-Nonce");
  ASSERT_EQ(nonce_.size(), 43u);
  EXPECT_EQ(rejections(), (std::vector<std::string>{"dpop_nonce_required"}))
      << "the protocol's round trip is chained, as no spoof";

  const auto served = validate("n-1");
  ASSERT_EQ(served.status, 200u) << "the jti was not spent: " << served.body;
  EXPECT_EQ(header(served, "DPoP-Nonce"), nonce_);
  clock_.advance_micros(60 * kSecond);
  EXPECT_EQ(validate("n-2").status, 200u) << "still valid in the next step";
  clock_.advance_micros(60 * kSecond);
  const auto stale = validate("n-3");
  ASSERT_EQ(stale.status, 401u) << stale.body;
  EXPECT_NE(header(stale, "DPoP-Nonce"), nonce_) << "a fresh one to use";
  nonce_ = "forged-nonce";
  EXPECT_EQ(error_of(validate("n-4"))["code"], "use_dpop_nonce");
  EXPECT_EQ(rejections().size(), 3u);
}

TEST_F(SignedRequests, AProvenRequestIsChainedAndAnsweredWithItsReceiptFR02) {
  const auto r = validate("jti-1");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(data_of(r)["status"], "ok");
  EXPECT_EQ(data_of(r)["result"]["action"], "transfer");
  const auto receipt = data_of(r)["result"]["receipt"];
  EXPECT_EQ(receipt["hash"].get<std::string>().size(), 64u);
  const auto seq = receipt["seq"].get<std::uint64_t>();
  const auto records =
      log_->read_range(ledger::Partition{receipt["partition"].get<std::uint32_t>()},
                       ledger::Seq{seq}, ledger::Seq{seq + 1})
          .value();
  ASSERT_EQ(records.size(), 1u) << "the receipt names a record of the log";
  const auto& stored = records[0];
  EXPECT_EQ(ledger::to_hex(ledger::ByteView(stored.hash.data(), stored.hash.size())),
            receipt["hash"]);
  const auto* env = schema::GetEnvelope(stored.event.data());
  ASSERT_EQ(env->event_type(), schema::Event::ExclusiveActionValidated);
  EXPECT_EQ(env->event_as_ExclusiveActionValidated()->dpop_jti()->str(), "jti-1");
  EXPECT_EQ(
      signed_call("/v1/secure/exclusive/validate", proof("jti-b"), json{{"action", "x"}}, "Bearer")
          .status,
      200u)
      << "spec 001: Bearer is accepted as the scheme too, never without a proof";
}

TEST_F(SignedRequests, AReplayedProofIsRefusedAndChainedFR03) {
  const auto p = proof("jti-1");
  ASSERT_EQ(signed_call("/v1/secure/exclusive/validate", p).status, 200u);
  const auto again = signed_call("/v1/secure/exclusive/validate", p);
  ASSERT_EQ(again.status, 409u) << again.body;
  EXPECT_EQ(error_of(again)["code"], "replay_detected");
  clock_.advance_micros(10 * kSecond);
  EXPECT_EQ(signed_call("/v1/secure/exclusive/validate", proof("jti-1")).status, 409u)
      << "the same jti in a fresh proof is a replay too";
  EXPECT_EQ(validate("jti-2").status, 200u);
  const auto chained = rejections();
  EXPECT_EQ(std::count(chained.begin(), chained.end(), "replay_detected"), 2);
}

// A captured proof resent in a loop: each replay is refused and chained, but only up to the
// per-user rate (5 here); beyond it 429, one record for the second, so a replay flood cannot
// grow the log faster than the rate.
TEST_F(SignedRequests, ReplaysAreChainedOnlyUpToTheRate) {
  const auto p = proof("loop");
  ASSERT_EQ(signed_call("/v1/secure/exclusive/validate", p).status, 200u);
  std::vector<unsigned> statuses;
  for (int i = 0; i < 10; ++i) {
    statuses.push_back(signed_call("/v1/secure/exclusive/validate", p).status);
  }
  EXPECT_EQ(statuses, (std::vector<unsigned>{409, 409, 409, 409, 429, 429, 429, 429, 429, 429}));
  const auto chained = rejections();
  EXPECT_EQ(std::count(chained.begin(), chained.end(), "replay_detected"), 4);
  EXPECT_EQ(std::count(chained.begin(), chained.end(), "rate_limited"), 1);
}

TEST_F(SignedRequests, EachSpoofIsRefusedAndChainedWithItsReasonFR02FR05) {
  // A second between spoofs, so each is under the rate up to which spoofs are chained.
  const auto reason = [&](const Response& r) {
    clock_.advance_micros(kSecond);
    EXPECT_EQ(r.status, 401u) << r.body;
    return r.status == 401u ? error_of(r)["details"]["reason"].get<std::string>() : "";
  };
  const auto other = jose::SigningKey::generate().value();
  EXPECT_EQ(reason(signed_call("/v1/secure/exclusive/validate", "")), "missing_proof");
  EXPECT_EQ(reason(signed_call("/v1/secure/exclusive/validate",
                               proof("a", "/v1/secure/exclusive/validate", "POST", {}, &other))),
            "bad_signature")
      << "a proof signed by another key under this key's jwk";
  EXPECT_EQ(
      reason(signed_call("/v1/secure/exclusive/validate", proof("b", "/v1/secure/exclusive/end"))),
      "htu_mismatch");
  EXPECT_EQ(reason(signed_call("/v1/secure/exclusive/validate",
                               proof("c", "/v1/secure/exclusive/validate", "GET"))),
            "htm_mismatch");
  EXPECT_EQ(reason(signed_call("/v1/secure/exclusive/validate",
                               proof("d", "/v1/secure/exclusive/validate", "POST",
                                     clock_.now_micros() / 1'000'000 - 31))),
            "iat_too_old");
  EXPECT_EQ(reason(signed_call(
                "/v1/secure/exclusive/validate",
                proof("e", "/v1/secure/exclusive/validate", "POST", {}, nullptr, "another-token"))),
            "ath_mismatch");
  EXPECT_EQ(reason(signed_call("/v1/secure/exclusive/validate", proof("f") + ", " + proof("g"))),
            "malformed")
      << "two DPoP headers (joined by the server) are refused";
  // Another key entirely (its own jwk): the thumbprint is not the session's cnf.jkt.
  const json header{{"typ", "dpop+jwt"},
                    {"alg", "ES256"},
                    {"jwk", [&] {
                       const auto& pub = other.public_key();
                       return json{
                           {"kty", "EC"},
                           {"crv", "P-256"},
                           {"x", jose::base64url_encode(ledger::ByteView(pub.x().data(), 32))},
                           {"y", jose::base64url_encode(ledger::ByteView(pub.y().data(), 32))}};
                     }()}};
  const json claims{{"jti", "h"},
                    {"htm", "POST"},
                    {"htu", std::string(kOrigin) + "/v1/secure/exclusive/validate"},
                    {"iat", clock_.now_micros() / 1'000'000},
                    {"ath", dpop::ath_of(session_token_)}};
  EXPECT_EQ(reason(signed_call("/v1/secure/exclusive/validate",
                               jose::jws_sign_es256(other, header.dump(), claims.dump()).value())),
            "jkt_mismatch");
  // 000 FR-05: every spoof was chained with its reason.
  const auto chained = rejections();
  for (const char* r :
       {"spoof_attempt:missing_proof", "spoof_attempt:bad_signature", "spoof_attempt:htu_mismatch",
        "spoof_attempt:htm_mismatch", "spoof_attempt:iat_too_old", "spoof_attempt:ath_mismatch",
        "spoof_attempt:jkt_mismatch", "spoof_attempt:malformed"}) {
    EXPECT_NE(std::find(chained.begin(), chained.end(), r), chained.end()) << r;
  }
  // An ordinary access token is no session token.
  session_token_ = token_;
  EXPECT_EQ(signed_call("/v1/secure/exclusive/validate", proof("i")).status, 401u);
  EXPECT_EQ(error_of(signed_call("/v1/secure/exclusive/validate", proof("i")))["code"],
            "invalid_token");
}

// 000/001: the idle window (10 minutes in this fixture, --exclusive-idle; 30 by default) without
// a validated request locks the session: 423, and it stays locked; the user activates again.
TEST_F(SignedRequests, AnIdleSessionLocksWith423AndStaysLocked) {
  ASSERT_EQ(validate("a").status, 200u);
  clock_.advance_micros(10 * kMinute - kSecond);
  ASSERT_EQ(validate("b").status, 200u) << "just inside the window";
  clock_.advance_micros(10 * kMinute);
  const auto locked = validate("c");
  ASSERT_EQ(locked.status, 423u) << locked.body;
  EXPECT_EQ(error_of(locked)["code"], "reauth_required");
  EXPECT_EQ(validate("d").status, 423u) << "locked for good";
  ASSERT_NO_FATAL_FAILURE(new_session());
  EXPECT_EQ(validate("e").status, 200u) << "a new activation opens a new session";
}

// 001 /end: the session token stops working at once; the token's own expiry (30 min) ends it too.
TEST_F(SignedRequests, EndStopsTheTokenAtOnceAndItExpiresAfterThirtyMinutes) {
  ASSERT_EQ(validate("a").status, 200u);
  const auto ended =
      signed_call("/v1/secure/exclusive/end", proof("e", "/v1/secure/exclusive/end"));
  ASSERT_EQ(ended.status, 200u) << ended.body;
  EXPECT_EQ(data_of(ended)["status"], "ended");
  const auto after = validate("f");
  EXPECT_EQ(after.status, 401u) << after.body;
  EXPECT_EQ(error_of(after)["code"], "invalid_token");

  ASSERT_NO_FATAL_FAILURE(new_session());
  for (int i = 0; i < 3; ++i) {
    clock_.advance_micros(9 * kMinute);
    ASSERT_EQ(validate("g" + std::to_string(i)).status, 200u) << i;
  }
  clock_.advance_micros(3 * kMinute);
  EXPECT_EQ(validate("h").status, 401u) << "30 minutes after activation";
}

// A stolen session token without its key cannot grow the log without bound: spoofs are chained
// up to the per-user rate (5/s in this fixture); beyond it one "rate_limited" record a second
// stands for the rest, which are refused all the same.
TEST_F(SignedRequests, SpoofsAreChainedOnlyUpToTheRate) {
  const auto other = jose::SigningKey::generate().value();
  for (int i = 0; i < 12; ++i) {
    const auto r = signed_call(
        "/v1/secure/exclusive/validate",
        proof("s" + std::to_string(i), "/v1/secure/exclusive/validate", "POST", {}, &other));
    ASSERT_EQ(r.status, 401u) << i << r.body;
  }
  auto chained = rejections();
  ASSERT_EQ(chained.size(), 6u);
  EXPECT_EQ(std::count(chained.begin(), chained.end(), "spoof_attempt:bad_signature"), 5);
  EXPECT_EQ(chained.back(), "rate_limited");
  clock_.advance_micros(kSecond);
  EXPECT_EQ(signed_call("/v1/secure/exclusive/validate", "").status, 401u);
  chained = rejections();
  EXPECT_EQ(chained.size(), 7u) << "recorded again once the second has passed";
  EXPECT_EQ(chained.back(), "spoof_attempt:missing_proof");
}

// 000 FR-05: every refused action is an event, whatever refused it, as long as the token names
// the user: a request on an ended or locked session, a replayed /end, a body the route cannot
// take (checked after the proof), and the rate's 429 (one record a second).
TEST_F(SignedRequests, EveryRefusalOfASignedRequestIsChainedWithItsReasonFR05) {
  // A body the route cannot take: 400 as before, chained, the proof not spent.
  const auto bad_body =
      signed_call("/v1/secure/exclusive/validate", proof("b-1"), json{{"action", 42}});
  ASSERT_EQ(bad_body.status, 400u) << bad_body.body;
  EXPECT_EQ(error_of(bad_body)["code"], "invalid_request");
  EXPECT_EQ(rejections().back(), "invalid_request");
  EXPECT_EQ(validate("b-1").status, 200u) << "a refused body spends no proof";
  // A bad body with a bad proof is answered as the spoof it is.
  EXPECT_EQ(signed_call("/v1/secure/exclusive/validate", "", json{{"action", 42}}).status, 401u);
  EXPECT_EQ(rejections().back(), "spoof_attempt:missing_proof");

  // The rate's refusal: 429, one record for the second.
  clock_.advance_micros(kSecond);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(validate("r" + std::to_string(i)).status, 200u);
  for (int i = 5; i < 9; ++i) EXPECT_EQ(validate("r" + std::to_string(i)).status, 429u);
  auto chained = rejections();
  EXPECT_EQ(std::count(chained.begin(), chained.end(), "rate_limited"), 1);
  EXPECT_EQ(chained.back(), "rate_limited");

  // /end, then its replay (409) and a request on the ended session (401), both chained.
  clock_.advance_micros(kSecond);
  const auto end_proof = proof("e-1", "/v1/secure/exclusive/end");
  ASSERT_EQ(signed_call("/v1/secure/exclusive/end", end_proof).status, 200u);
  const auto replayed = signed_call("/v1/secure/exclusive/end", end_proof);
  EXPECT_EQ(replayed.status, 409u) << replayed.body;
  EXPECT_EQ(error_of(replayed)["code"], "replay_detected");
  EXPECT_EQ(rejections().back(), "replay_detected");
  EXPECT_EQ(
      signed_call("/v1/secure/exclusive/end", proof("e-2", "/v1/secure/exclusive/end")).status,
      401u);
  EXPECT_EQ(rejections().back(), "invalid_token:session_ended");
  EXPECT_EQ(validate("after-end").status, 401u);
  EXPECT_EQ(rejections().back(), "invalid_token:session_ended");

  // A locked session (idle), then an expired one.
  ASSERT_NO_FATAL_FAILURE(new_session());
  clock_.advance_micros(11 * kMinute);
  EXPECT_EQ(validate("idle-1").status, 423u) << "locks it (ExclusiveLocked)";
  EXPECT_EQ(validate("idle-2").status, 423u);
  EXPECT_EQ(rejections().back(), "exclusive_locked");
  ASSERT_NO_FATAL_FAILURE(new_session());
  for (int i = 0; i < 3; ++i) {
    clock_.advance_micros(9 * kMinute);
    ASSERT_EQ(validate("x" + std::to_string(i)).status, 200u);
  }
  // The session token expires with the session: past it the token no longer verifies, so it
  // names nobody and nothing is chained (anyone could send one).
  clock_.advance_micros(4 * kMinute);
  const auto before = rejections().size();
  EXPECT_EQ(validate("expired").status, 401u);
  EXPECT_EQ(rejections().size(), before);
}

// 000 FR-03: "refuse (503) rather than forget". When the log cannot append, a signed request is
// refused with 503 before it is served, and its proof is not remembered as used (it was never
// accepted): once the log writes again the same proof is served, then refused as a replay.
TEST_F(SignedRequests, WhenTheLogCannotAppendASignedRequestIsRefused503AndNothingIsServed) {
  ASSERT_EQ(validate("before").status, 200u);
  const auto p = proof("during");
  faulty_->fail_appends = true;
  const auto refused = signed_call("/v1/secure/exclusive/validate", p);
  faulty_->fail_appends = false;
  ASSERT_EQ(refused.status, 503u) << refused.body;
  EXPECT_EQ(error_of(refused)["code"], "unavailable");
  EXPECT_EQ(header(refused, "Retry-After"), "1");
  EXPECT_EQ(signed_call("/v1/secure/exclusive/validate", p).status, 200u)
      << "the refused proof was never accepted, so it is not a replay";
  EXPECT_EQ(signed_call("/v1/secure/exclusive/validate", p).status, 409u);
  faulty_->fail_appends = true;
  EXPECT_EQ(signed_call("/v1/secure/exclusive/end", proof("e", "/v1/secure/exclusive/end")).status,
            503u);
  faulty_->fail_appends = false;
  EXPECT_EQ(validate("after").status, 200u) << "the /end that could not be recorded ended nothing";
}

// 000 FR-06, FR-08 (issue 14): the role and the flag are read on every signed request, so a
// revoked premium or a flag turned off refuses the next one, chained with its reason.
TEST_F(SignedRequests, ARevokedPremiumOrAFlagTurnedOffRefusesTheNextSignedRequest) {
  ASSERT_EQ(validate("f1").status, 200u);
  const auto admin = admin_token();
  ASSERT_EQ(put("/v1/admin/flags/exclusive_mode", {{"enabled", false}}, admin).status, 200u);
  const auto off = validate("f2");
  ASSERT_EQ(off.status, 403u) << off.body;
  EXPECT_EQ(error_of(off)["code"], "feature_disabled");
  ASSERT_EQ(put("/v1/admin/flags/exclusive_mode", {{"enabled", true}}, admin).status, 200u);
  EXPECT_EQ(validate("f3").status, 200u) << "a refused proof spent nothing: f3 is fresh";
  EXPECT_EQ(validate("f2").status, 200u) << "f2 was refused before it was recorded";
  grant("premium", false);
  clock_.advance_micros(kSecond);
  const auto revoked = validate("f4");
  ASSERT_EQ(revoked.status, 403u) << revoked.body;
  EXPECT_EQ(error_of(revoked)["code"], "not_premium");
  const auto chained = rejections();
  EXPECT_EQ(std::count(chained.begin(), chained.end(), "feature_disabled"), 1);
  EXPECT_EQ(std::count(chained.begin(), chained.end(), "not_premium"), 1);
}

// 001 GET /v1/admin/secure/audit; 000 FR-05: every exclusive action, accepted or refused, with
// user, device, action, outcome, proof jti and hash and its (partition, seq, hash); JSON or CSV,
// CSV safe against formula injection.
TEST_F(SignedRequests, TheSecureAuditListsEveryExclusiveActionAsJsonOrCsvFR05) {
  const auto accepted_proof = proof("aud-1");
  ASSERT_EQ(signed_call("/v1/secure/exclusive/validate", accepted_proof,
                        json{{"action", "=HYPERLINK(\"http://evil\")"}})
                .status,
            200u);
  ASSERT_EQ(signed_call("/v1/secure/exclusive/validate", accepted_proof).status, 409u);
  clock_.advance_micros(kSecond);
  ASSERT_EQ(signed_call("/v1/secure/exclusive/validate", "").status, 401u);
  const auto admin = admin_token();
  const auto path = "/v1/admin/secure/audit?userId=" + user_;
  EXPECT_EQ(call("GET", path, nullptr, token_).status, 403u) << "admins only";
  EXPECT_EQ(call("GET", path + "&type=LoginSucceeded", nullptr, admin).status, 400u);
  EXPECT_EQ(call("GET", path + "&format=xml", nullptr, admin).status, 400u);

  auto answer = call("GET", path + "&format=json", nullptr, admin);
  ASSERT_EQ(answer.status, 200u) << answer.body;
  const auto entries = json::parse(collect(answer));
  ASSERT_TRUE(entries.is_array());
  std::vector<std::string> outcomes;
  for (const auto& e : entries) {
    outcomes.push_back(e["outcome"]);
    EXPECT_EQ(e["userId"], user_);
    EXPECT_EQ(e["hash"].get<std::string>().size(), 64u);
  }
  EXPECT_EQ(outcomes,
            (std::vector<std::string>{"issued", "activated", "accepted", "refused", "refused"}));
  const auto& accepted = entries[2];
  const auto& device_id = entries[1]["deviceId"];
  EXPECT_FALSE(device_id.get<std::string>().empty());
  EXPECT_EQ(accepted["deviceId"], device_id);
  EXPECT_EQ(accepted["jti"], "aud-1");
  const auto proof_hash = ledger::crypto::sha256(ledger::ByteView(
      reinterpret_cast<const std::uint8_t*>(accepted_proof.data()), accepted_proof.size()));
  EXPECT_EQ(accepted["proofHash"], ledger::to_hex(ledger::ByteView(proof_hash)));
  EXPECT_EQ(entries[3]["reason"], "replay_detected");
  EXPECT_EQ(entries[3]["deviceId"], device_id);
  EXPECT_EQ(entries[4]["reason"], "spoof_attempt:missing_proof");
  const auto seq = accepted["seq"].get<std::uint64_t>();
  const auto record =
      log_->read_range(ledger::Partition{accepted["partition"].get<std::uint32_t>()},
                       ledger::Seq{seq}, ledger::Seq{seq + 1})
          .value();
  ASSERT_EQ(record.size(), 1u);
  EXPECT_EQ(ledger::to_hex(ledger::ByteView(record[0].hash)), accepted["hash"]);

  auto csv = call("GET", path + "&format=csv", nullptr, admin);
  ASSERT_EQ(csv.status, 200u) << csv.body;
  const auto text = collect(csv);
  EXPECT_EQ(
      text.substr(0, text.find("\r\n")),
      "time,userId,deviceId,sessionId,action,outcome,reason,jti,proofHash,partition,seq,hash");
  EXPECT_NE(text.find(",\"'=HYPERLINK(\"\"http://evil\"\")\",accepted,"), std::string::npos)
      << "a formula is neutralised and quoted: " << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 6) << "a header and five entries";

  auto later =
      call("GET", path + "&from=" + format_rfc3339(clock_.now_micros() + kSecond), nullptr, admin);
  ASSERT_EQ(later.status, 200u);
  EXPECT_EQ(json::parse(collect(later)).size(), 0u) << "filtered by time";
}

// API.md status: the toggle's state and countdown, from the projections.
TEST_F(SignedRequests, StatusShowsTheActiveSessionAndItsCountdowns) {
  const auto before = call("GET", "/v1/secure/exclusive/status", nullptr, token_);
  ASSERT_EQ(before.status, 200u) << before.body;
  EXPECT_EQ(data_of(before)["available"], true);
  EXPECT_EQ(data_of(before)["premium"], true);
  EXPECT_EQ(data_of(before)["active"], true);
  const auto activated = clock_.now_micros();
  EXPECT_EQ(data_of(before)["expiresAt"], format_rfc3339(activated + 30 * kMinute));
  EXPECT_EQ(data_of(before)["idleLockAt"], format_rfc3339(activated + 10 * kMinute));
  clock_.advance_micros(4 * kMinute);
  ASSERT_EQ(validate("a").status, 200u);
  EXPECT_EQ(data_of(call("GET", "/v1/secure/exclusive/status", nullptr, token_))["idleLockAt"],
            format_rfc3339(clock_.now_micros() + 10 * kMinute))
      << "a validated request moves the idle lock";
  clock_.advance_micros(10 * kMinute);
  EXPECT_EQ(data_of(call("GET", "/v1/secure/exclusive/status", nullptr, token_))["active"], false)
      << "idle past the window";
  grant("premium", false);
  const auto revoked = data_of(call("GET", "/v1/secure/exclusive/status", nullptr, token_));
  EXPECT_EQ(revoked["available"], false);
  EXPECT_EQ(revoked["reason"], "not_premium");
  EXPECT_EQ(revoked["premium"], false) << "a revocation shows at once";
}

// 001: at most N validations per user per second (5 in this fixture, --exclusive-rate; 100 by
// default), then 429 with Retry-After.
TEST_F(SignedRequests, ValidationsBeyondTheRatePerSecondWait) {
  for (int i = 0; i < 5; ++i) ASSERT_EQ(validate("r" + std::to_string(i)).status, 200u) << i;
  const auto limited = validate("r5");
  ASSERT_EQ(limited.status, 429u) << limited.body;
  EXPECT_EQ(header(limited, "Retry-After"), "1");
  clock_.advance_micros(kSecond);
  EXPECT_EQ(validate("r6").status, 200u);
}

}  // namespace
}  // namespace sechex::api
