// Email (issue 5): queueing (sealed address and secret), rendering (API.md: links ending in
// ?token=<token>, the OTP code on a line of its own, en and zh-CN), header injection, the pure
// retry decision of spec 003 FR-038 (3 retries with exponential backoff, then the admin alert of
// FR-039), the file transport, and the worker over the file transport (idempotent per message id,
// FR-041; an erased subject's mail is never written). The SMTP transport against a real server is
// in mail_smtp_test.cc.
#include "api/mail/mail.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <functional>

#include "mail_support.h"

namespace sechex::api {
namespace {

using projections::OutboxEntry;
using testing::body_lines;
using testing::header;
using testing::line_with;
using testing::MailWorld;
using Status = DeliveryOutcome::Status;

constexpr std::int64_t kSecond = 1'000'000;
constexpr std::int64_t kNow = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z (a Thursday)
const std::string kId = "0123456789abcdef0123456789abcdef";

OutboxEntry pending(std::uint32_t attempts) {
  OutboxEntry e;
  e.message_id = kId;
  e.subject = "alice";
  e.kind = kMailOtpCode;
  e.state = "pending";
  e.attempts = attempts;
  e.queued_at = kNow;
  return e;
}

DeliveryOutcome transient() {
  return {.status = Status::transient_failure, .transport = "smtp", .error = "smtp: 451"};
}

// ---- The retry decision (pure, injected time) ----

// Issue 15: the retry policy shared with webhook deliveries spreads retries by up to a quarter
// of the delay, so mails failing together do not come back in lockstep.
TEST(MailDecision, JitterStretchesEachDelayByUpToAQuarter) {
  const MailerConfig config;
  const std::int64_t waits[] = {2, 4, 8};
  for (std::uint32_t made = 0; made < 3; ++made) {
    const auto low = decide_mail_outcome(pending(made), transient(), config, kNow, 0.0);
    const auto high = decide_mail_outcome(pending(made), transient(), config, kNow, 0.99);
    EXPECT_EQ(low.next_attempt_at, kNow + waits[made] * kSecond);
    EXPECT_GT(high.next_attempt_at, low.next_attempt_at);
    EXPECT_LE(high.next_attempt_at, kNow + waits[made] * kSecond * 5 / 4);
  }
}

TEST(MailDecision, FailuresBackOff2s4s8sAndTheFourthAttemptIsFinal) {
  // Spec 003 FR-038: up to 3 retries with increasing delays.
  const MailerConfig config;  // backoff_base 2 s, max_attempts 4
  const std::int64_t waits[] = {2, 4, 8};
  for (std::uint32_t made = 0; made < 3; ++made) {
    const auto d = decide_mail_outcome(pending(made), transient(), config, kNow);
    EXPECT_EQ(d.kind, MailDecision::Kind::failed);
    EXPECT_EQ(d.attempt, made + 1);
    EXPECT_FALSE(d.final) << "attempt " << d.attempt;
    EXPECT_EQ(d.next_attempt_at, kNow + waits[made] * kSecond) << "attempt " << d.attempt;
    EXPECT_EQ(d.error, "smtp: 451");
  }
  // Spec 003 FR-039: after the last retry the failure is final (the admin alert).
  const auto last = decide_mail_outcome(pending(3), transient(), config, kNow);
  EXPECT_EQ(last.kind, MailDecision::Kind::failed);
  EXPECT_EQ(last.attempt, 4u);
  EXPECT_TRUE(last.final);
  EXPECT_EQ(last.next_attempt_at, 0);
}

TEST(MailDecision, BackoffFollowsTheConfiguredBaseAndAttemptLimit) {
  MailerConfig config;
  config.backoff_base = std::chrono::milliseconds(10);
  config.max_attempts = 2;
  EXPECT_EQ(decide_mail_outcome(pending(0), transient(), config, kNow).next_attempt_at,
            kNow + 10'000);
  EXPECT_TRUE(decide_mail_outcome(pending(1), transient(), config, kNow).final);
}

TEST(MailDecision, ADeliveryIsRecordedWithItsAttemptAndTransport) {
  const auto d = decide_mail_outcome(
      pending(2), {.status = Status::delivered, .transport = "file", .error = ""}, {}, kNow);
  EXPECT_EQ(d.kind, MailDecision::Kind::delivered);
  EXPECT_EQ(d.attempt, 3u);
  EXPECT_EQ(d.transport, "file");
}

TEST(MailDecision, APermanentFailureIsFinalAtOnce) {
  const auto d = decide_mail_outcome(
      pending(0),
      {.status = Status::permanent_failure, .transport = "smtp", .error = "subject_erased"}, {},
      kNow);
  EXPECT_EQ(d.kind, MailDecision::Kind::failed);
  EXPECT_EQ(d.attempt, 1u);
  EXPECT_TRUE(d.final);
  EXPECT_EQ(d.error, "subject_erased");
}

TEST(MailDecision, AMailNoLongerPendingRecordsNothing) {
  // Spec 003 FR-041: a retry of a finished mail has no effect.
  for (const char* state : {"delivered", "failed"}) {
    auto e = pending(1);
    e.state = state;
    EXPECT_EQ(decide_mail_outcome(e, transient(), {}, kNow).kind, MailDecision::Kind::none);
    EXPECT_EQ(decide_mail_outcome(
                  e, {.status = Status::delivered, .transport = "smtp", .error = ""}, {}, kNow)
                  .kind,
              MailDecision::Kind::none);
  }
}

TEST(MailDecision, OutcomesBecomeMailEvents) {
  const ledger::EventMeta meta{"alice", "system", "mail:x", kNow, {}, {}};
  MailDecision failed{.kind = MailDecision::Kind::failed,
                      .attempt = 2,
                      .transport = "",
                      .error = "smtp: 451",
                      .final = false,
                      .next_attempt_at = kNow + 4 * kSecond};
  const auto fb = build_mail_outcome(meta, kId, failed).value();
  ASSERT_EQ(schemas::check_envelope(fb.data(), fb.size()), schemas::CheckResult::ok);
  const auto* f = schemas::envelope_of(fb.data())->event_as_MailDeliveryFailed();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->message_id()->str(), kId);
  EXPECT_EQ(f->attempt(), 2u);
  EXPECT_EQ(f->error()->str(), "smtp: 451");
  EXPECT_FALSE(f->final());
  EXPECT_EQ(f->next_attempt_at(), kNow + 4 * kSecond);

  MailDecision delivered{.kind = MailDecision::Kind::delivered,
                         .attempt = 1,
                         .transport = "smtp",
                         .error = "",
                         .final = false,
                         .next_attempt_at = 0};
  const auto db = build_mail_outcome(meta, kId, delivered).value();
  const auto* d = schemas::envelope_of(db.data())->event_as_MailDelivered();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->attempts(), 1u);
  EXPECT_EQ(d->transport()->str(), "smtp");
  EXPECT_EQ(build_mail_outcome(meta, kId, MailDecision{}).error(), ledger::Errc::invalid_argument);
}

// ---- Queueing ----

TEST(MailQueue, TheEventSealsTheAddressAndSecretAndNamesAFreshMessageId) {
  MailWorld w;
  const auto queued = build_mail_queued(*w.keys, {"alice", "alice", "r", kNow, {}, {}},
                                        {.kind = kMailOtpCode,
                                         .to = "alice@example.com",
                                         .secret = "12345678",
                                         .locale = "zh-Hans"})
                          .value();
  const auto& id = queued.message_id;
  const auto& bytes = queued.bytes;
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
  const std::string raw(bytes.begin(), bytes.end());
  EXPECT_EQ(raw.find("alice@example.com"), std::string::npos);
  EXPECT_EQ(raw.find("12345678"), std::string::npos);
  const auto* env = schemas::envelope_of(bytes.data());
  const auto* q = env->event_as_MailQueued();
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->message_id()->str(), id);
  EXPECT_EQ(q->kind()->str(), kMailOtpCode);
  EXPECT_EQ(q->locale()->str(), "zh-CN");
  const ledger::ByteView eid(env->event_id()->bytes()->data(), 16);
  const auto to = w.keys
                      ->open_field("alice", eid, "to",
                                   ledger::ByteView(q->to_sealed()->data(), q->to_sealed()->size()))
                      .value();
  EXPECT_EQ(std::string(to.begin(), to.end()), "alice@example.com");

