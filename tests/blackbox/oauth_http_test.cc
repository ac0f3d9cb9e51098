// Sign-in with a third-party OpenID provider, end to end (issue 17; spec 003 US6, FR-005..FR-008;
// API.md "Identity"): ledgerd against a real, OpenID Certified provider (npm oidc-provider,
// started by ops/oidc/start over TLS with its own CA), whose login pages ops/oidc/login-as fills
// in as a browser would; the callback is then sent to ledgerd by the test with or without the
// browser's binding cookie. Forged ID tokens (a real provider never mints them) come from
// tests/support/oidc_stub.mjs, a second provider whose token endpoint answers what the test asks.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/beast/http.hpp>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/ledgerd_fixture.h"

namespace sechex::api {
namespace {

namespace http = boost::beast::http;
using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kRedirect = "https://rp.test/v1/auth/oauth/test/callback";
constexpr const char* kClient = "sechex-test";
constexpr const char* kStubClient = "sechex-stub";

std::string ops(const std::string& script) {
  return std::string(SECHEX_SOURCE_DIR) + "/ops/" + script;
}

void write_file(const std::string& path, const std::string& text, mode_t mode = 0600) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

// The query string of a URL, "" when it has none.
std::string query_of(const std::string& url) {
  const auto q = url.find('?');
  return q == std::string::npos ? "" : url.substr(q + 1);
}

// One query parameter of a URL (values here are base64url and need no decoding).
std::string param_of(const std::string& url, const std::string& name) {
  const auto q = "&" + query_of(url);
  const auto at = q.find("&" + name + "=");
  if (at == std::string::npos) return "";
  const auto from = at + name.size() + 2;
  return q.substr(from, q.find('&', from) - from);
}

class OAuth : public testing::LedgerdHttpTest {
 protected:
  // A browser's sign-in in progress: where the provider is, and the binding cookie it holds.
  struct Begun {
    testing::HttpReply reply;
    std::string location;
    std::string cookie;  // "__Host-oauth=..." as the browser sends it back
  };

  void SetUp() override {
    op_dir_ = dir_.sub("op");
    const json op_config{
        {"idTokenTtl", 300},
        {"clients", json::array({{{"client_id", kClient},
                                  {"client_secret", "oidc-test-client-secret"},
                                  {"redirect_uris", json::array({kRedirect})},
                                  {"id_token_signed_response_alg", "RS256"},
                                  {"token_endpoint_auth_method", "client_secret_basic"}}})},
        {"accounts", json::array({
                         {{"login", "alice"},
                          {"sub", "sub-alice"},
                          {"email", "alice@example.test"},
                          {"email_verified", true},
                          {"name", "Alice"}},
                         {{"login", "bob"},
                          {"sub", "sub-bob"},
                          {"email", "bob@example.test"},
                          {"email_verified", false}},
                         {{"login", "carol"},
                          {"sub", "sub-carol"},
                          {"email", "carol@example.test"},
                          {"email_verified", true}},
                         {{"login", "dave"},
                          {"sub", "sub-dave"},
                          {"email", "dave@example.test"},
                          {"email_verified", true}},
                         {{"login", "mallory"},
                          {"sub", "sub-mallory"},
                          {"email", "mallory@example.test"},
                          {"email_verified", true}},
                     })}};
    write_file(dir_.sub("op.json"), op_config.dump());
    const auto started =
        testing::run({ops("oidc/start"), "--dir", op_dir_, "--config", dir_.sub("op.json")});
    ASSERT_EQ(started.code, 0) << started.err;
    issuer_ = started.out.substr(0, started.out.find('\n'));
    ASSERT_TRUE(issuer_.starts_with("https://127.0.0.1:")) << started.out;

    stub_ = testing::spawn(
        {"/usr/bin/env", "node", std::string(SECHEX_SOURCE_DIR) + "/tests/support/oidc_stub.mjs",
         "--dir", op_dir_, "--client-id", kStubClient},
        dir_.sub("stub.err"));
    for (int i = 0; i < 200 && !std::filesystem::exists(op_dir_ + "/stub-port"); ++i) {
      std::this_thread::sleep_for(25ms);
    }
    std::ifstream port_file(op_dir_ + "/stub-port");
    std::string port;
    ASSERT_TRUE(std::getline(port_file, port)) << testing::slurp(dir_.sub("stub.err"));

    write_file(dir_.sub("client.secret"), "oidc-test-client-secret\n");
    write_file(dir_.sub("stub.secret"), "stub-secret\n");
    const json providers{{"providers",
                          {{"test",
                            {{"issuer", issuer_},
                             {"clientId", kClient},
                             {"clientSecretFile", dir_.sub("client.secret")},
                             {"redirectUri", kRedirect},
                             {"caFile", op_dir_ + "/ca.pem"}}},
                           {"stub",
                            {{"issuer", "https://127.0.0.1:" + port},
                             {"clientId", kStubClient},
                             {"clientSecretFile", dir_.sub("stub.secret")},
                             {"redirectUri", "https://rp.test/v1/auth/oauth/stub/callback"},
                             {"caFile", op_dir_ + "/ca.pem"}}}}}};
    write_file(dir_.sub("providers.json"), providers.dump());
  }

