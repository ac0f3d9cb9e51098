// Payments end to end against a real ledgerd (API.md "Payments", issue 15; spec 003 US5
// isolation FR-001/002, the "duplicate notification" and "session expires mid-payment" edge
// cases, US7-3 CSRF on payment forms): creation with idempotency (also 50 requests at once with
// one key), reads that never reach another user's rows, signed provider webhooks (signed by the
// reference `standardwebhooks` library, deduplicated across a restart) and their transitions.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <set>

#include "api/crypto/jose.h"
#include "api/crypto/token_settings.h"
#include "api/crypto/webhook_signature.h"
#include "api/net/http_client.h"
#include "ledger/clock.h"
#include "support/ledgerd_fixture.h"
#include "support/test_util.h"

namespace sechex::testing {
namespace {

namespace http = boost::beast::http;
using namespace std::chrono_literals;

constexpr const char* kWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

class Payments : public LedgerdHttpTest {
 protected:
  // ledgerd with the provider's webhook secret in a 0600 file.
  void start_with_webhooks(std::vector<std::string> extra = {}) {
    const auto file = dir_.sub("webhook-secret");
    {
      std::ofstream out(file);
      out << kWebhookSecret << "\n";
    }
    ::chmod(file.c_str(), 0600);
    extra.insert(extra.end(), {"--payment-webhook-secret-file", file});
    start(extra);
  }

  HttpReply pay(const std::string& token, const std::string& key, const json& body,
                Headers extra = {}) {
    if (!key.empty()) extra.emplace_back("Idempotency-Key", key);
    extra.emplace_back("X-Forwarded-For", "198.51.100.7");
    return http_call_with(port_, http::verb::post, "/v1/payments", extra, token, body.dump(), 30s);
  }
  HttpReply get(const std::string& token, const std::string& target) {
    return call(http::verb::get, target, nullptr, token);
  }