  const auto other = build_mail_queued(
      *w.keys, {"alice", "alice", "r", kNow, {}, {}},
      {.kind = kMailAccountLocked, .to = "alice@example.com", .secret = "", .locale = "en"});
  ASSERT_TRUE(other);
  EXPECT_NE(other.value().message_id, id);
}

TEST(MailQueue, RefusesUnknownKindsMissingSecretsAndAddressesUnfitForAHeader) {
  const auto ok = [](MailRequest r) { return check_mail_request(r).has_value(); };
  EXPECT_TRUE(ok({.kind = kMailVerifyEmail, .to = "a@b.c", .secret = "tok", .locale = "en"}));
  EXPECT_FALSE(ok({.kind = "newsletter", .to = "a@b.c", .secret = "", .locale = "en"}));
  EXPECT_FALSE(ok({.kind = kMailVerifyEmail, .to = "a@b.c", .secret = "", .locale = "en"}));
  EXPECT_FALSE(ok({.kind = kMailAccountLocked, .to = "a@b.c", .secret = "tok", .locale = "en"}));
  EXPECT_FALSE(ok({.kind = kMailOtpCode, .to = "a@b.c", .secret = "1234567", .locale = "en"}));
  EXPECT_FALSE(ok({.kind = kMailOtpCode, .to = "a@b.c", .secret = "1234567x", .locale = "en"}));
  EXPECT_FALSE(ok({.kind = kMailVerifyEmail, .to = "a@b.c", .secret = "to k", .locale = "en"}));
  for (const char* bad : {"a@b.c\r\nBcc: evil@x.y", "a@b.c\nBcc: evil@x.y", "a b@c.d", "ab.cd",
                          "@b.c", "a@", "a@b@c", "<a@b.c>", "a@b.c,evil@x.y", ""}) {
    EXPECT_FALSE(ok({.kind = kMailAccountLocked, .to = bad, .secret = "", .locale = "en"})) << bad;
  }
  MailWorld w;
  EXPECT_EQ(build_mail_queued(*w.keys, {"alice", "alice", "r", kNow, {}, {}},
                              {.kind = kMailAccountLocked,
                               .to = "a@b.c\r\nBcc: evil@x.y",
                               .secret = "",
                               .locale = "en"})
                .error(),
            ledger::Errc::invalid_argument);
}

