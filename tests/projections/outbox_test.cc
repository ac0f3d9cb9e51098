// The email outbox projection (issue 5; spec 003 FR-038 retries, FR-039 the failed-mail flag,
// FR-041 idempotent processing): queued mails are due in time order, outcomes move them to
// delivered or failed, duplicates change nothing, finished entries expire, and a rebuild from the
// log (with or without cleanup) gives the same state.
#include "projections/outbox.h"

#include <gtest/gtest.h>

#include <random>

#include "ledger/key_store.h"
#include "projections/store.h"
#include "support/test_util.h"

namespace sechex::projections {
namespace {

using ledger::Bytes;
using ledger::ByteView;

constexpr std::uint32_t kPartitions = 4;
constexpr std::int64_t kSecond = 1'000'000;
constexpr std::int64_t kDay = 24 * 3600 * kSecond;

class OutboxTest : public ::testing::Test {
 protected:
  OutboxTest() {
    auto ledger = testing::open_test_ledger(dir_.sub("log"), kPartitions);
    log_ = std::move(ledger.log);
    keys_ = std::move(ledger.keys);
    store_ = open_store("live");
  }

  std::unique_ptr<ProjectionStore> open_store(const std::string& name) {
    return ProjectionStore::open(dir_.sub(name), kPartitions, default_projections()).value();
  }

  ledger::EventBuilder builder(const std::string& subject) {
    clock_.advance_micros(kSecond);
    return ledger::EventBuilder(keys_.get(), {subject, subject, "r", clock_.now_micros(), {}, {}});
  }

  // Appends one event and applies it to the live store (as the command path would).
  void append(const std::string& subject, const Bytes& event) {
    const ByteView v(event);
    ASSERT_TRUE(log_->append(ledger::partition_for(subject, kPartitions),
                             std::span<const ByteView>(&v, 1)));
    ASSERT_TRUE(store_->catch_up(*log_));
  }

  // MailQueued; returns the envelope's event id (hex).
  std::string queue(const std::string& subject, const std::string& id,
                    const std::string& kind = "otp_code", const std::string& secret = "12345678") {
    auto b = builder(subject);
    auto to = b.seal("to", subject + "@example.com").value();
    flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> sealed_secret = 0;
    if (!secret.empty()) sealed_secret = b.seal("secret", secret).value();
    auto& f = b.fbb();
    const auto body = schema::CreateMailQueued(f, f.CreateString(id), f.CreateString(kind), to,
                                               sealed_secret, f.CreateString("en"));
    const auto event_id = ledger::to_hex(b.event_id());
    append(subject, b.finish(body).value());
    return event_id;
  }
  void delivered(const std::string& subject, const std::string& id, std::uint32_t attempts) {
    auto b = builder(subject);
    auto& f = b.fbb();
    append(subject, b.finish(schema::CreateMailDelivered(f, f.CreateString(id), attempts,
                                                         f.CreateString("smtp")))
                        .value());
  }
  void failed(const std::string& subject, const std::string& id, std::uint32_t attempt, bool final,
              std::int64_t next_attempt_at = 0) {
    auto b = builder(subject);
    auto& f = b.fbb();
    append(subject, b.finish(schema::CreateMailDeliveryFailed(f, f.CreateString(id), attempt,
                                                              f.CreateString("smtp: 451"), final,
                                                              next_attempt_at))
                        .value());
  }