  // The reference library's signature of `body` (tests/support/standardwebhooks_oracle.py).
  std::string reference_signature(const std::string& id, std::int64_t ts, const std::string& body) {
    const auto* python = std::getenv("SECHEX_PYTHON");
    if (python == nullptr) return "";
    const auto file = dir_.sub("body-" + id);
    std::ofstream(file) << body;
    const auto r =
        run({python, std::string(SECHEX_SOURCE_DIR) + "/tests/support/standardwebhooks_oracle.py",
             "sign", kWebhookSecret, id, std::to_string(ts), file});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out.empty() ? "" : r.out.substr(0, r.out.size() - 1);
  }
  static std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  // A provider delivery signed by the reference library (now, unless `ts` is given).
  HttpReply deliver(const std::string& id, const std::string& type, const std::string& payment,
                    std::optional<std::int64_t> ts = std::nullopt, std::string signature = "") {
    const auto when = ts.value_or(now_seconds());
    const auto body = json{{"type", type}, {"data", {{"paymentId", payment}}}}.dump();
    if (signature.empty()) signature = reference_signature(id, when, body);
    return http_call_with(port_, http::verb::post, "/v1/webhooks/payments",
                          {{"webhook-id", id},
                           {"webhook-timestamp", std::to_string(when)},
                           {"webhook-signature", signature}},
                          "", body, 30s);
  }
  void require_python() {
    if (std::getenv("SECHEX_PYTHON") == nullptr) {
      GTEST_SKIP() << "SECHEX_PYTHON (ops/pyenv/setup's venv with standardwebhooks) is not set; "
                      "ops/test sets it";
    }
  }
};

const nlohmann::json kOrder = {{"amount", 1999},
                               {"currency", "EUR"},
                               {"description", "Order 42"},
                               {"metadata", {{"order", "42"}, {"lines", {{"sku", "A-1"}}}}}};

// 003 US5-1..4 (FR-001/002): a payment is its creator's alone; another user's id answers exactly
// like a missing one, lists never mix, and nothing is readable without a session.
TEST_F(Payments, APaymentIsVisibleToItsOwnerOnlyAndAnotherUsersIdReadsLikeAMissingOneUS5) {
  start();
  ASSERT_FALSE(verified("alice@example.com").empty());
  ASSERT_FALSE(verified("bob@example.com").empty());
  const auto alice = access_token("alice@example.com");
  const auto bob = access_token("bob@example.com");

  const auto made = pay(alice, "order-42", kOrder);
  ASSERT_EQ(made.status, 201u) << made.body;
  const auto p = data_of(made);
  const std::string id = p["id"];
  EXPECT_EQ(p["amount"], 1999);
  EXPECT_EQ(p["currency"], "EUR");
  EXPECT_EQ(p["description"], "Order 42");
  EXPECT_EQ(p["metadata"]["lines"]["sku"], "A-1");
  EXPECT_EQ(p["status"], "pending");
  EXPECT_FALSE(p["createdAt"].get<std::string>().empty());

  const auto mine = get(alice, "/v1/payments/" + id);
  ASSERT_EQ(mine.status, 200u) << mine.body;
  EXPECT_EQ(data_of(mine)["history"].size(), 1u);
  EXPECT_EQ(data_of(mine)["history"][0]["status"], "pending");

  const auto theirs = get(bob, "/v1/payments/" + id);
  const auto missing = get(bob, "/v1/payments/pay_doesnotexist");
  EXPECT_EQ(theirs.status, 404u);
  EXPECT_EQ(missing.status, 404u);
  EXPECT_EQ(error_of(theirs), error_of(missing)) << "the same answer, so nothing leaks";
  EXPECT_EQ(data_of(get(bob, "/v1/payments"))["payments"].size(), 0u);
  EXPECT_EQ(data_of(get(alice, "/v1/payments"))["payments"].size(), 1u);
  // Bob's use of the same key is Bob's own payment, never Alice's.
  const auto bobs = pay(bob, "order-42", kOrder);
  ASSERT_EQ(bobs.status, 201u) << bobs.body;
  EXPECT_NE(data_of(bobs)["id"], id);

  for (const auto& target : {std::string("/v1/payments"), "/v1/payments/" + id}) {
    EXPECT_EQ(get("", target).status, 401u) << target;
  }
  EXPECT_EQ(pay("", "k", kOrder).status, 401u);
  EXPECT_EQ(pay("not-a-token", "k", kOrder).status, 401u);
}

TEST_F(Payments, EachMalformedPaymentIsRefusedWithItsReasonAndCreatesNothing) {
  start();
  ASSERT_FALSE(verified("carol@example.com").empty());
  const auto carol = access_token("carol@example.com");
  const auto no_key = pay(carol, "", kOrder);
  EXPECT_EQ(no_key.status, 400u);
  EXPECT_EQ(error_of(no_key)["code"], "idempotency_key_required");
  const auto twice = pay(carol, "a", kOrder, {{"Idempotency-Key", "b"}});
  EXPECT_EQ(twice.status, 400u);
  EXPECT_EQ(error_of(twice)["details"]["reason"], "repeated_header");
  EXPECT_EQ(error_of(pay(carol, std::string(256, 'k'), kOrder))["details"]["reason"],
            "invalid_idempotency_key");
  const std::vector<std::pair<nlohmann::json, std::string>> cases = {
      {{{"amount", 10.5}, {"currency", "EUR"}}, "invalid_amount"},
      {{{"amount", 10.0}, {"currency", "EUR"}}, "invalid_amount"},
      {{{"amount", 0}, {"currency", "EUR"}}, "invalid_amount"},
      {{{"amount", -5}, {"currency", "EUR"}}, "invalid_amount"},
      {{{"amount", 9007199254740992LL}, {"currency", "EUR"}}, "invalid_amount"},
      {{{"amount", "100"}, {"currency", "EUR"}}, "invalid_amount"},
      {{{"currency", "EUR"}}, "missing_field"},
      {{{"amount", 100}, {"currency", "eur"}}, "unknown_currency"},
      {{{"amount", 100}, {"currency", "XAU"}}, "unknown_currency"},
      {{{"amount", 100}}, "missing_field"},
      {{{"amount", 100}, {"currency", "EUR"}, {"payee", "x"}}, "unknown_field"},
      {{{"amount", 100}, {"currency", "EUR"}, {"description", 5}}, "wrong_type"},
      {{{"amount", 100}, {"currency", "EUR"}, {"metadata", "x"}}, "wrong_type"},
      {{{"amount", 100}, {"currency", "EUR"}, {"metadata", {{"a", {{"b", {{"c", 1}}}}}}}},
       "too_deep"},
      {{{"amount", 100}, {"currency", "EUR"}, {"metadata", {{"__proto__", 1}}}}, "forbidden_key"},
  };
  int n = 0;
  for (const auto& [body, reason] : cases) {
    const auto r = pay(carol, "bad-" + std::to_string(n++), body);
    EXPECT_EQ(r.status, 400u) << body.dump();
    EXPECT_EQ(error_of(r)["details"]["reason"], reason) << body.dump() << " " << r.body;
  }
  const auto dup =
      http_call_with(port_, http::verb::post, "/v1/payments", {{"Idempotency-Key", "dup"}}, carol,
                     R"({"amount": 1, "amount": 2, "currency": "EUR"})", 30s);
  EXPECT_EQ(error_of(dup)["details"]["reason"], "duplicate_key");
  EXPECT_EQ(data_of(get(carol, "/v1/payments"))["payments"].size(), 0u);
  // Hostile query parameters are refused with their reason, bytes that are not UTF-8 included.
  for (const auto* q : {"?%FF=1", "?status=%FF", "?limit=0", "?limit=101", "?cursor=zz",
                        "?status=pending&status=failed", "?nope=1"}) {
    const auto r = get(carol, std::string("/v1/payments") + q);
    EXPECT_EQ(r.status, 400u) << q << " " << r.body;
    EXPECT_EQ(error_of(r)["code"], "invalid_request") << q;
  }
  // JPY has no minor unit, KWD three: both are currencies.
  EXPECT_EQ(pay(carol, "yen", {{"amount", 500}, {"currency", "JPY"}}).status, 201u);
  EXPECT_EQ(pay(carol, "dinar", {{"amount", 1500}, {"currency", "KWD"}}).status, 201u);
}

// API.md: "Email must be verified". Sign-in refuses an unverified address, so the test signs the
// pending user's token itself with the data directory's key ring, as ledgerd would.
TEST_F(Payments, AnUnverifiedAddressCannotPayAndIsToldHowToVerify) {
  start();
  const auto reg =
      post("/v1/auth/register",
           {{"email", "dana@example.com"}, {"password", kPassword}, {"consent", true}});
  ASSERT_EQ(reg.status, 201u) << reg.body;
  const api::TokenSettings settings;
  auto ring = api::jose::KeyRing::load_or_create(api::jwt_keys_dir(data()), SystemClock::instance(),
                                                 settings.ring_options());
  ASSERT_TRUE(ring) << ring.error().message();
  const api::jose::TokenIssuer issuer(*ring.value(), SystemClock::instance(),
                                      settings.issuer_config());
  const auto issued =
      issuer.issue({data_of(reg)["userId"], "sess-pending", {}}, std::chrono::seconds(600));
  ASSERT_TRUE(issued);
  const auto r = pay(issued.value().token, "k-unverified", kOrder);
  EXPECT_EQ(r.status, 403u) << r.body;
  EXPECT_EQ(error_of(r)["code"], "email_not_verified");
  EXPECT_EQ(error_of(r)["details"]["resendUrl"], "/v1/auth/verify-email/resend");
}

// API.md idempotency: the same key and body (spelled differently) is the same payment, 200 with
// Idempotent-Replayed; another body under the key is 422; 50 requests at once make one payment.
TEST_F(Payments, OneKeyMakesOnePaymentEvenFiftyAtOnceAndAnotherBodyIs422) {
  start();
  const auto user = verified("erin@example.com");
  ASSERT_FALSE(user.empty());
  const auto erin = access_token("erin@example.com");
  const auto first = pay(erin, "k-1", kOrder);
  ASSERT_EQ(first.status, 201u) << first.body;
  EXPECT_EQ(header(first, "idempotent-replayed"), "");
  // The same fields in another order and spacing: the same request.
  const auto again = http_call_with(
      port_, http::verb::post, "/v1/payments", {{"Idempotency-Key", "k-1"}}, erin,
      R"({ "metadata": {"lines": {"sku": "A-1"}, "order": "42"}, "description": "Order 42",
           "currency": "EUR", "amount": 1999 })",
      30s);
  ASSERT_EQ(again.status, 200u) << again.body;
  EXPECT_EQ(header(again, "idempotent-replayed"), "true");
  EXPECT_EQ(data_of(again)["id"], data_of(first)["id"]);
  auto other = kOrder;
  other["amount"] = 2000;
  const auto reused = pay(erin, "k-1", other);
  EXPECT_EQ(reused.status, 422u);
  EXPECT_EQ(error_of(reused)["code"], "idempotency_key_reused");