// ---- Rendering ----

std::string eml_of(const std::string& kind, const std::string& secret,
                   const std::string& locale = "en") {
  const auto r = render_mail({.message_id = kId,
                              .kind = kind,
                              .locale = locale,
                              .to = "alice@example.com",
                              .secret = secret},
                             "Sechex Ledger <no-reply@localhost>", "https://id.example.com/", kNow);
  EXPECT_TRUE(r);
  if (!r) return "";
  auto eml = render_eml(r.value());
  EXPECT_TRUE(eml);
  return eml ? eml.value() : "";
}

TEST(MailRender, HeadersCarryTheMessageIdDateAndAutoSubmitted) {
  const auto eml = eml_of(kMailOtpCode, "12345678");
  EXPECT_EQ(header(eml, "Message-ID"), "<" + kId + "@sechex-ledger>");
  EXPECT_EQ(header(eml, "Date"), "Thu, 01 Jan 2026 00:00:00 +0000");
  EXPECT_EQ(header(eml, "From"), "Sechex Ledger <no-reply@localhost>");
  EXPECT_EQ(header(eml, "To"), "alice@example.com");
  EXPECT_EQ(header(eml, "Subject"), "Your sign-in code");
  EXPECT_EQ(header(eml, "MIME-Version"), "1.0");
  EXPECT_EQ(header(eml, "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(header(eml, "Content-Transfer-Encoding"), "7bit");
  EXPECT_EQ(header(eml, "Auto-Submitted"), "auto-generated");
  // CRLF everywhere: no bare LF.
  for (std::size_t i = 0; i < eml.size(); ++i) {
    if (eml[i] == '\n') {
      ASSERT_TRUE(i > 0 && eml[i - 1] == '\r') << "bare LF at " << i;
    }
  }
}

TEST(MailRender, TheOtpCodeStandsOnALineOfItsOwn) {
  // API.md: OTP mails carry the 8-digit code on a line of its own.
  const auto lines = body_lines(eml_of(kMailOtpCode, "04817263"));
  EXPECT_NE(std::find(lines.begin(), lines.end(), "04817263"), lines.end());
}

TEST(MailRender, VerificationAndResetLinksEndInTheToken) {
  // API.md: verification and reset mails carry a link ending in ?token=<token>.
  EXPECT_EQ(line_with(eml_of(kMailVerifyEmail, "abc-DEF_123"), "token="),
            "https://id.example.com/verify-email?token=abc-DEF_123");
  EXPECT_EQ(line_with(eml_of(kMailPasswordReset, "r3set"), "token="),
            "https://id.example.com/reset-password?token=r3set");
  // Characters with a meaning in URLs are percent-encoded.
  EXPECT_EQ(line_with(eml_of(kMailVerifyEmail, "a&b=c"), "token="),
            "https://id.example.com/verify-email?token=a%26b%3Dc");
}

TEST(MailRender, EveryKindHasAnEnglishAndAChineseTemplate) {
  for (const char* kind :
       {kMailVerifyEmail, kMailPasswordReset, kMailPasswordResetDone, kMailOtpCode, kMailOtpLockout,
        kMailAccountLocked, kMailExclusiveNewDevice}) {
    const std::string secret =
        kind == std::string(kMailOtpCode) ? "12345678"
        : kind == std::string(kMailVerifyEmail) || kind == std::string(kMailPasswordReset) ? "tok"
                                                                                           : "";
    const auto en = eml_of(kind, secret, "en");
    const auto zh = eml_of(kind, secret, "zh-CN");
    EXPECT_FALSE(header(en, "Subject").empty()) << kind;
    EXPECT_EQ(header(zh, "Subject").rfind("=?UTF-8?B?", 0), 0u) << kind;
    EXPECT_EQ(header(zh, "Content-Transfer-Encoding"), "8bit") << kind;
    EXPECT_NE(body_lines(en), body_lines(zh)) << kind;
  }
}

TEST(MailRender, TheChineseOtpMailIsChineseAndKeepsTheCodeLine) {
  const auto eml = eml_of(kMailOtpCode, "12345678", "zh-CN");
  // "您的验证码" in UTF-8, base64-encoded in the Subject.
  EXPECT_EQ(header(eml, "Subject"), "=?UTF-8?B?5oKo55qE6aqM6K+B56CB?=");
  EXPECT_NE(eml.find("验证码"), std::string::npos);
  const auto lines = body_lines(eml);
  EXPECT_NE(std::find(lines.begin(), lines.end(), "12345678"), lines.end());
}

TEST(MailRender, HeaderInjectionIsRefused) {
  RenderedMail m{.message_id = kId,
                 .from = "Sechex Ledger <no-reply@localhost>",
                 .to = "alice@example.com",
                 .subject = "Hello",
                 .body = "text\n",
                 .date_micros = kNow};
  ASSERT_TRUE(render_eml(m));
  const std::vector<std::pair<std::string, std::function<void(RenderedMail&)>>> attacks = {
      {"CRLF in To", [](auto& b) { b.to = "alice@example.com\r\nBcc: evil@example.net"; }},
      {"LF in To", [](auto& b) { b.to = "alice@example.com\nBcc: evil@example.net"; }},
      {"CRLF in Subject", [](auto& b) { b.subject = "Hello\r\nBcc: evil@example.net"; }},
      {"CR in From", [](auto& b) { b.from = "Sechex <no-reply@localhost>\rBcc: evil@x.net"; }},
      {"a path as message id", [](auto& b) { b.message_id = "../../etc/passwd"; }},
      {"a body line over 998 bytes (RFC 5322 2.1.1)",
       [](auto& b) { b.body = std::string(999, 'x'); }},
  };
  for (const auto& [what, change] : attacks) {
    auto bad = m;
    change(bad);
    const auto r = render_eml(bad);
    ASSERT_FALSE(r) << what;
    EXPECT_EQ(r.error(), ledger::Errc::invalid_argument) << what;
  }
  // render_mail refuses the same address before anything is rendered.
  EXPECT_FALSE(render_mail({.message_id = kId,
                            .kind = kMailAccountLocked,
                            .locale = "en",
                            .to = "a@b.c\r\nBcc: evil@x.y",
                            .secret = ""},
                           "no-reply@localhost", "http://x", kNow));
}

TEST(MailConfig, LoopbackSmtpUrlsAreRecognised) {
  EXPECT_TRUE(is_loopback_smtp_url("smtp://127.0.0.1:2525"));
  EXPECT_TRUE(is_loopback_smtp_url("smtp://localhost"));
  EXPECT_TRUE(is_loopback_smtp_url("smtps://user@[::1]:465/"));
  EXPECT_FALSE(is_loopback_smtp_url("smtp://mail.example.com:587"));
  EXPECT_TRUE(is_loopback_smtp_url("smtp://127.1.2.3:25"));
  EXPECT_FALSE(is_loopback_smtp_url("smtp://127.0.0.1.evil.example:25"));
  EXPECT_FALSE(is_loopback_smtp_url("http://127.0.0.1"));
}

// ---- File transport ----

TEST(MailFile, DeliveryWritesOneCompleteOwnerOnlyFile) {
  sechex::testing::TempDir dir;
  const auto eml = eml_of(kMailOtpCode, "12345678");
  const auto outbox = dir.sub("outbox");
  const auto r = deliver_to_file(outbox, kId, eml);
  EXPECT_EQ(r.status, Status::delivered) << r.error;
  EXPECT_EQ(r.transport, "file");
  const auto path = outbox + "/" + kId + ".eml";
  EXPECT_EQ(sechex::testing::read_file(path), eml);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the mail holds a secret";
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(outbox)) ++files;
  EXPECT_EQ(files, 1u) << "no temporary file is left";
  // Delivering again (a retry after a crash) leaves the same single file.
  EXPECT_EQ(deliver_to_file(outbox, kId, eml).status, Status::delivered);
  EXPECT_EQ(sechex::testing::read_file(path), eml);
  EXPECT_EQ(deliver_to_file(outbox, "../escape", eml).status, Status::permanent_failure);
}

// ---- The worker over the file transport ----

class MailWorkerFileTest : public ::testing::Test {
 protected:
  MailerConfig config() {
    MailerConfig c;
    c.outbox_dir = w_.dir.sub("outbox");
    c.public_url = "http://127.0.0.1:8080";
    return c;
  }
  std::string eml(const std::string& id) {
    return sechex::testing::read_file(w_.dir.sub("outbox") + "/" + id + ".eml");
  }

  MailWorld w_;
  std::vector<std::string> sent_;
  std::vector<std::string> alerts_;
  std::vector<std::string> log_;
  MailWorkerHooks hooks() {
    return {.on_sent = [this](std::string_view t) { sent_.emplace_back(t); },
            .on_final_failure = [this](std::string_view k) { alerts_.emplace_back(k); },
            .log = [this](const std::string& l) { log_.push_back(l); }};
  }
};

TEST_F(MailWorkerFileTest, AQueuedMailIsWrittenOnceAndRecordedDelivered) {
  // API.md: without SMTP configured, mails are .eml files in the outbox folder.
  const auto id = w_.queue(
      "alice",
      {.kind = kMailVerifyEmail, .to = "alice@example.com", .secret = "tok123", .locale = "en"});
  MailWorker worker(*w_.commands, *w_.keys, config(), w_.clock, hooks());
  EXPECT_EQ(worker.run_once().value(), 1u);
  const auto mail = eml(id);
  EXPECT_EQ(header(mail, "Message-ID"), "<" + id + "@sechex-ledger>");
  EXPECT_EQ(line_with(mail, "token="), "http://127.0.0.1:8080/verify-email?token=tok123");
  EXPECT_EQ(w_.state(id)->state, "delivered");
  EXPECT_EQ(sent_, std::vector<std::string>{"file"});
  // Spec 003 FR-041: another pass (or another worker after a restart) sends nothing more.
  EXPECT_EQ(worker.run_once().value(), 0u);
  MailWorker restarted(*w_.commands, *w_.keys, config(), w_.clock, hooks());
  EXPECT_EQ(restarted.run_once().value(), 0u);
  const auto records = w_.mail_records("alice");
  ASSERT_EQ(records.size(), 2u);
  const auto* d = testing::envelope(records[1])->event_as_MailDelivered();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->attempts(), 1u);
  EXPECT_EQ(d->transport()->str(), "file");
  EXPECT_EQ(sent_.size(), 1u);
}