  void TearDown() override {
    LedgerdHttpTest::TearDown();
    if (stub_.pid > 0) ::kill(stub_.pid, SIGTERM);
    testing::run({ops("oidc/stop"), "--dir", op_dir_});
  }

  void serve(std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"--oauth-providers", dir_.sub("providers.json")});
    start(extra);
  }

  testing::HttpReply get(const std::string& target, const std::string& cookie = "",
                         const std::string& ip = "203.0.113.7") {
    testing::Headers headers{{"X-Forwarded-For", ip}};
    if (!cookie.empty()) headers.emplace_back("Cookie", cookie);
    return testing::http_call_with(port_, http::verb::get, target, headers, "", "", 30s);
  }

  Begun begin(const std::string& query = "consent=true", const std::string& provider = "test") {
    Begun b;
    b.reply = get("/v1/auth/oauth/" + provider + "/start?" + query);
    b.location = header(b.reply, "location");
    for (const auto& c : b.reply.set_cookies) {
      if (c.starts_with("__Host-oauth=")) b.cookie = c.substr(0, c.find(';'));
    }
    return b;
  }

  // The provider's redirect back (with code and state) after `login` signs in there.
  std::string authorize(const Begun& b, const std::string& login) {
    const auto r =
        testing::run({ops("oidc/login-as"), b.location, login, "--ca", op_dir_ + "/ca.pem"});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }

  testing::HttpReply callback(const std::string& redirect, const std::string& cookie,
                              const std::string& provider = "test") {
    return get("/v1/auth/oauth/" + provider + "/callback?" + query_of(redirect), cookie);
  }

  // A whole sign-in as `login` in one browser.
  testing::HttpReply sign_in(const std::string& login, const std::string& query = "consent=true") {
    const auto b = begin(query);
    EXPECT_EQ(b.reply.status, 302u) << b.reply.body;
    return callback(authorize(b, login), b.cookie);
  }

  json me(const testing::HttpReply& signed_in) {
    const auto r = call(http::verb::get, "/v1/me", nullptr, data_of(signed_in)["accessToken"]);
    EXPECT_EQ(r.status, 200u) << r.body;
    return data_of(r);
  }

  // The events of `type` in the whole ledger (ledgerd stopped), via ledgerctl export.
  std::vector<json> exported(const std::string& type) {
    const auto r = ctl({"export", "--format", "jsonl"});
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<json> out;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      const auto j = json::parse(line, nullptr, false);
      if (j.is_object() && j.value("type", "") == type) out.push_back(j);
    }
    return out;
  }

  std::string op_dir_;
  std::string issuer_;
  testing::Process stub_;
};