  std::vector<std::future<HttpReply>> racing;
  for (int i = 0; i < 50; ++i) {
    racing.push_back(std::async(std::launch::async, [&] { return pay(erin, "k-race", kOrder); }));
  }
  std::set<std::string> ids;
  int created = 0, replayed = 0;
  for (auto& f : racing) {
    const auto r = f.get();
    ASSERT_TRUE(r.status == 201u || r.status == 200u) << r.status << " " << r.body;
    (r.status == 201u ? created : replayed)++;
    ids.insert(data_of(r)["id"].get<std::string>());
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(replayed, 49);
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(data_of(get(erin, "/v1/payments"))["payments"].size(), 2u);
  EXPECT_EQ(audit_count(admin_token(), user, "PaymentCreated"), 2u);
}

// 003 edge case "a user's session expires mid-payment": signed in again, the client retries with
// the same key and gets the payment that was made, never a second one.
TEST_F(Payments, ARetryAfterSigningInAgainGetsThePaymentAlreadyMadeNotASecondOne) {
  start();
  const auto user = verified("frank@example.com");
  ASSERT_FALSE(user.empty());
  const auto old_session = access_token("frank@example.com");
  const auto made = pay(old_session, "checkout-7", kOrder);
  ASSERT_EQ(made.status, 201u) << made.body;
  ASSERT_EQ(post("/v1/auth/logout", json::object(), old_session).status, 200u);
  EXPECT_EQ(pay(old_session, "checkout-7", kOrder).status, 401u) << "the old session is over";
  const auto new_session = access_token("frank@example.com");
  const auto retried = pay(new_session, "checkout-7", kOrder);
  ASSERT_EQ(retried.status, 200u) << retried.body;
  EXPECT_EQ(data_of(retried)["id"], data_of(made)["id"]);
  EXPECT_EQ(header(retried, "idempotent-replayed"), "true");
  EXPECT_EQ(audit_count(admin_token(), user, "PaymentCreated"), 1u);
}

// 003 US7-3: a payment form in a browser session needs the session's CSRF token.
TEST_F(Payments, ACookieSessionNeedsTheCsrfTokenToPayUS7) {
  start();
  ASSERT_FALSE(verified("gina@example.com").empty());
  const auto in = login("gina@example.com", kPassword);
  ASSERT_EQ(in.status, 200u);
  const std::string jar = "__Host-access=" + data_of(in)["accessToken"].get<std::string>();
  const auto no_token = pay("", "form-1", kOrder, {{"Cookie", jar}});
  EXPECT_EQ(no_token.status, 403u) << no_token.body;
  EXPECT_EQ(error_of(no_token)["code"], "csrf_rejected");
  const auto csrf = http_call_with(port_, http::verb::get, "/v1/auth/csrf", {{"Cookie", jar}});
  ASSERT_EQ(csrf.status, 200u) << csrf.body;
  const auto ok =
      pay("", "form-1", kOrder, {{"Cookie", jar}, {"X-CSRF-Token", data_of(csrf)["csrfToken"]}});
  EXPECT_EQ(ok.status, 201u) << ok.body;
}

// Incoming webhooks (API.md; 003 "duplicate notification"): signed by the reference library and
// verified here; a webhook-id seen before changes nothing, also after a restart; transitions
// outside pending -> succeeded | failed, succeeded -> refunded are 409 and record nothing, so the
// provider's retry of an early refund applies once the success has arrived.
TEST_F(Payments, SignedWebhooksMoveAPaymentOnceEachAndSurviveARestart) {
  require_python();
  start_with_webhooks();
  const auto user = verified("hana@example.com");
  ASSERT_FALSE(user.empty());
  const auto hana = access_token("hana@example.com");
  const std::string a = data_of(pay(hana, "a", kOrder))["id"];
  const std::string b = data_of(pay(hana, "b", kOrder))["id"];

  const auto early_refund = deliver("msg_refund_b", "payment.refunded", b);
  EXPECT_EQ(early_refund.status, 409u) << early_refund.body;
  EXPECT_EQ(error_of(early_refund)["code"], "invalid_transition");

  const auto ok = deliver("msg_ok_a", "payment.succeeded", a);
  ASSERT_EQ(ok.status, 200u) << ok.body;
  EXPECT_EQ(data_of(ok)["applied"], true);
  const auto dup = deliver("msg_ok_a", "payment.succeeded", a);
  ASSERT_EQ(dup.status, 200u) << dup.body;
  EXPECT_EQ(data_of(dup)["duplicate"], true);

  ASSERT_EQ(deliver("msg_ok_b", "payment.succeeded", b).status, 200u);
  const auto retried_refund = deliver("msg_refund_b", "payment.refunded", b);
  EXPECT_EQ(retried_refund.status, 200u) << retried_refund.body;
  const auto refunded = data_of(get(hana, "/v1/payments/" + b));
  EXPECT_EQ(refunded["status"], "refunded");
  ASSERT_EQ(refunded["history"].size(), 3u);
  EXPECT_EQ(refunded["history"][1]["status"], "succeeded");
  EXPECT_EQ(refunded["history"][2]["status"], "refunded");

  EXPECT_EQ(deliver("msg_fail_a", "payment.failed", a).status, 409u) << "a is already final";
  EXPECT_EQ(deliver("msg_x", "payment.succeeded", "pay_unknown").status, 404u);
  const auto stale = deliver("msg_stale", "payment.succeeded", a, now_seconds() - 301);
  EXPECT_EQ(stale.status, 401u);
  EXPECT_EQ(error_of(stale)["details"]["reason"], "stale_timestamp");
  const auto forged = deliver("msg_forged", "payment.failed", b, std::nullopt,
                              "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  EXPECT_EQ(forged.status, 401u);
  EXPECT_EQ(error_of(forged)["code"], "invalid_signature");
  EXPECT_EQ(error_of(forged)["details"]["reason"], "no_valid_signature");
  const auto unsigned_delivery = http_call_with(port_, http::verb::post, "/v1/webhooks/payments",
                                                {}, "", R"({"type":"payment.failed"})", 30s);
  EXPECT_EQ(error_of(unsigned_delivery)["details"]["reason"], "missing_header");
  const auto admin = admin_token();
  EXPECT_EQ(audit_count(admin, user, "WebhookReceived"), 3u);
  EXPECT_EQ(audit_count(admin, user, "PaymentStatusChanged"), 3u);

  ASSERT_EQ(stop(), 0);
  start_with_webhooks();
  const auto after = deliver("msg_ok_a", "payment.succeeded", a);
  ASSERT_EQ(after.status, 200u) << after.body;
  EXPECT_EQ(data_of(after)["duplicate"], true) << "the dedupe set is a projection of the chain";
  const auto hana2 = access_token("hana@example.com");
  EXPECT_EQ(data_of(get(hana2, "/v1/payments?status=refunded"))["payments"].size(), 1u);
  EXPECT_EQ(data_of(get(hana2, "/v1/payments?status=succeeded"))["payments"].size(), 1u);
  ASSERT_EQ(stop(), 0);
  const auto verify = ctl({"verify"});
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;
}

// Our signatures verify with the reference library (the other direction of the interop).
TEST_F(Payments, TheReferenceLibraryVerifiesOurSignatures) {
  require_python();
  const auto secret = api::webhooks::Secret::parse(kWebhookSecret).value();
  const auto ts = now_seconds();
  const std::string body = R"({"type":"payment.succeeded","data":{"paymentId":"pay_1"}})";
  const auto ours = api::webhooks::sign(secret, "msg_ours", ts, body).value();
  const auto file = dir_.sub("ours.json");
  std::ofstream(file) << body;
  const auto oracle = std::string(SECHEX_SOURCE_DIR) + "/tests/support/standardwebhooks_oracle.py";
  const auto* python = std::getenv("SECHEX_PYTHON");
  const auto good =
      run({python, oracle, "verify", kWebhookSecret, "msg_ours", std::to_string(ts), file, ours});
  EXPECT_EQ(good.code, 0) << good.err;
  const auto bad =
      run({python, oracle, "verify", kWebhookSecret, "msg_other", std::to_string(ts), file, ours});
  EXPECT_EQ(bad.code, 1) << "the oracle must be able to say no";
}

TEST_F(Payments, WebhooksWithoutAConfiguredSecretAnswer503AndALooseSecretFileStopsTheStart) {
  start();
  const auto r = http_call_with(
      port_, http::verb::post, "/v1/webhooks/payments",
      {{"webhook-id", "m"}, {"webhook-timestamp", "1"}, {"webhook-signature", "v1,x"}}, "", "{}",
      30s);
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(error_of(r)["details"]["reason"], "not_configured");
  ASSERT_EQ(stop(), 0);
  const auto file = dir_.sub("loose-secret");
  std::ofstream(file) << kWebhookSecret << "\n";
  ::chmod(file.c_str(), 0644);
  const auto refused = run({SECHEX_LEDGERD, "--data-dir", data(), "--listen", "127.0.0.1:0",
                            "--payment-webhook-secret-file", file});
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.err.find("chmod 600"), std::string::npos) << refused.err;
}

// 003 FR-040: the cleanup of expired data (idempotency keys and webhook ids among it) runs once
// the projections caught up, then on --cleanup-interval, each run saying what it removed.
TEST_F(Payments, TheCleanupRunsAfterStartThenOnItsIntervalAndLogsWhatItRemovedFR040) {
  start({"--cleanup-interval", "1"});
  const auto runs = [&] {
    const auto text = log();
    std::size_t n = 0;
    for (auto at = text.find("cleanup removed"); at != std::string::npos;
         at = text.find("cleanup removed", at + 1)) {
      ++n;
    }
    return n;
  };
  for (int i = 0; i < 100 && runs() < 2; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_GE(runs(), 2u) << log();
  EXPECT_NE(log().find("expired entries; next in 1 s"), std::string::npos) << log();
  ASSERT_EQ(stop(), 0);
  start();
  for (int i = 0; i < 100 && runs() < 1; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_NE(log().find("next in 604800 s"), std::string::npos) << "weekly by default\n" << log();
}

// ---- Webhooks out ----

// A receiver (tests/support/webhook_receiver.py) that answers as its plan file says and checks
// every request with the reference standardwebhooks library.
class Receiver {
 public:
  explicit Receiver(TempDir& dir) : dir_(dir.sub("receiver")) {
    std::filesystem::create_directories(dir_);
    proc_ = spawn({std::getenv("SECHEX_PYTHON"),
                   std::string(SECHEX_SOURCE_DIR) + "/tests/support/webhook_receiver.py", dir_},
                  dir_ + "/err", {});
    port_ = wait_for_serving_port(proc_, std::chrono::seconds(15), "listening on");
  }
  ~Receiver() {
    if (proc_.pid > 0) {
      ::kill(proc_.pid, SIGKILL);
      wait_exit(proc_.pid);
    }
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hooks"; }
  std::uint16_t port() const { return port_; }
  void plan(const std::string& lines) { std::ofstream(dir_ + "/plan") << lines; }
  void secret(const std::string& s) { std::ofstream(dir_ + "/secret") << s; }
  std::vector<nlohmann::json> requests() const {
    std::vector<nlohmann::json> out;
    std::ifstream in(dir_ + "/requests.jsonl");
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object()) out.push_back(j);
    }
    return out;
  }

 private:
  std::string dir_;
  Process proc_;
  std::uint16_t port_ = 0;
};

class WebhooksOut : public Payments {
 protected:
  void start_out(std::vector<std::string> extra = {}) {
    extra.insert(extra.end(),
                 {"--webhook-allow-private-targets", "--admin-email", "ops@example.com"});
    start_with_webhooks(extra);
  }
  // Registers `url` for `events`; the secret is handed to `receiver`. The endpoint's id.
  std::string endpoint(Receiver& receiver, const std::vector<std::string>& events,
                       const std::string& admin) {
    const auto r =
        post("/v1/admin/webhooks/endpoints", {{"url", receiver.url()}, {"events", events}}, admin);
    EXPECT_EQ(r.status, 201u) << r.body;
    if (r.status != 201u) return "";
    receiver.secret(data_of(r)["secret"]);
    return data_of(r)["id"];
  }
  // The deliveries (admin list) once `done` holds for them, or after 60 s.
  nlohmann::json deliveries_when(const std::string& admin,
                                 const std::function<bool(const nlohmann::json&)>& done) {
    nlohmann::json list;
    for (int i = 0; i < 600; ++i) {
      const auto r = get(admin, "/v1/admin/webhooks/deliveries");
      list = data_of(r)["deliveries"];
      if (done(list)) break;
      std::this_thread::sleep_for(100ms);
    }
    return list;
  }
  static bool all_in(const nlohmann::json& list, const std::string& state, std::size_t n) {
    if (list.size() != n) return false;
    for (const auto& d : list) {
      if (d["status"] != state) return false;
    }
    return true;
  }
};

// FR-038/041: a failing receiver gets the same webhook-id again after growing delays (honouring
// Retry-After) until it answers 2xx; every attempt verifies with the reference library.
TEST_F(WebhooksOut, ADeliveryIsRetriedWithTheSameIdUntilTheReceiverTakesItFR038FR041) {
  require_python();
  Receiver receiver(dir_);
  receiver.plan("503 1\n500\n200\n");
  start_out();
  const auto admin = admin_token();
  ASSERT_FALSE(endpoint(receiver, {"payment.created", "payment.succeeded"}, admin).empty());
  ASSERT_FALSE(verified("ivy@example.com").empty());
  const auto ivy = access_token("ivy@example.com");
  const auto made = pay(ivy, "w-1", kOrder);
  ASSERT_EQ(made.status, 201u) << made.body;
  const auto list = deliveries_when(admin, [](const auto& l) { return all_in(l, "delivered", 1); });
  ASSERT_EQ(list.size(), 1u) << list.dump();
  EXPECT_EQ(list[0]["status"], "delivered") << list.dump();
  EXPECT_EQ(list[0]["attempts"], 3);
  EXPECT_EQ(list[0]["type"], "payment.created");
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& r : requests) {
    EXPECT_EQ(r["id"], list[0]["id"]) << "the same webhook-id on every attempt";
    EXPECT_TRUE(r["signature_ok"].get<bool>()) << r.dump();
  }
  const auto body = nlohmann::json::parse(requests[0]["body"].get<std::string>());
  EXPECT_EQ(body["type"], "payment.created");
  EXPECT_EQ(body["data"]["paymentId"], data_of(made)["id"]);
  EXPECT_EQ(body["data"]["amount"], 1999);
  EXPECT_FALSE(body["data"].contains("description")) << "no personal data in notifications";
  // The first retry waited for Retry-After (1 s) at least.
  EXPECT_GE(std::stoll(requests[1]["timestamp"].get<std::string>()) -
                std::stoll(requests[0]["timestamp"].get<std::string>()),
            1);
}

// FR-039: after the last retry the delivery is failed in the database, audited, counted, logged
// and mailed to the admins; an admin's retry sends it again; 410 disables the endpoint.
TEST_F(WebhooksOut, AGivenUpDeliveryAlertsTheAdminsAndCanBeRetriedByHandFR039) {
  require_python();
  Receiver receiver(dir_);
  receiver.plan("500\n");
  start_out();
  const auto admin = admin_token();
  ASSERT_FALSE(endpoint(receiver, {"payment.succeeded"}, admin).empty());
  const auto user = verified("jack@example.com");
  ASSERT_FALSE(user.empty());
  const auto jack = access_token("jack@example.com");
  const std::string id = data_of(pay(jack, "w-2", kOrder))["id"];
  EXPECT_TRUE(receiver.requests().empty()) << "not subscribed to payment.created";
  ASSERT_EQ(deliver("msg_in_1", "payment.succeeded", id).status, 200u);
  auto list = deliveries_when(admin, [](const auto& l) { return all_in(l, "failed", 1); });
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["status"], "failed") << list.dump();
  EXPECT_EQ(list[0]["attempts"], 4) << "the first attempt and 3 retries";
  EXPECT_EQ(list[0]["lastStatusCode"], 500);
  const std::string delivery = list[0]["id"];
  const auto alert = mail_with("ops@example.com", "webhook:" + delivery);
  EXPECT_FALSE(alert.empty()) << "the admin alert mail";
  EXPECT_EQ(data_of(get(admin, "/v1/admin/webhooks/deliveries?status=failed"))["deliveries"].size(),
            1u);
  const auto failures = audit(admin, user, "WebhookDeliveryFailed");
  ASSERT_EQ(failures.size(), 4u);
  EXPECT_NE(metrics().find("sechex_webhook_deliveries_total{outcome=\"failed\"} 1"),
            std::string::npos);
  EXPECT_NE(log().find("given up after attempt 4: http 500"), std::string::npos) << log();