TEST_F(MailWorkerFileTest, AnErasedSubjectsMailIsNeverWritten) {
  const auto id = w_.queue(
      "bob", {.kind = kMailOtpCode, .to = "bob@example.com", .secret = "12345678", .locale = "en"});
  ASSERT_TRUE(w_.keys->erase("bob", "bob", "gdpr", w_.clock.now_micros()));
  ASSERT_TRUE(w_.commands->sync_all());
  MailWorker worker(*w_.commands, *w_.keys, config(), w_.clock, hooks());
  EXPECT_EQ(worker.run_once().value(), 1u);
  EXPECT_FALSE(std::filesystem::exists(w_.dir.sub("outbox") + "/" + id + ".eml"));
  const auto s = w_.state(id);
  EXPECT_EQ(s->state, "failed");
  EXPECT_EQ(s->last_error, "subject_erased");
  EXPECT_EQ(alerts_, std::vector<std::string>{kMailOtpCode});
  const auto records = w_.mail_records("bob");
  const auto* f = testing::envelope(records.back())->event_as_MailDeliveryFailed();
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->final());
  EXPECT_EQ(f->error()->str(), "subject_erased");
}

TEST_F(MailWorkerFileTest, AMailOlderThanMaxAgeFailsInsteadOfSendingAStaleCode) {
  const auto id = w_.queue(
      "carol",
      {.kind = kMailOtpCode, .to = "carol@example.com", .secret = "12345678", .locale = "en"});
  w_.manual.advance_micros(25LL * 3600 * kSecond);
  MailWorker worker(*w_.commands, *w_.keys, config(), w_.clock, hooks());
  EXPECT_EQ(worker.run_once().value(), 1u);
  EXPECT_FALSE(std::filesystem::exists(w_.dir.sub("outbox") + "/" + id + ".eml"));
  EXPECT_EQ(w_.state(id)->state, "failed");
  EXPECT_EQ(w_.state(id)->last_error, "expired");
}