// US6-2 and FR-005: the whole flow against the real provider. The start answers 302 with state,
// nonce and an S256 challenge, the callback from the same browser signs in (a new account with
// consent, its address verified by the provider), and a later sign-in reaches the same account
// through its link. ledgerctl verify is green afterwards.
TEST_F(OAuth, FullFlowWithTheRealProviderSignsInAndLinksUS6_2) {
  serve();
  const auto b = begin("consent=true");
  ASSERT_EQ(b.reply.status, 302u) << b.reply.body << log();
  EXPECT_TRUE(b.location.starts_with(issuer_ + "/auth?")) << b.location;
  EXPECT_EQ(param_of(b.location, "code_challenge_method"), "S256");
  EXPECT_EQ(param_of(b.location, "code_challenge").size(), 43u);
  EXPECT_GE(param_of(b.location, "state").size(), 43u) << "at least 256 bits of state";
  EXPECT_FALSE(param_of(b.location, "nonce").empty());
  EXPECT_EQ(param_of(b.location, "client_id"), kClient);
  ASSERT_FALSE(b.cookie.empty());
  bool host_only = false;
  for (const auto& c : b.reply.set_cookies) {
    if (c.starts_with("__Host-oauth=")) {
      host_only = c.find("Secure") != std::string::npos &&
                  c.find("HttpOnly") != std::string::npos &&
                  c.find("SameSite=Lax") != std::string::npos &&
                  c.find("Path=/") != std::string::npos && c.find("Domain") == std::string::npos;
    }
  }
  EXPECT_TRUE(host_only) << "the binding cookie is __Host-, Secure, HttpOnly, SameSite=Lax";
  EXPECT_EQ(b.cookie.find(param_of(b.location, "state")), std::string::npos)
      << "the cookie holds a keyed hash, never the state itself";

  const auto in = callback(authorize(b, "alice"), b.cookie);
  ASSERT_EQ(in.status, 200u) << in.body << log();
  EXPECT_EQ(data_of(in)["tokenType"], "Bearer");
  const auto profile = me(in);
  EXPECT_EQ(profile["email"], "alice@example.test");
  EXPECT_EQ(profile["emailVerified"], true);
  const auto user = profile["userId"].get<std::string>();

  const auto again = sign_in("alice", "");  // no consent needed once the account exists
  ASSERT_EQ(again.status, 200u) << again.body;
  EXPECT_EQ(me(again)["userId"], user);
  const auto links = call(http::verb::get, "/v1/me/links", nullptr, data_of(again)["accessToken"]);
  ASSERT_EQ(links.status, 200u) << links.body;
  ASSERT_EQ(data_of(links)["links"].size(), 1u);
  EXPECT_EQ(data_of(links)["links"][0]["provider"], "test");

  const auto admin = admin_token();
  EXPECT_EQ(audit_count(admin, user, "OAuthLoginCompleted"), 2u);
  EXPECT_EQ(audit_count(admin, user, "OAuthAccountLinked"), 1u);
  EXPECT_EQ(audit_count(admin, user, "LoginSucceeded"), 2u);
  ASSERT_EQ(stop(), 0);
  EXPECT_EQ(exported("OAuthLoginStarted").size(), 2u);
  EXPECT_EQ(exported("OAuthStateUsed").size(), 2u);
  const auto verified = ctl({"verify"});
  EXPECT_EQ(verified.code, 0) << verified.out << verified.err;
}

// US6-1 and FR-006: an attacker begins a sign-in, signs in at the provider as themselves and
// sends the callback link to a victim. The victim's browser has no binding cookie, or the
// cookie of its own sign-in: refused with state_mismatch and a way to start again, no session.
TEST_F(OAuth, CallbackCompletedInAnotherBrowserIsRefusedUS6_1) {
  serve();
  const auto attacker = begin();
  const auto lure = authorize(attacker, "mallory");
  const auto victim = begin();  // the victim's own sign-in, in its own browser

  for (const auto& jar : {std::string(), victim.cookie, std::string("__Host-oauth=forged")}) {
    const auto r = callback(lure, jar);
    ASSERT_EQ(r.status, 400u) << r.body;
    EXPECT_EQ(error_of(r)["code"], "state_mismatch");
    EXPECT_EQ(error_of(r)["details"]["reason"], "cookie_mismatch");
    EXPECT_EQ(error_of(r)["details"]["startUrl"], "/v1/auth/oauth/test/start");
    EXPECT_TRUE(data_of(r).is_null());
  }
  ASSERT_EQ(stop(), 0);
  EXPECT_EQ(exported("OAuthLoginCompleted").size(), 0u) << "nobody was signed in";
  const auto refused = exported("OAuthLoginRefused");
  ASSERT_EQ(refused.size(), 3u) << "every refusal is chained";
  EXPECT_NE(refused[0].dump().find("cookie_mismatch"), std::string::npos) << refused[0];
}

