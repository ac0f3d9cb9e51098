// The mail worker against a real SMTP server (aiosmtpd on loopback, started with ops/smtp/start
// into a temporary directory): mails arrive once with their Message-ID and carry the code or link
// the flow needs (API.md "Identity"), a server refusing with 451 is retried with backoff and the
// mail delivered once (spec 003 FR-038, FR-041), a server refusing every time ends in a final
// MailDeliveryFailed, the failed flag and the alert hook (FR-039), an erased subject's mail is
// never sent, and a restarted worker does not send a delivered mail again.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "api/mail/mail.h"
#include "mail_support.h"
#include "support/process.h"
#include "support/smtp_server.h"

namespace sechex::api {
namespace {

using testing::body_lines;
using testing::header;
using testing::line_with;
using testing::MailWorld;

constexpr auto kDeadline = std::chrono::seconds(60);

using sechex::testing::SmtpServer;

template <typename Pred>
bool wait_until(Pred&& done) {
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

class MailSmtpTest : public ::testing::Test {
 protected:
  MailSmtpTest() : w_(&SystemClock::instance()), server_(w_.dir.sub("smtp")) {}

  void SetUp() override { ASSERT_EQ(server_.start_error(), ""); }

  MailerConfig config() const {
    MailerConfig c;
    c.smtp_url = server_.url();
    c.require_tls = false;  // the loopback test server offers no STARTTLS
    c.backoff_base = std::chrono::milliseconds(20);
    c.timeout = std::chrono::seconds(20);
    c.public_url = "https://id.example.com";
    return c;
  }
  std::unique_ptr<MailWorker> worker() {
    return std::make_unique<MailWorker>(
        *w_.commands, *w_.keys, config(), w_.clock,
        MailWorkerHooks{.on_sent = [this](std::string_view t) { sent_.emplace_back(t); },
                        .on_final_failure = [this](std::string_view k) { alerts_.emplace_back(k); },
                        .log =
                            [this](const std::string& l) {
                              std::lock_guard lock(mu_);
                              log_.push_back(l);
                            }});
  }
  std::string state_of(const std::string& id) {
    const auto s = w_.state(id);
    return s ? s->state : "absent";
  }

  MailWorld w_;
  SmtpServer server_;
  std::mutex mu_;
  std::vector<std::string> sent_;    // written by the worker thread, read after stop()
  std::vector<std::string> alerts_;  // the same
  std::vector<std::string> log_;
};

TEST_F(MailSmtpTest, AQueuedMailArrivesOnceWithItsMessageIdAndCode) {
  // API.md: OTP mails carry the 8-digit code on a line of its own.
  auto first = worker();
  first->start();
  const auto id = w_.queue(
      "alice",
      {.kind = kMailOtpCode, .to = "alice@example.com", .secret = "31415926", .locale = "en"});
  first->notify();
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "delivered"; })) << state_of(id);
  first->stop();
  ASSERT_EQ(server_.count(), 1u);
  const auto mail = server_.message(1);
  EXPECT_EQ(header(mail, "Message-ID"), "<" + id + "@sechex-ledger>");
  EXPECT_EQ(header(mail, "To"), "alice@example.com");
  const auto lines = body_lines(mail);
  EXPECT_NE(std::find(lines.begin(), lines.end(), "31415926"), lines.end());
  const auto env = server_.envelope(1);
  EXPECT_EQ(env["mail_from"], "no-reply@localhost");
  EXPECT_EQ(env["rcpt_tos"], nlohmann::json::array({"alice@example.com"}));
  EXPECT_EQ(sent_, std::vector<std::string>{"smtp"});

  // Spec 003 FR-041: a restarted worker finds the mail delivered and sends nothing.
  auto second = worker();
  EXPECT_EQ(second->run_once().value(), 0u);
  EXPECT_EQ(server_.count(), 1u);
  const auto records = w_.mail_records("alice");
  ASSERT_EQ(records.size(), 2u);
  const auto* d = testing::envelope(records[1])->event_as_MailDelivered();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->transport()->str(), "smtp");
  EXPECT_EQ(d->attempts(), 1u);
}

TEST_F(MailSmtpTest, AVerificationMailCarriesALinkEndingInItsToken) {
  // API.md: verification mails carry a link ending in ?token=<token>.
  const auto id = w_.queue("bob", {.kind = kMailVerifyEmail,
                                   .to = "bob@example.com",
                                   .secret = "vT0k-en_42",
                                   .locale = "zh-CN"});
  auto wk = worker();
  EXPECT_EQ(wk->run_once().value(), 1u);
  ASSERT_EQ(server_.count(), 1u);
  const auto link = line_with(server_.message(1), "?token=");
  std::smatch m;
  ASSERT_TRUE(
      std::regex_match(link, m, std::regex(R"(https://id\.example\.com/verify-email\?token=(.+))")))
      << link;
  EXPECT_EQ(m[1], "vT0k-en_42");
  EXPECT_EQ(state_of(id), "delivered");
}