TEST_F(MailWorkerFileTest, AnUnwritableOutboxIsRetriedWithBackoffThenGivenUp) {
  // Spec 003 FR-038/FR-039 with the file transport: the outbox path is a regular file.
  sechex::testing::write_file(w_.dir.sub("outbox"), "not a directory");
  const auto id = w_.queue(
      "dave", {.kind = kMailAccountLocked, .to = "dave@example.com", .secret = "", .locale = "en"});
  MailWorker worker(*w_.commands, *w_.keys, config(), w_.clock, hooks());
  const std::int64_t waits[] = {2, 4, 8};
  for (int attempt = 1; attempt <= 3; ++attempt) {
    EXPECT_EQ(worker.run_once().value(), 1u) << attempt;
    const auto s = w_.state(id);
    EXPECT_EQ(s->state, "pending");
    EXPECT_EQ(s->attempts, static_cast<std::uint32_t>(attempt));
    // The backoff, stretched by up to a quarter (jitter).
    EXPECT_GE(s->next_attempt_at, w_.clock.now_micros() + waits[attempt - 1] * kSecond);
    EXPECT_LE(s->next_attempt_at, w_.clock.now_micros() + waits[attempt - 1] * kSecond * 5 / 4);
    EXPECT_EQ(worker.run_once().value(), 0u) << "not due before its backoff";
    w_.manual.advance_micros(waits[attempt - 1] * kSecond * 5 / 4);
  }
  EXPECT_EQ(worker.run_once().value(), 1u);
  EXPECT_EQ(w_.state(id)->state, "failed");
  EXPECT_EQ(w_.state(id)->attempts, 4u);
  EXPECT_EQ(alerts_.size(), 1u);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_EQ(log_[0].find("dave@example.com"), std::string::npos) << "no address in logs";
  const auto flagged = projections::failed_mails(*w_.store, 10).value();
  ASSERT_EQ(flagged.size(), 1u);
  EXPECT_EQ(flagged[0].message_id, id);
}

TEST_F(MailWorkerFileTest, TheThreadDeliversWhenNotifiedAndStopsPromptly) {
  MailWorker worker(*w_.commands, *w_.keys, config(), w_.clock, hooks());
  worker.start();
  const auto id = w_.queue(
      "erin",
      {.kind = kMailOtpCode, .to = "erin@example.com", .secret = "55554444", .locale = "en"});
  worker.notify();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (w_.state(id)->state == "pending" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  worker.stop();
  EXPECT_EQ(w_.state(id)->state, "delivered");
  const auto lines = body_lines(eml(id));
  EXPECT_NE(std::find(lines.begin(), lines.end(), "55554444"), lines.end());
}

}  // namespace
}  // namespace sechex::api