// US6-3 and FR-008: a state is consumed by its first callback, so the same callback again is
// refused (state_used), and the code replayed under a fresh sign-in of the same browser is
// refused by the provider (used, and its PKCE challenge belongs to the other state).
TEST_F(OAuth, ReplayedStateAndReplayedCodeAreRefusedUS6_3) {
  serve();
  const auto b = begin();
  const auto redirect = authorize(b, "alice");
  ASSERT_EQ(callback(redirect, b.cookie).status, 200u);

  const auto replay = callback(redirect, b.cookie);
  ASSERT_EQ(replay.status, 400u) << replay.body;
  EXPECT_EQ(error_of(replay)["details"]["reason"], "state_used");

  const auto fresh = begin();
  const auto code = param_of(redirect, "code");
  const auto injected = get(
      "/v1/auth/oauth/test/callback?code=" + code + "&state=" + param_of(fresh.location, "state"),
      fresh.cookie);
  ASSERT_EQ(injected.status, 401u) << injected.body;
  EXPECT_EQ(error_of(injected)["code"], "oauth_failed");
  EXPECT_EQ(error_of(injected)["details"]["reason"], "invalid_grant");

  // Two callbacks of one state racing: exactly one signs in.
  const auto raced = begin();
  const auto raced_redirect = authorize(raced, "alice");
  testing::HttpReply first, second;
  std::thread t([&] { first = callback(raced_redirect, raced.cookie); });
  second = callback(raced_redirect, raced.cookie);
  t.join();
  EXPECT_EQ((first.status == 200u) + (second.status == 200u), 1)
      << first.status << " " << second.status;
}

// FR-007: a state past its lifetime (here --oauth-state-seconds 1) is refused as expired.
TEST_F(OAuth, ExpiredStateIsRefusedFR007) {
  serve({"--oauth-state-seconds", "1"});
  const auto b = begin();
  const auto redirect = authorize(b, "alice");
  std::this_thread::sleep_for(1200ms);
  const auto r = callback(redirect, b.cookie);
  ASSERT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(error_of(r)["details"]["reason"], "state_expired");
}

// US6-4 and the ID token checks: forged tokens from the stub provider are refused with their
// reason (nonce, audience, issuer, expiry, signature, alg none, HMAC key confusion); the stub's
// valid token (the control) signs in, so each refusal is for the forgery alone.
TEST_F(OAuth, ForgedIdTokensAreRefusedWithTheirReason) {
  serve();
  const std::vector<std::pair<std::string, std::string>> forgeries = {
      {"wrong-nonce", "wrong_nonce"}, {"wrong-aud", "wrong_audience"},
      {"wrong-iss", "wrong_issuer"},  {"expired", "expired"},
      {"bad-sig", "bad_signature"},   {"alg-none", "alg_not_allowed"},
      {"hs256", "alg_not_allowed"}};
  for (const auto& [mode, reason] : forgeries) {
    const auto b = begin("consent=true", "stub");
    ASSERT_EQ(b.reply.status, 302u) << b.reply.body << log();
    const auto r = get("/v1/auth/oauth/stub/callback?state=" + param_of(b.location, "state") +
                           "&code=" + mode + "." + param_of(b.location, "nonce"),
                       b.cookie);
    EXPECT_EQ(r.status, 401u) << mode << ": " << r.body;
    EXPECT_EQ(error_of(r)["details"]["reason"], reason) << mode;
  }
  const auto b = begin("consent=true", "stub");
  const auto ok = get("/v1/auth/oauth/stub/callback?state=" + param_of(b.location, "state") +
                          "&code=ok." + param_of(b.location, "nonce"),
                      b.cookie);
  ASSERT_EQ(ok.status, 200u) << ok.body << log();
  EXPECT_EQ(me(ok)["email"], "stub.user@example.test");
}