  receiver.plan("200\n");
  const auto retried =
      post("/v1/admin/webhooks/deliveries/" + delivery + "/retry", json::object(), admin);
  ASSERT_EQ(retried.status, 200u) << retried.body;
  list = deliveries_when(admin, [](const auto& l) { return all_in(l, "delivered", 1); });
  EXPECT_EQ(list[0]["status"], "delivered") << list.dump();
  EXPECT_EQ(list[0]["attempts"], 5);
  EXPECT_EQ(
      post("/v1/admin/webhooks/deliveries/" + delivery + "/retry", json::object(), admin).status,
      409u)
      << "only a failed delivery is retried";
  EXPECT_EQ(post("/v1/admin/webhooks/deliveries/msg_none/retry", json::object(), admin).status,
            404u);

  // 410 Gone: given up at once and the endpoint disabled; later changes are not queued for it.
  receiver.plan("410\n");
  const std::string other = data_of(pay(jack, "w-3", kOrder))["id"];
  ASSERT_EQ(deliver("msg_in_2", "payment.succeeded", other).status, 200u);
  list = deliveries_when(admin,
                         [](const auto& l) { return l.size() == 2 && l[0]["status"] == "failed"; });
  EXPECT_EQ(list[0]["attempts"], 1) << list.dump();
  nlohmann::json endpoints;
  for (int i = 0; i < 100; ++i) {
    endpoints = data_of(get(admin, "/v1/admin/webhooks/endpoints"))["endpoints"];
    if (endpoints.size() == 1 && endpoints[0]["enabled"] == false) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(endpoints[0]["enabled"], false) << endpoints.dump();
  EXPECT_FALSE(endpoints[0].contains("secret")) << "the secret is shown once";
  ASSERT_EQ(stop(), 0);
  const auto verify = ctl({"verify"});
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;
}

// Deliveries are driven from the chain: kill -9 between attempts loses nothing, and the
// delivery goes on after the restart with the same id.
TEST_F(WebhooksOut, ADeliveryPendingAcrossAKillNineGoesOnAfterTheRestart) {
  require_python();
  Receiver receiver(dir_);
  receiver.plan("503 6\n200\n");  // the retry is due in 6 s: the kill comes before it
  start_out();
  const auto admin = admin_token();
  ASSERT_FALSE(endpoint(receiver, {"payment.created"}, admin).empty());
  ASSERT_FALSE(verified("kim@example.com").empty());
  ASSERT_EQ(pay(access_token("kim@example.com"), "w-4", kOrder).status, 201u);
  for (int i = 0; i < 300 && receiver.requests().empty(); ++i) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(receiver.requests().size(), 1u);
  auto list =
      deliveries_when(admin, [](const auto& l) { return l.size() == 1 && l[0]["attempts"] == 1; });
  ASSERT_EQ(list[0]["status"], "pending") << list.dump();
  ::kill(proc_.pid, SIGKILL);
  wait_exit(proc_.pid);
  proc_.pid = -1;
  start_out();
  list = deliveries_when(admin_token(), [](const auto& l) { return all_in(l, "delivered", 1); });
  EXPECT_EQ(list[0]["status"], "delivered") << list.dump();
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0]["id"], requests[1]["id"]);
}