  OutboxEntry state(const std::string& id) {
    auto s = mail_state(*store_, id).value();
    EXPECT_TRUE(s.has_value()) << id;
    return s.value_or(OutboxEntry{});
  }
  std::vector<std::string> due_ids(std::int64_t now, std::size_t max = 100) {
    std::vector<std::string> out;
    const auto due = due_mails(*store_, now, max).value();
    for (const auto& e : due) out.push_back(e.message_id);
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<ledger::LogStore> log_;
  std::unique_ptr<ledger::KeyStore> keys_;
  std::unique_ptr<ProjectionStore> store_;
  ManualClock clock_;
};

TEST_F(OutboxTest, AQueuedMailIsPendingAndDueFromItsEventTimeUntilDelivered) {
  const auto event_id = queue("alice", "m1");
  const auto queued_at = clock_.now_micros();
  const auto e = state("m1");
  EXPECT_EQ(e.subject, "alice");
  EXPECT_EQ(e.event_id_hex, event_id);
  EXPECT_EQ(e.kind, "otp_code");
  EXPECT_EQ(e.locale, "en");
  EXPECT_EQ(e.state, "pending");
  EXPECT_EQ(e.attempts, 0u);
  EXPECT_EQ(e.queued_at, queued_at);
  EXPECT_EQ(e.next_attempt_at, queued_at);
  // The sealed fields are kept as ciphertext and open with the event id as AAD.
  Bytes eid;
  ASSERT_TRUE(ledger::from_hex(e.event_id_hex, eid));
  EXPECT_EQ(e.to_sealed.find("alice@example.com"), std::string::npos);
  const auto to = keys_->open_field("alice", eid, "to", ledger::as_bytes(e.to_sealed)).value();
  EXPECT_EQ(std::string(to.begin(), to.end()), "alice@example.com");
  const auto code =
      keys_->open_field("alice", eid, "secret", ledger::as_bytes(e.secret_sealed)).value();
  EXPECT_EQ(std::string(code.begin(), code.end()), "12345678");

  EXPECT_TRUE(due_ids(queued_at - 1).empty());
  EXPECT_EQ(due_ids(queued_at), std::vector<std::string>{"m1"});

  delivered("alice", "m1", 1);
  const auto d = state("m1");
  EXPECT_EQ(d.state, "delivered");
  EXPECT_EQ(d.attempts, 1u);
  EXPECT_EQ(d.done_at, clock_.now_micros());
  EXPECT_TRUE(due_ids(clock_.now_micros() + kDay).empty());
  EXPECT_TRUE(store_->scan(kOutboxDueCf, "").value().empty()) << "the due index is cleaned";
}

TEST_F(OutboxTest, RetriesMoveTheDueTimeAndTheFinalFailureIsTheAdminFlag) {
  // Spec 003 FR-038/FR-039: failed attempts are retried later; after the last, the mail is
  // flagged for an administrator.
  queue("bob", "m2");
  const auto retry_at = clock_.now_micros() + 10 * kSecond;
  failed("bob", "m2", 1, false, retry_at);
  auto e = state("m2");
  EXPECT_EQ(e.state, "pending");
  EXPECT_EQ(e.attempts, 1u);
  EXPECT_EQ(e.next_attempt_at, retry_at);
  EXPECT_EQ(e.last_error, "smtp: 451");
  EXPECT_TRUE(due_ids(retry_at - 1).empty());
  EXPECT_EQ(due_ids(retry_at), std::vector<std::string>{"m2"});
  EXPECT_EQ(store_->scan(kOutboxDueCf, "").value().size(), 1u) << "the old due key is gone";
  EXPECT_TRUE(failed_mails(*store_, 10).value().empty());

  failed("bob", "m2", 4, true);
  e = state("m2");
  EXPECT_EQ(e.state, "failed");
  EXPECT_EQ(e.attempts, 4u);
  EXPECT_TRUE(due_ids(retry_at + kDay).empty());
  const auto flagged = failed_mails(*store_, 10).value();
  ASSERT_EQ(flagged.size(), 1u);
  EXPECT_EQ(flagged[0].message_id, "m2");
}

TEST_F(OutboxTest, ADuplicateMailQueuedChangesNothing) {
  // Spec 003 FR-041: processing the same message twice has no further effect.
  queue("carol", "m3", "verify_email", "tok-1");
  const auto before = state("m3");
  queue("carol", "m3", "otp_code", "87654321");
  const auto after = state("m3");
  EXPECT_EQ(after.kind, "verify_email");
  EXPECT_EQ(after.queued_at, before.queued_at);
  EXPECT_EQ(after.event_id_hex, before.event_id_hex);
  EXPECT_EQ(store_->scan(kOutboxDueCf, "").value().size(), 1u);
}

TEST_F(OutboxTest, TheFirstOutcomeWinsAndOtherSubjectsCannotTouchAMail) {
  queue("dave", "m4");
  delivered("dave", "m4", 1);
  failed("dave", "m4", 2, true);  // a late report after a crash and resend
  EXPECT_EQ(state("m4").state, "delivered");
  EXPECT_EQ(state("m4").attempts, 1u);

  queue("erin", "m5");
  failed("mallory", "m5", 1, true);
  delivered("mallory", "m5", 1);
  EXPECT_EQ(state("m5").state, "pending");
  delivered("erin", "m-unknown", 1);
  EXPECT_FALSE(mail_state(*store_, "m-unknown").value().has_value());
}

TEST_F(OutboxTest, DueMailsComeEarliestFirstWithinMaxAndFilter) {
  queue("u1", "a");
  queue("u2", "b");
  queue("u3", "c");
  // Retrying "a" puts it behind the others.
  failed("u1", "a", 1, false, clock_.now_micros() + 5 * kSecond);
  const auto later = clock_.now_micros() + kDay;
  EXPECT_EQ(due_ids(later), (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_EQ(due_ids(later, 2), (std::vector<std::string>{"b", "c"}));
  const auto only_u3 =
      due_mails(*store_, later, 10, [](const OutboxEntry& e) { return e.subject == "u3"; }).value();
  ASSERT_EQ(only_u3.size(), 1u);
  EXPECT_EQ(only_u3[0].message_id, "c");
}

TEST_F(OutboxTest, FinishedEntriesExpireAndPendingOnesNever) {
  OutboxProjection p;
  queue("f1", "pending");
  queue("f2", "done");
  delivered("f2", "done", 1);
  queue("f3", "gaveup");
  failed("f3", "gaveup", 4, true);
  const auto t = clock_.now_micros();
  const auto value = [&](const std::string& id) {
    return store_->get(kOutboxCf, id).value().value();
  };
  EXPECT_FALSE(p.expired(kOutboxCf, "pending", value("pending"), t + 365 * kDay));
  const auto delivered_at = state("done").done_at;
  EXPECT_FALSE(
      p.expired(kOutboxCf, "done", value("done"), delivered_at + kOutboxDeliveredKeepMicros - 1));
  EXPECT_TRUE(
      p.expired(kOutboxCf, "done", value("done"), delivered_at + kOutboxDeliveredKeepMicros));
  EXPECT_FALSE(p.expired(kOutboxCf, "gaveup", value("gaveup"), t + kOutboxDeliveredKeepMicros));
  EXPECT_TRUE(p.expired(kOutboxCf, "gaveup", value("gaveup"), t + kOutboxFailedKeepMicros));
  EXPECT_FALSE(p.expired(kOutboxCf, "x", "not json", t + 365 * kDay));

  EXPECT_EQ(store_->cleanup(t + kOutboxFailedKeepMicros).value(), 2u);
  EXPECT_TRUE(mail_state(*store_, "pending").value().has_value());
  EXPECT_FALSE(mail_state(*store_, "done").value().has_value());
  EXPECT_FALSE(mail_state(*store_, "gaveup").value().has_value());
}

TEST_F(OutboxTest, RebuildFromTheLogIsIdenticalToLiveApplyWithCleanup) {
  std::mt19937 rng(99);
  struct Mail {
    std::string subject, id;
    std::uint32_t attempts = 0;
    bool done = false;
  };
  std::vector<Mail> mails;
  std::uint64_t cleaned = 0;
  for (int step = 0; step < 300; ++step) {
    const auto pick = rng() % 8;
    if (mails.empty() || pick < 3) {
      mails.push_back({"s" + std::to_string(rng() % 12), "id" + std::to_string(step)});
      queue(mails.back().subject, mails.back().id, rng() % 2 ? "otp_code" : "account_locked",
            mails.back().subject.size() % 2 ? "12345678" : "");
    } else {
      auto& m = mails[rng() % mails.size()];
      if (pick == 3) {
        queue(m.subject, m.id);  // duplicate (or, after expiry, a new mail under an old id)
      } else if (pick < 6) {
        ++m.attempts;
        failed(m.subject, m.id, m.attempts, m.attempts >= 4,
               clock_.now_micros() + (1 << m.attempts) * kSecond);
      } else {
        delivered(m.subject, m.id, ++m.attempts);
      }
    }
    if (rng() % 30 == 0) clock_.advance_micros(8 * kDay);
    if (rng() % 20 == 0) cleaned += store_->cleanup(clock_.now_micros()).value();
  }
  ASSERT_GT(cleaned, 0u) << "the workload must exercise cleanup";
  auto rebuilt = open_store("rebuilt");
  ASSERT_TRUE(rebuilt->catch_up(*log_, 4096));
  EXPECT_FALSE(rebuilt->scan(kOutboxCf, "", 1).value().empty());
  EXPECT_FALSE(rebuilt->scan(kOutboxDueCf, "", 1).value().empty());
  const auto t = clock_.now_micros();
  for (const auto at : {t, t + kDay, t + 10 * kDay, t + 40 * kDay}) {
    EXPECT_EQ(store_->digest(at).value(), rebuilt->digest(at).value()) << at;
  }
  ASSERT_TRUE(store_->cleanup(t));
  ASSERT_TRUE(rebuilt->cleanup(t));
  EXPECT_EQ(store_->digest().value(), rebuilt->digest().value());
  EXPECT_EQ(due_mails(*store_, t, 1000).value().size(),
            due_mails(*rebuilt, t, 1000).value().size());
}

}  // namespace
}  // namespace sechex::projections