TEST_F(MailSmtpTest, TwoRefusalsAreRetriedWithBackoffAndTheMailArrivesOnce) {
  // Spec 003 FR-038: failed deliveries are retried with increasing delays.
  server_.fail_next(2);
  auto wk = worker();
  wk->start();
  const auto id = w_.queue("carol", {.kind = kMailPasswordReset,
                                     .to = "carol@example.com",
                                     .secret = "reset-tok",
                                     .locale = "en"});
  wk->notify();
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "delivered"; })) << state_of(id);
  wk->stop();
  EXPECT_EQ(server_.count(), 1u);
  EXPECT_EQ(header(server_.message(1), "Message-ID"), "<" + id + "@sechex-ledger>");
  EXPECT_EQ(w_.state(id)->attempts, 3u);
  const auto records = w_.mail_records("carol");
  ASSERT_EQ(records.size(), 4u);  // queued, failed, failed, delivered
  std::int64_t previous_wait = 0;
  for (int i = 1; i <= 2; ++i) {
    const auto* env = testing::envelope(records[i]);
    const auto* f = env->event_as_MailDeliveryFailed();
    ASSERT_NE(f, nullptr) << i;
    EXPECT_EQ(f->attempt(), static_cast<std::uint32_t>(i));
    EXPECT_FALSE(f->final());
    EXPECT_NE(f->error()->str().find("reply 451"), std::string::npos) << f->error()->str();
    EXPECT_EQ(f->error()->str().find("carol"), std::string::npos) << "no address in errors";
    const auto wait = f->next_attempt_at() - env->time_micros();
    EXPECT_GT(wait, previous_wait) << "the delay grows";
    previous_wait = wait;
  }
  EXPECT_NE(testing::envelope(records[3])->event_as_MailDelivered(), nullptr);
  EXPECT_TRUE(alerts_.empty());
}

TEST_F(MailSmtpTest, AServerRefusingEveryAttemptEndsInTheAdminAlert) {
  // Spec 003 FR-039: after the last retry, the failure is recorded (audit event), flagged and
  // alerted.
  server_.fail_next(1000);
  auto wk = worker();
  wk->start();
  const auto id = w_.queue(
      "dave", {.kind = kMailAccountLocked, .to = "dave@example.com", .secret = "", .locale = "en"});
  wk->notify();
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "failed"; })) << state_of(id);
  wk->stop();
  EXPECT_EQ(server_.count(), 0u);
  const auto s = w_.state(id);
  EXPECT_EQ(s->attempts, 4u);
  const auto records = w_.mail_records("dave");
  ASSERT_EQ(records.size(), 5u);  // queued, then 4 failures
  const auto* last = testing::envelope(records.back())->event_as_MailDeliveryFailed();
  ASSERT_NE(last, nullptr);
  EXPECT_TRUE(last->final());
  EXPECT_EQ(last->attempt(), 4u);
  EXPECT_EQ(alerts_, std::vector<std::string>{kMailAccountLocked});
  const auto flagged = projections::failed_mails(*w_.store, 10).value();
  ASSERT_EQ(flagged.size(), 1u);
  EXPECT_EQ(flagged[0].message_id, id);
  std::lock_guard lock(mu_);
  ASSERT_FALSE(log_.empty());
  for (const auto& line : log_) EXPECT_EQ(line.find("dave@"), std::string::npos) << line;
}

// Spec 003 FR-039 ("email and a database flag"): a mail given up is also mailed to each
// --admin-email, queued with the final failure; the alert names the mail, not its address.
TEST_F(MailSmtpTest, AMailGivenUpIsMailedToTheAdminsFR039) {
  server_.fail_next(4);  // the user's mail fails 4 times; the alert then gets through
  auto c = config();
  c.admin_emails = {"ops@example.com"};
  auto wk = std::make_unique<MailWorker>(*w_.commands, *w_.keys, c, w_.clock);
  wk->start();
  const auto id = w_.queue(
      "fay", {.kind = kMailAccountLocked, .to = "fay@example.com", .secret = "", .locale = "en"});
  wk->notify();
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "failed"; })) << state_of(id);
  ASSERT_TRUE(wait_until([&] { return server_.count() == 1; })) << server_.count();
  wk->stop();
  const auto mail = server_.message(1);
  EXPECT_EQ(header(mail, "To"), "ops@example.com");
  EXPECT_NE(mail.find("mail:" + id), std::string::npos) << mail;
  EXPECT_EQ(mail.find("fay@"), std::string::npos) << "the alert carries no address";
}

TEST_F(MailSmtpTest, AnErasedSubjectsMailIsNeverSent) {
  const auto id = w_.queue(
      "erin",
      {.kind = kMailOtpCode, .to = "erin@example.com", .secret = "27182818", .locale = "en"});
  ASSERT_TRUE(w_.keys->erase("erin", "erin", "gdpr", w_.clock.now_micros()));
  ASSERT_TRUE(w_.commands->sync_all());
  auto wk = worker();
  EXPECT_EQ(wk->run_once().value(), 1u);
  EXPECT_EQ(server_.count(), 0u);
  EXPECT_EQ(state_of(id), "failed");
  EXPECT_EQ(w_.state(id)->last_error, "subject_erased");
}

}  // namespace
}  // namespace sechex::api