// A redirect is a failure, never followed to its Location; a huge answer is cut at 64 KiB and
// its 2xx still counts.
TEST_F(WebhooksOut, RedirectsAreNotFollowedAndHugeAnswersAreCut) {
  require_python();
  Receiver receiver(dir_);
  receiver.plan("302 location=/followed\n200 big\n");
  start_out();
  const auto admin = admin_token();
  ASSERT_FALSE(endpoint(receiver, {"payment.created"}, admin).empty());
  const auto user = verified("max@example.com");
  ASSERT_FALSE(user.empty());
  ASSERT_EQ(pay(access_token("max@example.com"), "w-6", kOrder).status, 201u);
  const auto list = deliveries_when(admin, [](const auto& l) { return all_in(l, "delivered", 1); });
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["status"], "delivered") << list.dump();
  EXPECT_EQ(list[0]["attempts"], 2);
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& r : requests) EXPECT_EQ(r["path"], "/hooks") << "never /followed";
  EXPECT_EQ(requests[0]["answered"], 302);
  EXPECT_EQ(audit(admin, user, "WebhookDeliveryFailed").size(), 1u) << "the 302 was a failure";
}

// The client itself: the answer is read up to its cap (64 KiB) and the 2xx kept; Retry-After
// is read; a redirect's Location is not visited.
TEST_F(WebhooksOut, TheClientCapsAnswersReadsRetryAfterAndVisitsNoLocation) {
  require_python();
  Receiver receiver(dir_);
  receiver.plan("200 big\n503 7\n307 location=/followed\n");
  api::net::ClientOptions options;
  options.allow_private_targets = true;
  const auto big = api::net::post(receiver.url(), {}, "{}", options);
  EXPECT_EQ(big.status, 200);
  EXPECT_EQ(big.body.size(), options.max_response_bytes);
  const auto busy = api::net::post(receiver.url(), {}, "{}", options);
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(busy.retry_after_seconds, 7);
  const auto moved = api::net::post(receiver.url(), {}, "{}", options);
  EXPECT_EQ(moved.status, 307);
  EXPECT_EQ(receiver.requests().size(), 3u);
}