// The provider rotates its key: an ID token under a kid the cached JWKS lacks refetches it at
// once and signs in; another unknown kid within the minute is refused without a refetch, so
// forged kids cannot make ledgerd hammer the provider.
TEST_F(OAuth, ARotatedProviderKeyIsFetchedOnItsFirstUnknownKidAtMostOnceAMinute) {
  serve();
  const auto jwks_fetches = [&] {
    std::ifstream in(op_dir_ + "/jwks-count");
    int n = 0;
    in >> n;
    return n;
  };
  const auto sign_in_stub = [&](const std::string& mode) {
    const auto b = begin("consent=true", "stub");
    return get("/v1/auth/oauth/stub/callback?state=" + param_of(b.location, "state") +
                   "&code=" + mode + "." + param_of(b.location, "nonce"),
               b.cookie);
  };
  ASSERT_EQ(sign_in_stub("ok").status, 200u) << log();
  EXPECT_EQ(jwks_fetches(), 1);
  ASSERT_EQ(sign_in_stub("ok").status, 200u);
  EXPECT_EQ(jwks_fetches(), 1) << "cached";
  const auto rotated = sign_in_stub("rotate");
  ASSERT_EQ(rotated.status, 200u) << rotated.body;
  EXPECT_EQ(jwks_fetches(), 2) << "refetched for the new kid";
  const auto unknown = sign_in_stub("unknown-kid");
  ASSERT_EQ(unknown.status, 401u) << unknown.body;
  EXPECT_EQ(error_of(unknown)["details"]["reason"], "unknown_kid");
  const auto again = sign_in_stub("rotate");
  EXPECT_EQ(again.status, 401u) << "a second rotation within the minute waits";
  EXPECT_EQ(jwks_fetches(), 2);
}

// Account linking: an existing verified account is linked through the provider-verified
// address (audited); an unverified local account is never linked silently (pre-account
// takeover); an address the provider did not verify signs nobody in; without consent no
// account is created. The provider's own refusal (access denied) is a clear 401.
TEST_F(OAuth, AccountsAreLinkedOnlyThroughVerifiedAddresses) {
  serve();
  const auto dave = verified("dave@example.test");
  ASSERT_FALSE(dave.empty());
  const auto linked = sign_in("dave");
  ASSERT_EQ(linked.status, 200u) << linked.body;
  EXPECT_EQ(me(linked)["userId"], dave);
  EXPECT_EQ(audit_count(admin_token(), dave, "OAuthAccountLinked"), 1u);

  // Carol's address was registered by someone else, never verified.
  ASSERT_EQ(post("/v1/auth/register",
                 {{"email", "carol@example.test"}, {"password", kPassword}, {"consent", true}})
                .status,
            201u);
  const auto squatted = sign_in("carol");
  ASSERT_EQ(squatted.status, 409u) << squatted.body;
  EXPECT_EQ(error_of(squatted)["code"], "account_exists");

  const auto unverified = sign_in("bob");
  ASSERT_EQ(unverified.status, 403u) << unverified.body;
  EXPECT_EQ(error_of(unverified)["code"], "email_not_verified");

  const auto no_consent = sign_in("alice", "");
  ASSERT_EQ(no_consent.status, 403u) << no_consent.body;
  EXPECT_EQ(error_of(no_consent)["code"], "consent_required");
  EXPECT_EQ(error_of(no_consent)["details"]["startUrl"], "/v1/auth/oauth/test/start?consent=true");

  const auto b = begin();
  const auto denied =
      callback("x?error=access_denied&state=" + param_of(b.location, "state"), b.cookie);
  ASSERT_EQ(denied.status, 401u) << denied.body;
  EXPECT_EQ(error_of(denied)["details"]["reason"], "provider_access_denied");
}

// Unlinking from /v1/me: allowed while a password remains, refused for an account whose only
// way in is the provider; unknown providers answer 404 on every route.
TEST_F(OAuth, UnlinkKeepsAWayInAndUnknownProvidersAre404) {
  serve();
  const auto dave = verified("dave@example.test");
  const auto linked = sign_in("dave");
  ASSERT_EQ(linked.status, 200u) << linked.body;
  const auto token = data_of(linked)["accessToken"].get<std::string>();
  EXPECT_EQ(call(http::verb::delete_, "/v1/me/links/test", nullptr, token).status, 204u);
  EXPECT_EQ(call(http::verb::delete_, "/v1/me/links/test", nullptr, token).status, 404u);

  const auto created = sign_in("alice");
  ASSERT_EQ(created.status, 200u) << created.body;
  const auto only =
      call(http::verb::delete_, "/v1/me/links/test", nullptr, data_of(created)["accessToken"]);
  ASSERT_EQ(only.status, 409u) << only.body;
  EXPECT_EQ(error_of(only)["code"], "last_sign_in_method");

  EXPECT_EQ(get("/v1/auth/oauth/nope/start").status, 404u);
  EXPECT_EQ(get("/v1/auth/oauth/nope/callback?code=a&state=b").status, 404u);
}

}  // namespace
}  // namespace sechex::api