// SSRF: endpoints are https:// unless --webhook-allow-private-targets, and a target that
// resolves to an internal address is refused when delivering (checked on the connected address).
TEST_F(WebhooksOut, InternalTargetsAreRefusedWithoutTheFlag) {
  start_with_webhooks();
  const auto admin = admin_token();
  const auto http =
      post("/v1/admin/webhooks/endpoints",
           {{"url", "http://hooks.example/x"}, {"events", {"payment.created"}}}, admin);
  EXPECT_EQ(http.status, 400u);
  EXPECT_EQ(error_of(http)["details"]["reason"], "invalid_url");
  for (const auto& bad : std::vector<nlohmann::json>{
           {{"url", "https://a.example/x"}, {"events", {"payment.exploded"}}},
           {{"url", "https://a.example/x"}, {"events", nlohmann::json::array()}},
           {{"url", "https://user:pw@a.example/x"}, {"events", {"payment.created"}}},
           {{"url", "https://a.example/x"}}}) {
    EXPECT_EQ(post("/v1/admin/webhooks/endpoints", bad, admin).status, 400u) << bad.dump();
  }
  ASSERT_FALSE(verified("lee@example.com").empty());
  const auto lee = access_token("lee@example.com");
  EXPECT_EQ(post("/v1/admin/webhooks/endpoints",
                 {{"url", "https://127.0.0.1:1/x"}, {"events", {"payment.created"}}}, lee)
                .status,
            403u)
      << "admins only";
  ASSERT_EQ(post("/v1/admin/webhooks/endpoints",
                 {{"url", "https://127.0.0.1:1/x"}, {"events", {"payment.created"}}}, admin)
                .status,
            201u);
  ASSERT_EQ(pay(lee, "w-5", kOrder).status, 201u);
  const auto list = deliveries_when(admin, [](const auto& l) { return all_in(l, "failed", 1); });
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["lastError"], "private_target") << list.dump();
  EXPECT_EQ(list[0]["attempts"], 1) << "a refused target is final at once";
}

}  // namespace
}  // namespace sechex::testing
