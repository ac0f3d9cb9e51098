// Projections: catch-up, resume from stored positions, the read models (users, audit, access,
// payments, sessions, rate limits, replay cache), scheduled expiry cleanup, and the core rule
// that rebuilding from the log gives byte-identical state.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "ledger/key_store.h"
#include "ledger/time_format.h"
#include "projections/access.h"
#include "projections/audit.h"
#include "projections/identity.h"
#include "projections/payments.h"
#include "projections/rate_limits.h"
#include "projections/replay_cache.h"
#include "projections/secrets.h"
#include "projections/sessions.h"
#include "projections/store.h"
#include "projections/users.h"
#include "projections/webhooks.h"
#include "support/test_util.h"

namespace sechex::projections {
namespace {

// Projection rows and events hold micros since the epoch; the read functions take instants.
constexpr TimePoint at(std::int64_t micros) { return time_from_micros(micros); }

using ledger::Bytes;
using ledger::ByteView;
using testing::TempDir;

constexpr std::uint32_t kPartitions = 4;
constexpr std::int64_t kSecond = 1'000'000;
constexpr std::int64_t kMinute = 60 * kSecond;
constexpr std::int64_t kHour = 60 * kMinute;
constexpr std::int64_t kDay = 24 * kHour;

flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> vec(flatbuffers::FlatBufferBuilder& f,
                                                           const std::string& s) {
  return f.CreateVector(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

struct World {
  TempDir dir;
  std::unique_ptr<ledger::LogStore> log;
  std::unique_ptr<ledger::KeyStore> keys;
  ManualClock clock;
  World() {
    auto ledger = testing::open_test_ledger(dir.sub("log"), kPartitions);
    log = std::move(ledger.log);
    keys = std::move(ledger.keys);
  }
  std::unique_ptr<ProjectionStore> projections(const std::string& name) {
    return ProjectionStore::open(dir.sub(name), kPartitions, default_projections()).value();
  }
  // Builds and appends one event; returns its position.
  template <typename F>
  ledger::Position emit(const std::string& subject, F&& body) {
    clock.advance_micros(1'000'000);
    ledger::EventBuilder b(keys.get(), {subject, subject, "r", clock.now_micros(),
                                        std::string("192.0.2.1"), std::string("ua")});
    auto bytes = body(b);
    const ByteView v(bytes);
    const auto p = ledger::partition_for(subject, kPartitions);
    const auto r = log->append(p, std::span<const ByteView>(&v, 1)).value();
    return {p, r.first};
  }
  // An event built by hand (no sealed fields), so tests can set Source.ip_hash, which
  // EventBuilder does not fill yet.
  using Body = std::function<std::pair<schema::Event, flatbuffers::Offset<void>>(
      flatbuffers::FlatBufferBuilder&)>;
  ledger::Position raw(const std::string& subject, const Body& body,
                       const std::string& ip_hash = "") {
    clock.advance_micros(1'000'000);
    flatbuffers::FlatBufferBuilder f;
    std::array<std::uint8_t, 16> id{};
    const auto n = ++raw_events;
    for (int i = 0; i < 8; ++i) id[i] = static_cast<std::uint8_t>(n >> (8 * i));
    const schema::EventId eid(flatbuffers::span<const std::uint8_t, 16>(id.data(), 16));
    const auto [type, offset] = body(f);
    const auto source = ip_hash.empty() ? 0 : schema::CreateSource(f, 0, 0, vec(f, ip_hash));
    const auto subj = f.CreateString(subject);
    schema::FinishEnvelopeBuffer(f, schema::CreateEnvelope(f, 1, &eid, clock.now_micros(), subj,
                                                           subj, 0, source, type, offset));
    const ByteView v(f.GetBufferPointer(), f.GetSize());
    const auto p = ledger::partition_for(subject, kPartitions);
    const auto r = log->append(p, std::span<const ByteView>(&v, 1)).value();
    return {p, r.first};
  }
  std::uint64_t raw_events = 0;
  ledger::Position start_session(const std::string& user, const std::string& sid,
                                 const std::string& family, const std::string& token,
                                 bool remember_me = false) {
    return raw(user, [&](auto& f) {
      return std::pair(schema::Event::SessionStarted,
                       schema::CreateSessionStarted(f, f.CreateString(sid), f.CreateString(family),
                                                    vec(f, token), remember_me)
                           .Union());
    });
  }
  ledger::Position refresh(const std::string& user, const std::string& sid,
                           const std::string& family, const std::string& previous,
                           const std::string& next) {
    return raw(user, [&](auto& f) {
      return std::pair(schema::Event::TokenRefreshed,
                       schema::CreateTokenRefreshed(f, f.CreateString(sid), f.CreateString(family),
                                                    vec(f, previous), vec(f, next))
                           .Union());
    });
  }
  ledger::Position reuse(const std::string& user, const std::string& sid, const std::string& family,
                         const std::string& token) {
    return raw(user, [&](auto& f) {
      return std::pair(schema::Event::RefreshTokenReuseDetected,
                       schema::CreateRefreshTokenReuseDetected(
                           f, f.CreateString(sid), f.CreateString(family), vec(f, token))
                           .Union());
    });
  }
  ledger::Position revoke(const std::string& user, const std::string& sid) {
    return raw(user, [&](auto& f) {
      return std::pair(
          schema::Event::SessionRevoked,
          schema::CreateSessionRevoked(f, f.CreateString(sid), f.CreateString("admin")).Union());
    });
  }
  ledger::Position login_failed(const std::string& user, const std::string& email_hash,
                                const std::string& ip_hash) {
    return raw(
        user,
        [&](auto& f) {
          return std::pair(
              schema::Event::LoginFailed,
              schema::CreateLoginFailed(f, vec(f, email_hash), f.CreateString("bad_password"), 1)
                  .Union());
        },
        ip_hash);
  }
  ledger::Position otp_failed(const std::string& user) {
    return raw(user, [&](auto& f) {
      return std::pair(schema::Event::OtpFailed, schema::CreateOtpFailed(f, 1).Union());
    });
  }
  // A signed request of `user`'s device (jkt "jkt-" + user) with proof `jti`: accepted
  // (ExclusiveActionValidated with its replay key) or refused.
  ledger::Position dpop(const std::string& user, const std::string& jti, bool validated) {
    return raw(user, [&](auto& f) { return dpop_body(f, user, jti, validated); });
  }
  static std::pair<schema::Event, flatbuffers::Offset<void>> dpop_body(
      flatbuffers::FlatBufferBuilder& f, const std::string& user, const std::string& jti,
      bool validated) {
    if (validated) {
      return std::pair(schema::Event::ExclusiveActionValidated,
                       schema::CreateExclusiveActionValidated(
                           f, f.CreateString("ex-1"), f.CreateString("pay"), f.CreateString(jti), 0,
                           vec(f, replay_key("jkt-" + user, jti)))
                           .Union());
    }
    return std::pair(
        schema::Event::ExclusiveRequestRejected,
        schema::CreateExclusiveRequestRejected(
            f, f.CreateString("ex-1"), f.CreateString("replay_detected"), f.CreateString(jti))
            .Union());
  }
  ledger::Position register_user(const std::string& id, const std::string& email_hash) {
    return emit(id, [&](ledger::EventBuilder& b) {
      const auto email = b.seal("email", id + "@example.com").value();
      const auto pw =
          b.seal("password_hash", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").value();
      const auto hash = b.fbb().CreateVector(
          reinterpret_cast<const std::uint8_t*>(email_hash.data()), email_hash.size());
      return b
          .finish(schema::CreateUserRegistered(b.fbb(), email, hash, pw, b.fbb().CreateString("v1"),
                                               false))
          .value();
    });
  }
  ledger::Position simple(const std::string& id, schema::Event type) {
    return emit(id, [&](ledger::EventBuilder& b) -> Bytes {
      auto& f = b.fbb();
      switch (type) {
        case schema::Event::EmailVerified:
          return b.finish(schema::CreateEmailVerified(f)).value();
        case schema::Event::SubjectErased:
          return b.finish(schema::CreateSubjectErased(f, f.CreateString("gdpr"))).value();
        case schema::Event::PasswordChanged: {
          const auto pw = b.seal("password_hash", "$argon2id$new").value();
          return b.finish(schema::CreatePasswordChanged(f, pw, true)).value();
        }
        default:
          return b.finish(schema::CreateCheckIn(f, f.CreateString("s"))).value();
      }
    });
  }
  ledger::Position lock(const std::string& id, std::int64_t until, bool admin) {
    return emit(id, [&](ledger::EventBuilder& b) {
      return b
          .finish(schema::CreateAccountLocked(b.fbb(), b.fbb().CreateString("5 failures"), until,
                                              admin))
          .value();
    });
  }
  ledger::Position unlock(const std::string& id) {
    return emit(id, [&](ledger::EventBuilder& b) {
      return b.finish(schema::CreateAccountUnlocked(b.fbb(), true)).value();
    });
  }
  ledger::Position logout(const std::string& id, const std::string& session, bool all) {
    return emit(id, [&](ledger::EventBuilder& b) {
      return b.finish(schema::CreateLoggedOut(b.fbb(), b.fbb().CreateString(session), all)).value();
    });
  }
  ledger::Position pay(const std::string& id, const std::string& payment, std::int64_t cents) {
    return emit(id, [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      const auto desc = b.seal("description", "Order " + payment).value();
      const std::string idem = "idem-" + payment;
      const auto idem_hash =
          f.CreateVector(reinterpret_cast<const std::uint8_t*>(idem.data()), idem.size());
      return b
          .finish(schema::CreatePaymentCreated(f, f.CreateString(payment), idem_hash, cents,
                                               f.CreateString("EUR"), desc, f.CreateString("{}")))
          .value();
    });
  }
  ledger::Position pay_status(const std::string& id, const std::string& payment,
                              const std::string& status) {
    return emit(id, [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b
          .finish(schema::CreatePaymentStatusChanged(
              f, f.CreateString(payment), f.CreateString(status), f.CreateString("evt-1")))
          .value();
    });
  }
  ledger::Position role(const std::string& id, const std::string& name, bool granted) {
    return emit(id, [&](ledger::EventBuilder& b) {
      return b.finish(schema::CreateRoleGranted(b.fbb(), b.fbb().CreateString(name), granted))
          .value();
    });
  }
  ledger::Position issue_token(const std::string& id, bool reset, const std::string& hash,
                               std::int64_t expires_at) {
    return raw(id, [&](auto& f) {
      if (reset) {
        return std::pair(schema::Event::PasswordResetRequested,
                         schema::CreatePasswordResetRequested(f, vec(f, hash), expires_at).Union());
      }
      return std::pair(schema::Event::EmailVerificationIssued,
                       schema::CreateEmailVerificationIssued(f, vec(f, hash), expires_at).Union());
    });
  }
  ledger::Position use_token(const std::string& id, bool reset, const std::string& hash) {
    return raw(id, [&](auto& f) {
      if (reset) {
        return std::pair(schema::Event::PasswordReset,
                         schema::CreatePasswordReset(f, vec(f, hash)).Union());
      }
      return std::pair(schema::Event::EmailVerified,
                       schema::CreateEmailVerified(f, vec(f, hash)).Union());
    });
  }
  ledger::Position otp(const std::string& id, const std::string& hash, std::int64_t expires_at,
                       bool reauth = false) {
    return raw(id, [&](auto& f) {
      return std::pair(
          schema::Event::OtpIssued,
          schema::CreateOtpIssued(f, vec(f, hash), expires_at,
                                  reauth ? schema::OtpPurpose::Reauth : schema::OtpPurpose::Login)
              .Union());
    });
  }
  ledger::Position otp_verified(const std::string& id, bool reauth = false) {
    return raw(id, [&](auto& f) {
      return std::pair(schema::Event::OtpVerified,
                       schema::CreateOtpVerified(
                           f, reauth ? schema::OtpPurpose::Reauth : schema::OtpPurpose::Login)
                           .Union());
    });
  }
  ledger::Position failures(const std::string& id, std::uint32_t consecutive) {
    return raw(id, [&](auto& f) {
      return std::pair(schema::Event::LoginFailed,
                       schema::CreateLoginFailed(f, vec(f, "eh" + id),
                                                 f.CreateString("bad_password"), consecutive)
                           .Union());
    });
  }
  ledger::Position login_ok(const std::string& id) {
    return raw(id, [&](auto& f) {
      return std::pair(schema::Event::LoginSucceeded,
                       schema::CreateLoginSucceeded(f, f.CreateString("s")).Union());
    });
  }
  ledger::Position reauth(const std::string& id, const std::string& reauth_id,
                          std::int64_t expires_at) {
    return raw(id, [&](auto& f) {
      return std::pair(schema::Event::ReauthGranted,
                       schema::CreateReauthGranted(f, f.CreateString(reauth_id), expires_at,
                                                   f.CreateString("otp"))
                           .Union());
    });
  }
  ledger::Position policy(const std::string& level) {
    return raw("system", [&](auto& f) {
      return std::pair(
          schema::Event::PolicyChanged,
          schema::CreatePolicyChanged(f, f.CreateString("password"), f.CreateString(level))
              .Union());
    });
  }
};

nlohmann::json user(ProjectionStore& p, const std::string& id) {
  const auto v = p.get(kUsersCf, id).value();
  return v ? nlohmann::json::parse(*v) : nlohmann::json();
}

TEST(Projections, UsersFollowRegistrationVerificationRolesAndErasure) {
  World w;
  auto p = w.projections("proj");
  w.register_user("u1", "hash-of-u1");
  w.register_user("u2", "hash-of-u2");
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_EQ(user(*p, "u1")["status"], "pending_verification");
  EXPECT_EQ(p->get(kUsersByEmailCf, "hash-of-u1").value(), "u1");

  w.simple("u1", schema::Event::EmailVerified);
  w.role("u1", "premium", true);
  w.role("u1", "admin", true);
  w.role("u1", "premium", false);
  ASSERT_TRUE(p->catch_up(*w.log));
  auto u1 = user(*p, "u1");
  EXPECT_EQ(u1["status"], "active");
  EXPECT_TRUE(u1["email_verified"].get<bool>());
  EXPECT_EQ(u1["roles"], nlohmann::json::array({"admin"}));

  const auto changed = w.simple("u1", schema::Event::PasswordChanged);
  ASSERT_TRUE(p->catch_up(*w.log));
  // The sealed password hash opens with the id of the event that sealed it.
  u1 = user(*p, "u1");
  Bytes sealed, event_id;
  ASSERT_TRUE(ledger::crypto::base64_decode(u1["password_hash_sealed"].get<std::string>(), sealed));
  ASSERT_TRUE(ledger::from_hex(u1["password_event_id"].get<std::string>(), event_id));
  const auto opened = w.keys->open_field("u1", event_id, "password_hash", sealed);
  ASSERT_TRUE(opened);
  EXPECT_EQ(std::string(opened.value().begin(), opened.value().end()), "$argon2id$new");
  (void)changed;

  w.simple("u2", schema::Event::SubjectErased);
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_EQ(user(*p, "u2")["status"], "erased");
  EXPECT_FALSE(p->get(kUsersByEmailCf, "hash-of-u2").value()) << "erased users are not findable";
}

TEST(Projections, AuditIndexPointsBackToTheRecordAndItsHash) {
  World w;
  auto p = w.projections("proj");
  const auto reg = w.register_user("alice", "h");
  const auto ver = w.simple("alice", schema::Event::EmailVerified);
  w.register_user("bob", "h2");
  ASSERT_TRUE(p->catch_up(*w.log));
  const auto rows = p->scan(kAuditBySubjectCf, audit_subject_prefix("alice")).value();
  ASSERT_EQ(rows.size(), 2u);
  const auto first = decode_audit_subject_key(rows[0].first).value();
  EXPECT_EQ(first.subject, "alice");
  EXPECT_EQ(first.position, reg);
  EXPECT_EQ(rows[0].second, "UserRegistered");
  EXPECT_EQ(decode_audit_subject_key(rows[1].first).value().position, ver);
  EXPECT_LT(first.time_micros, decode_audit_subject_key(rows[1].first).value().time_micros);
  // From the index back to the record and its chain hash.
  const auto rec = w.log
                       ->read_range(first.position.partition, first.position.seq,
                                    ledger::Seq{first.position.seq.value + 1})
                       .value();
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].hash, ledger::chain_hash(first.position.partition, first.position.seq,
                                            ledger::Hash{}, rec[0].event));
  EXPECT_EQ(p->scan(kAuditByTimeCf, "").value().size(), 3u);
}

// Retention (design card; issue 16): a chained RetentionApplied step removes the audit entries
// of the records it covers, in both indexes, and nothing else; under another subject it is inert.
TEST(Projections, RetentionStepsRemoveTheAuditEntriesOfPrunedRecordsOnly) {
  World w;
  auto p = w.projections("proj");
  const auto reg = w.register_user("alice", "h");
  const auto ver = w.simple("alice", schema::Event::EmailVerified);
  w.register_user("bob", "h2");
  auto step = [&](const std::string& subject, ledger::Position from, ledger::Seq below) {
    return w.raw(subject, [&](auto& f) {
      return std::pair(schema::Event::RetentionApplied,
                       schema::CreateRetentionApplied(f, f.CreateString("r1"), from.partition.value,
                                                      from.seq.value, below.value, 0, 90)
                           .Union());
    });
  };
  // Under a subject that is not retention's: nothing goes.
  step("mallory", reg, ledger::Seq{reg.seq.value + 1});
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_EQ(p->scan(kAuditBySubjectCf, audit_subject_prefix("alice")).value().size(), 2u);
  const auto total = p->scan(kAuditByTimeCf, "").value().size();
  // Alice's registration goes; her verification (after it in the same partition, or elsewhere)
  // stays unless the step covers it.
  step(std::string(ledger::kRetentionSubject), reg, ledger::Seq{reg.seq.value + 1});
  ASSERT_TRUE(p->catch_up(*w.log));
  const auto alice = p->scan(kAuditBySubjectCf, audit_subject_prefix("alice")).value();
  ASSERT_EQ(alice.size(), 1u);
  EXPECT_EQ(decode_audit_subject_key(alice[0].first).value().position, ver);
  EXPECT_EQ(p->scan(kAuditByTimeCf, "").value().size(), total);  // -1 removed, +1 the step
  const auto by_time = p->scan(kAuditByTimeCf, "").value();
  for (const auto& [k, v] : by_time) {
    EXPECT_NE(decode_audit_time_key(k).value().position, reg);
  }
  EXPECT_EQ(p->scan(kAuditByPositionCf, "").value().size(), total);
}

// Spec 004 FR-012 (lockout) and FR-016 (logout revokes): the access read models.
TEST(Projections, LockoutsAndRevocationsFollowTheirEvents) {
  World w;
  auto p = w.projections("proj");
  w.register_user("u", "hu");
  const auto locked_at = w.clock.now_micros();
  w.lock("u", locked_at + 1'800'000'000, false);  // 30 minutes
  w.lock("v", 0, true);                           // until an admin unlocks
  w.lock("anon:beef", 0, true);                   // an unknown email's stand-in admin lock
  const auto anon_at = w.clock.now_micros();
  ASSERT_TRUE(p->catch_up(*w.log));
  const auto lu = p->get(kLockoutsCf, "u").value();
  ASSERT_TRUE(lu);
  EXPECT_TRUE(is_locked(*lu, locked_at + 60'000'000));
  EXPECT_FALSE(is_locked(*lu, locked_at + 1'900'000'000)) << "a timed lock ends by itself";
  EXPECT_TRUE(is_locked(*p->get(kLockoutsCf, "v").value(), locked_at + 365LL * 86'400'000'000));
  const auto anon = p->get(kLockoutsCf, "anon:beef").value();
  ASSERT_TRUE(anon);
  const AccessProjection access;
  EXPECT_TRUE(is_locked(*anon, anon_at + kAnonAdminLockKeptMicros - 1'000'000))
      << "an unknown email's admin lock holds like an account's";
  EXPECT_FALSE(is_locked(*anon, anon_at + kAnonAdminLockKeptMicros))
      << "but nobody can unlock it, so it ends by itself after a day";
  EXPECT_TRUE(access.expired(kLockoutsCf, "anon:beef", *anon, anon_at + kAnonAdminLockKeptMicros));
  EXPECT_FALSE(access.expired(kLockoutsCf, "v", *p->get(kLockoutsCf, "v").value(),
                              locked_at + 365LL * 86'400'000'000));
  w.unlock("v");
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_FALSE(p->get(kLockoutsCf, "v").value());

  w.logout("u", "s-1", false);
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_TRUE(p->get(kRevokedSessionsCf, "s-1").value());
  EXPECT_FALSE(p->get(kRevocationCutoffsCf, "u").value()) << "one session, not all";
  w.logout("u", "s-2", true);
  const auto cutoff_at = w.clock.now_micros();
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_EQ(decode_cutoff(*p->get(kRevocationCutoffsCf, "u").value()), cutoff_at);
  w.simple("u", schema::Event::PasswordChanged);  // revokes other sessions: cutoff moves on
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_GT(decode_cutoff(*p->get(kRevocationCutoffsCf, "u").value()), cutoff_at);
}

// Spec 003 payment data isolation (US5, FR-001/002): every payment is read under its owner, so
// another owner's id reads exactly like a missing one; status changes go into the history.
TEST(Projections, PaymentsAreKeptPerOwnerWithTheirIdempotencyKeysAndHistory) {
  World w;
  auto p = w.projections("proj");
  w.pay("alice", "pay-1", 1999);
  w.pay("alice", "pay-2", 500);
  w.pay("bob", "pay-3", 700);
  w.pay_status("alice", "pay-1", "succeeded");
  w.pay_status("bob", "pay-1", "refunded");  // not bob's: must change nothing
  ASSERT_TRUE(p->catch_up(*w.log));
  const auto first = payment(*p, "alice", "pay-1").value();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->amount, 1999);
  EXPECT_EQ(first->currency, "EUR");
  EXPECT_EQ(first->status, "succeeded");
  ASSERT_EQ(first->history.size(), 2u);
  EXPECT_EQ(first->history[0].status, "pending");
  EXPECT_EQ(first->history[1].status, "succeeded");
  EXPECT_EQ(first->history[1].webhook_id, "evt-1");
  EXPECT_FALSE(first->description.empty());
  EXPECT_FALSE(payment(*p, "bob", "pay-1").value());
  EXPECT_EQ(payment_owner(*p, "pay-1").value(), "alice");
  const auto mine = payments_page(*p, "alice", "", "", 10).value();
  ASSERT_EQ(mine.rows.size(), 2u);
  EXPECT_EQ(mine.rows[0].id, "pay-2");  // newest first
  EXPECT_EQ(mine.next_cursor, "");
  EXPECT_EQ(payments_page(*p, "bob", "", "", 10).value().rows.size(), 1u);
  const auto kept = idempotent_payment(*p, "alice", "idem-pay-2", 0).value();
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->payment_id, "pay-2");
  EXPECT_FALSE(idempotent_payment(*p, "bob", "idem-pay-2", 0).value());
  // Kept 24 h (API.md), then gone for readers and for cleanup.
  EXPECT_FALSE(idempotent_payment(*p, "alice", "idem-pay-2", kept->expires_at).value());
  EXPECT_GT(p->cleanup(kept->expires_at).value(), 0u);
}

TEST(Projections, PaymentPagesFollowTheCursorAndFilterByStatus) {
  World w;
  auto p = w.projections("proj");
  for (int i = 0; i < 5; ++i) w.pay("alice", "pay-" + std::to_string(i), 100 + i);
  w.pay_status("alice", "pay-1", "failed");
  w.pay_status("alice", "pay-3", "failed");
  ASSERT_TRUE(p->catch_up(*w.log));
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    const auto got = payments_page(*p, "alice", "", cursor, 2).value();
    for (const auto& r : got.rows) seen.push_back(r.id);
    cursor = got.next_cursor;
    if (cursor.empty()) break;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"pay-4", "pay-3", "pay-2", "pay-1", "pay-0"}));
  const auto failed = payments_page(*p, "alice", "failed", "", 10).value();
  ASSERT_EQ(failed.rows.size(), 2u);
  EXPECT_EQ(failed.rows[0].id, "pay-3");
  EXPECT_FALSE(payments_page(*p, "alice", "", "zz", 10));
  EXPECT_FALSE(payments_page(*p, "alice", "", "00", 10));
}

// Outgoing notifications (issue 15): a delivery is due when queued, due again after a failure
// that is not final, ended by its first outcome (a repeated report changes nothing), and a
// failed one is pending again, for one manual attempt, after an admin's retry.
TEST(Projections, WebhookDeliveriesFollowTheirAttemptsAndTheFirstOutcomeWins) {
  World w;
  auto p = w.projections("proj");
  const auto raw = [&](const std::string& subject, auto make) {
    w.emit(subject, [&](ledger::EventBuilder& b) { return b.finish(make(b.fbb())).value(); });
  };
  raw("whe_1", [](flatbuffers::FlatBufferBuilder& f) {
    return schema::CreateWebhookEndpointRegistered(f, f.CreateString("whe_1"),
                                                   f.CreateString("https://hooks.example/x"),
                                                   f.CreateString("payment.succeeded"));
  });
  raw("alice", [](flatbuffers::FlatBufferBuilder& f) {
    return schema::CreateWebhookDeliveryQueued(f, f.CreateString("msg_1"), f.CreateString("whe_1"),
                                               f.CreateString("payment.succeeded"),
                                               f.CreateString("{}"));
  });
  ASSERT_TRUE(p->catch_up(*w.log));
  const auto now = w.clock.now_micros();
  auto due = due_webhook_deliveries(*p, now, 10, {}).value();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].subject, "alice");
  const auto later = now + 60'000'000;
  raw("bob", [&](flatbuffers::FlatBufferBuilder& f) {  // not bob's delivery: ignored
    return schema::CreateWebhookDelivered(f, f.CreateString("msg_1"), 1, 200);
  });
  raw("alice", [&](flatbuffers::FlatBufferBuilder& f) {
    return schema::CreateWebhookDeliveryFailed(f, f.CreateString("msg_1"), 1, 503,
                                               f.CreateString("http 503"), false, later);
  });
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_TRUE(due_webhook_deliveries(*p, later - 1, 10, {}).value().empty());
  EXPECT_EQ(due_webhook_deliveries(*p, later, 10, {}).value().size(), 1u);
  raw("alice", [&](flatbuffers::FlatBufferBuilder& f) {
    return schema::CreateWebhookDeliveryFailed(f, f.CreateString("msg_1"), 2, 500,
                                               f.CreateString("http 500"), true, 0);
  });
  raw("alice", [&](flatbuffers::FlatBufferBuilder& f) {  // a second report: changes nothing
    return schema::CreateWebhookDelivered(f, f.CreateString("msg_1"), 3, 200);
  });
  ASSERT_TRUE(p->catch_up(*w.log));
  auto d = webhook_delivery(*p, "msg_1").value();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->state, "failed");
  EXPECT_EQ(d->attempts, 2u);
  EXPECT_EQ(d->last_status, 500u);
  EXPECT_TRUE(due_webhook_deliveries(*p, later * 2, 10, {}).value().empty());
  EXPECT_EQ(webhook_deliveries_page(*p, "failed", "", 10).value().deliveries.size(), 1u);
  raw("alice", [](flatbuffers::FlatBufferBuilder& f) {
    return schema::CreateWebhookDeliveryRetried(f, f.CreateString("msg_1"));
  });
  ASSERT_TRUE(p->catch_up(*w.log));
  d = webhook_delivery(*p, "msg_1").value();
  EXPECT_EQ(d->state, "pending");
  EXPECT_TRUE(d->manual);
  EXPECT_EQ(due_webhook_deliveries(*p, w.clock.now_micros(), 10, {}).value().size(), 1u);
  raw("alice", [&](flatbuffers::FlatBufferBuilder& f) {
    return schema::CreateWebhookDelivered(f, f.CreateString("msg_1"), 3, 204);
  });
  raw("whe_1", [](flatbuffers::FlatBufferBuilder& f) {
    return schema::CreateWebhookEndpointDisabled(f, f.CreateString("whe_1"),
                                                 f.CreateString("gone"));
  });
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_EQ(webhook_delivery(*p, "msg_1").value()->state, "delivered");
  const auto endpoints = webhook_endpoints(*p).value();
  ASSERT_EQ(endpoints.size(), 1u);
  EXPECT_FALSE(endpoints[0].enabled);
  EXPECT_EQ(endpoints[0].disabled_reason, "gone");
  EXPECT_TRUE(endpoints[0].subscribed("payment.succeeded"));
  // Delivered entries go after 7 days.
  const auto done = webhook_delivery(*p, "msg_1").value()->done_at;
  EXPECT_EQ(p->cleanup(done + kWebhookDeliveredKeepMicros).value(), 2u);
  EXPECT_FALSE(webhook_delivery(*p, "msg_1").value());
}

nlohmann::json session(ProjectionStore& p, const std::string& id) {
  const auto v = p.get(kSessionsCf, id).value();
  return v ? nlohmann::json::parse(*v) : nlohmann::json();
}
RefreshTokenStatus::State token_state(ProjectionStore& p, const std::string& hash,
                                      std::int64_t now) {
  return refresh_token_status(p, hash, at(now)).value().state;
}
std::vector<std::string> active_ids(ProjectionStore& p, const std::string& user, std::int64_t now) {
  std::vector<std::string> out;
  const auto rows = active_sessions(p, user, at(now)).value();
  for (const auto& [id, value] : rows) out.push_back(id);
  return out;
}
using State = RefreshTokenStatus::State;

// API.md: sessions end after 24 h idle (7 d with rememberMe); a refresh rotates the token and
// moves the idle expiry; logout ends one session, a password reset ends them all.
// Overwrites one stored value behind the store's back (a bad disk, a bug in an older build):
// the store must be closed; the next open sees the value.
void corrupt_value(const std::string& path, const std::string& cf, const std::string& key,
                   const std::string& value) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), path, cfs, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == cf) {
      EXPECT_TRUE(db->Put(rocksdb::WriteOptions(), handles[i], key, value).ok());
    }
  }
  for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
}

// A sessions row that does not decode is reported as corruption when read by id, and left out
// of the lists (GET /v1/me/sessions, ledgerctl replay): one bad row must not hide the others.
TEST(Projections, ACorruptSessionRowIsLeftOutOfTheListsAndRefusedById) {
  World w;
  const auto path = w.dir.sub("corrupt-session");
  w.start_session("u", "s1", "f1", "t1");
  w.start_session("u", "s2", "f2", "t2");
  const auto now = w.clock.now_micros();
  {
    auto p = ProjectionStore::open(path, kPartitions, default_projections()).value();
    ASSERT_TRUE(p->catch_up(*w.log));
    ASSERT_EQ(active_ids(*p, "u", now), (std::vector<std::string>{"s1", "s2"}));
  }
  corrupt_value(path, kSessionsCf, "s1", "{not json");
  auto p = ProjectionStore::open(path, kPartitions, default_projections()).value();
  EXPECT_EQ(active_ids(*p, "u", now), (std::vector<std::string>{"s2"}));
  const auto all = all_active_sessions(*p, at(now)).value();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].first, "s2");
  const auto s1 = session_row(*p, "s1");
  ASSERT_FALSE(s1);
  EXPECT_EQ(s1.error(), ledger::Errc::corruption);
  EXPECT_TRUE(session_row(*p, "s2").value().has_value());
}

TEST(Projections, SessionsFollowStartRefreshLogoutAndIdleExpiry) {
  World w;
  auto p = w.projections("proj");
  w.start_session("u", "s1", "f1", "t1");
  const auto started = w.clock.now_micros();
  w.start_session("u", "s2", "f2", "r1", /*remember_me=*/true);
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_EQ(active_ids(*p, "u", started + kHour), (std::vector<std::string>{"s1", "s2"}));
  EXPECT_EQ(active_ids(*p, "u", started + kDay + kMinute), (std::vector<std::string>{"s2"}))
      << "24 h idle ends a session; remember-me lasts 7 d";
  EXPECT_EQ(token_state(*p, "t1", started), State::current);

  w.clock.advance_micros(20 * kHour);
  w.refresh("u", "s1", "f1", "t1", "t2");
  const auto refreshed = w.clock.now_micros();
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_EQ(token_state(*p, "t1", refreshed), State::rotated);
  EXPECT_EQ(token_state(*p, "t2", refreshed), State::current);
  const auto s1 = session(*p, "s1");
  EXPECT_EQ(s1["last_seen"], refreshed);
  EXPECT_EQ(s1["idle_expires_at"], refreshed + kSessionIdleMicros);
  EXPECT_TRUE(is_session_active(s1.dump(), started + kDay + kMinute)) << "the refresh kept it";
  EXPECT_EQ(refresh_token_status(*p, "t2", at(refreshed)).value().session_id, "s1");
  EXPECT_EQ(token_state(*p, "t2", refreshed + kRefreshTokenMicros), State::unknown)
      << "refresh tokens expire after 7 d";

  w.logout("u", "s1", false);
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_EQ(session(*p, "s1")["state"], "logged_out");
  EXPECT_EQ(active_ids(*p, "u", w.clock.now_micros()), (std::vector<std::string>{"s2"}));
  w.emit("u", [&](ledger::EventBuilder& b) {
    const auto pw = b.seal("password_hash", "$argon2id$reset").value();
    return b.finish(schema::CreatePasswordReset(b.fbb(), vec(b.fbb(), "tok"), pw)).value();
  });
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_TRUE(active_ids(*p, "u", w.clock.now_micros()).empty());
  EXPECT_EQ(session(*p, "s2")["end_reason"], "password_reset");
  EXPECT_EQ(session(*p, "s1")["end_reason"], "logout") << "the first end is the one recorded";
}

// API.md /v1/auth/refresh: reusing a rotated token revokes its whole family.
TEST(Projections, RefreshTokenReuseRevokesTheWholeFamilyOnly) {
  World w;
  auto p = w.projections("proj");
  w.start_session("u", "s1", "f1", "t1");
  w.refresh("u", "s1", "f1", "t1", "t2");
  w.refresh("u", "s1", "f1", "t2", "t3");
  w.start_session("u", "s2", "f2", "x1");
  w.reuse("u", "s1", "f1", "t1");
  ASSERT_TRUE(p->catch_up(*w.log));
  const auto now = w.clock.now_micros();
  for (const char* t : {"t1", "t2", "t3"}) EXPECT_EQ(token_state(*p, t, now), State::revoked) << t;
  EXPECT_EQ(session(*p, "s1")["state"], "revoked");
  EXPECT_EQ(session(*p, "s1")["end_reason"], "refresh_token_reuse");
  EXPECT_EQ(token_state(*p, "x1", now), State::current);
  EXPECT_EQ(active_ids(*p, "u", now), (std::vector<std::string>{"s2"}));
}

// A partition applies only its own subjects' state: otherwise partitions applied in parallel
// would race, and one subject could end another's sessions.
TEST(Projections, EventsOfOneSubjectNeverEndAnotherSubjectsSession) {
  World w;
  auto p = w.projections("proj");
  w.start_session("alice", "s-a", "fa", "ta");
  w.revoke("mallory", "s-a");
  w.reuse("mallory", "s-a", "fa", "ta");
  w.refresh("mallory", "s-a", "fa", "ta", "tm");
  ASSERT_TRUE(p->catch_up(*w.log));
  const auto now = w.clock.now_micros();
  EXPECT_EQ(active_ids(*p, "alice", now), (std::vector<std::string>{"s-a"}));
  EXPECT_EQ(token_state(*p, "ta", now), State::current);
  EXPECT_EQ(token_state(*p, "tm", now), State::unknown);
}

// API.md: 5 login attempts per IP per 15 minutes; OTP >5 failures / 15 min, >10 / 1 h.
TEST(Projections, RateLimitCountersSlideByEmailIpAndUserAcrossPartitions) {
  World w;
  auto p = w.projections("proj");
  const auto a = testing::subject_in(0, kPartitions), b = testing::subject_in(1, kPartitions);
  const auto t0 = w.clock.now_micros();
  for (int i = 0; i < 3; ++i) w.login_failed(a, "email-a", "ip-1");
  for (int i = 0; i < 2; ++i) w.login_failed(b, "email-b", "ip-1");
  w.login_failed(b, "email-b", "");  // no IP hash: counts for the email and user only
  for (int i = 0; i < 4; ++i) w.otp_failed(a);
  ASSERT_TRUE(p->catch_up(*w.log));
  const auto now = w.clock.now_micros();
  const auto window = 15 * kMinute;
  EXPECT_EQ(rate_count(*p, kScopeLoginAttemptIp, "ip-1", at(now), Micros(window)).value(), 5u)
      << "one IP's attempts add up over the partitions of every subject";
  EXPECT_EQ(rate_count(*p, kScopeLoginFailureEmail, "email-b", at(now), Micros(window)).value(),
            3u);
  EXPECT_EQ(rate_count(*p, kScopeLoginFailureUser, a, at(now), Micros(window)).value(), 3u);
  EXPECT_EQ(rate_count(*p, kScopeOtpFailureUser, a, at(now), Micros(window)).value(), 4u);
  EXPECT_EQ(rate_count(*p, kScopeOtpFailureUser, b, at(now), Micros(window)).value(), 0u);
  // The window slides: 15 minutes after a's last failure only b's two count, then none.
  const auto third = t0 + 3'000'000;
  EXPECT_EQ(
      rate_count(*p, kScopeLoginAttemptIp, "ip-1", at(third + window - 1), Micros(window)).value(),
      3u);
  EXPECT_EQ(
      rate_count(*p, kScopeLoginAttemptIp, "ip-1", at(third + window), Micros(window)).value(), 2u);
  EXPECT_EQ(rate_count(*p, kScopeLoginAttemptIp, "ip-1", at(now + window), Micros(window)).value(),
            0u);
  EXPECT_EQ(rate_count(*p, kScopeOtpFailureUser, a, at(now + 30 * kMinute), Micros(kHour)).value(),
            4u);
  EXPECT_EQ(rate_count(*p, kScopeOtpFailureUser, a, at(now), Micros(2 * kHour)).error(),
            ledger::Errc::invalid_argument)
      << "windows longer than what is kept would undercount";
  // Retry-After of a reached limit: when the limit-th newest time leaves the window, merged
  // over the partitions (a's three, then b's two).
  const auto at_limit = [&](std::uint32_t limit) {
    return rate_window(*p, kScopeLoginAttemptIp, "ip-1", at(now), Micros(window), limit).value();
  };
  EXPECT_EQ(at_limit(6).below_limit_at, TimePoint{}) << "a limit not reached frees nothing";
  EXPECT_EQ(at_limit(6).count, 5u);
  EXPECT_EQ(micros_of(at_limit(3).below_limit_at), third + window)
      << "below 3 once a's third (the third newest) leaves";
  EXPECT_EQ(rate_count(*p, kScopeLoginAttemptIp, "ip-1", at_limit(3).below_limit_at, Micros(window))
                .value(),
            2u);
  EXPECT_EQ(micros_of(at_limit(5).below_limit_at), third - 2'000'000 + window)
      << "the oldest, a's first";
  EXPECT_EQ(micros_of(at_limit(1).below_limit_at), third + 2'000'000 + window)
      << "limit 1: when the newest (b's second) leaves";
  // Keys are the keyed hashes from the events, never the subject's plaintext data.
  const auto rows = p->scan(kRateLimitsCf, "").value();
  ASSERT_FALSE(rows.empty());
  for (const auto& [key, value] : rows) {
    EXPECT_EQ(key.find("@"), std::string::npos);
  }
}

// 002 "Per-email validation rate limit": otp.validation.user counts every validation, failed
// or successful; "Account lockout after repeated failures": an admin unlock empties the failure
// count, so the account does not lock again at the next wrong code.
TEST(Projections, OtpValidationsCountFailuresAndSuccessesAndUnlockResetsOtpFailures) {
  World w;
  auto p = w.projections("proj");
  const auto a = testing::subject_in(0, kPartitions), b = testing::subject_in(1, kPartitions);
  for (int i = 0; i < 3; ++i) w.otp_failed(a);
  w.otp_verified(a);
  w.otp_verified(a, true);
  w.otp_failed(b);
  ASSERT_TRUE(p->catch_up(*w.log));
  auto now = w.clock.now_micros();
  EXPECT_EQ(rate_count(*p, kScopeOtpValidationUser, a, at(now), Micros(15 * kMinute)).value(), 5u);
  EXPECT_EQ(rate_count(*p, kScopeOtpFailureUser, a, at(now), Micros(kHour)).value(), 3u);
  EXPECT_EQ(rate_count(*p, kScopeOtpValidationUser, b, at(now), Micros(15 * kMinute)).value(), 1u);
  EXPECT_EQ(rate_count(*p, kScopeOtpValidationUser, a, at(now + 15 * kMinute + kMinute),
                       Micros(15 * kMinute))
                .value(),
            0u)
      << "the window slides";

  w.unlock(a);
  ASSERT_TRUE(p->catch_up(*w.log));
  now = w.clock.now_micros();
  EXPECT_EQ(rate_count(*p, kScopeOtpFailureUser, a, at(now), Micros(kHour)).value(), 0u);
  EXPECT_EQ(rate_count(*p, kScopeOtpValidationUser, a, at(now), Micros(15 * kMinute)).value(), 5u)
      << "an unlock does not lift the validation rate limit";
  EXPECT_EQ(rate_count(*p, kScopeOtpFailureUser, b, at(now), Micros(kHour)).value(), 1u)
      << "only the unlocked user's count";
  w.otp_failed(a);
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_EQ(
      rate_count(*p, kScopeOtpFailureUser, a, at(w.clock.now_micros()), Micros(kHour)).value(), 1u);
}

TEST(Projections, RateLimitCountsSaturateAtTheSampleCap) {
  World w;
  auto p = w.projections("proj");
  for (std::size_t i = 0; i < kRateMaxSamples + 10; ++i) {
    w.dpop("u", "j" + std::to_string(i), true);
    w.clock.advance_micros(-999'000);  // 1 ms apart: a burst
  }
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_EQ(
      rate_count(*p, kScopeExclusiveUser, "u", at(w.clock.now_micros() + kSecond), Micros(kMinute))
          .value(),
      kRateMaxSamples);
}

// 000 FR-03, RFC 9449 §11.1: an accepted proof is single-use for 5 minutes, keyed by
// SHA-256(jkt || jti); a refused one spends nothing.
TEST(Projections, ReplayCacheRemembersAcceptedProofsForFiveMinutesFR03) {
  World w;
  auto p = w.projections("proj");
  w.dpop("u", "jti-1", true);
  const auto first = w.clock.now_micros();
  w.dpop("u", "jti-2", false);  // refused: a forger cannot fill the cache or burn a jti
  w.clock.advance_micros(3 * kMinute);
  w.dpop("u", "jti-1", true);  // a second acceptance must not extend the window
  ASSERT_TRUE(p->catch_up(*w.log));
  const auto key = replay_key("jkt-u", "jti-1");
  EXPECT_EQ(key.size(), 32u);
  EXPECT_TRUE(seen_proof(*p, key, first + 4 * kMinute).value());
  EXPECT_FALSE(seen_proof(*p, replay_key("jkt-u", "jti-2"), first + kMinute).value());
  EXPECT_FALSE(seen_proof(*p, replay_key("jkt-v", "jti-1"), first + kMinute).value())
      << "another device's key";
  EXPECT_FALSE(seen_proof(*p, key, first + kJtiTtlMicros).value());
  EXPECT_FALSE(seen_proof(*p, replay_key("jkt-u", "jti-3"), first).value());
}

// 000 FR-03: 100 validations/s for 300 s is 30,000 live proofs of one user; every one is still
// remembered at the end of the window (nothing is evicted before it expires), also after the
// store is reopened (a restart).
TEST(Projections, ReplayCacheHoldsThirtyThousandLiveProofsOfOneUserFR03) {
  World w;
  constexpr int kLive = 30'000;
  const auto partition = ledger::partition_for("u", kPartitions);
  const auto t0 = w.clock.now_micros();
  std::vector<flatbuffers::FlatBufferBuilder> built;
  for (int i = 0; i < kLive; ++i) {
    auto& f = built.emplace_back();
    std::array<std::uint8_t, 16> id{};
    for (int b = 0; b < 4; ++b) id[b] = static_cast<std::uint8_t>(i >> (8 * b));
    id[15] = 0x7e;
    const schema::EventId eid(flatbuffers::span<const std::uint8_t, 16>(id.data(), 16));
    const auto [type, offset] = World::dpop_body(f, "u", "j" + std::to_string(i), true);
    const auto subj = f.CreateString("u");
    schema::FinishEnvelopeBuffer(
        f, schema::CreateEnvelope(f, 1, &eid, t0 + i * 10'000, subj, subj, 0, 0, type, offset));
    if (built.size() == 1000 || i == kLive - 1) {
      std::vector<ByteView> views;
      for (auto& b : built) views.emplace_back(b.GetBufferPointer(), b.GetSize());
      ASSERT_TRUE(w.log->append(partition, views));
      built.clear();
    }
  }
  const auto last = t0 + (kLive - 1) * 10'000;
  {
    auto p = w.projections("proj");
    ASSERT_TRUE(p->catch_up(*w.log));
    EXPECT_EQ(p->cleanup(last).value(), 0u) << "nothing live is cleaned up";
  }
  auto p = w.projections("proj");
  int seen = 0;
  for (int i = 0; i < kLive; ++i) {
    seen += seen_proof(*p, replay_key("jkt-u", "j" + std::to_string(i)), last).value() ? 1 : 0;
  }
  EXPECT_EQ(seen, kLive);
  EXPECT_FALSE(seen_proof(*p, replay_key("jkt-u", "j0"), t0 + kJtiTtlMicros).value());
}

// Cleanup deletes what is over and nothing that is still in force, whatever the projection.
TEST(Projections, CleanupDeletesExpiredEntriesAndKeepsLiveOnes) {
  World w;
  auto p = w.projections("proj");
  const auto t0 = w.clock.now_micros();
  w.lock("timed", t0 + 30 * kMinute, false);
  w.lock("admin", 0, true);
  w.start_session("u", "s1", "f1", "t1");
  w.login_failed("u", "email-u", "ip-u");
  w.dpop("u", "jti", true);
  ASSERT_TRUE(p->catch_up(*w.log));
  const auto count = [&](const char* cf) { return p->scan(cf, "").value().size(); };

  EXPECT_EQ(p->cleanup(t0 + 4 * kMinute).value(), 0u) << "nothing is over yet";
  EXPECT_EQ(p->cleanup(t0 + 6 * kMinute).value(), 1u);
  EXPECT_EQ(count(kReplayJtiCf), 0u);
  EXPECT_TRUE(p->get(kLockoutsCf, "timed").value()) << "a lockout still in force stays";

  // The timed lock and 4 rate counters (login failures by email, user and IP; DPoP use).
  EXPECT_EQ(p->cleanup(t0 + 2 * kHour).value(), 1u + 4u);
  EXPECT_FALSE(p->get(kLockoutsCf, "timed").value());
  EXPECT_TRUE(p->get(kLockoutsCf, "admin").value()) << "an admin lock never expires";
  EXPECT_EQ(count(kRateLimitsCf), 0u);
  EXPECT_EQ(count(kSessionsCf), 1u);
  // An ended session's row outlives its end by the longest access token's life, so that the
  // Authenticator still finds it, and refuses the token, until the token has expired anyway.
  const auto row = p->get(kSessionsCf, "s1").value();
  ASSERT_TRUE(row);
  const auto ends = session_ends_at(*row);
  const SessionsProjection sessions;
  EXPECT_FALSE(sessions.expired(kSessionsCf, "s1", *row, ends + kEndedSessionKept.count() - 1));
  EXPECT_TRUE(sessions.expired(kSessionsCf, "s1", *row, ends + kEndedSessionKept.count()));

  // A bounded run deletes at most max_deletes and leaves the rest for the next one.
  EXPECT_EQ(p->cleanup(t0 + 8 * kDay, 3).value(), 3u);
  EXPECT_EQ(p->cleanup(t0 + 8 * kDay).value(), 1u);
  EXPECT_EQ(count(kSessionsCf) + count(kSessionsByUserCf) + count(kRefreshTokensCf) +
                count(kRefreshFamiliesCf),
            0u);
  EXPECT_TRUE(p->get(kLockoutsCf, "admin").value());
  EXPECT_EQ(count(kUsersCf) + count(kAuditByTimeCf) > 0, true) << "non-expiring state stays";
}

// Cleanup takes the apply lock per batch and re-reads its candidates: an apply() running at
// the same time on other keys is never blocked for long, and nothing live is lost.
TEST(Projections, CleanupConcurrentWithApplyLosesNothingLive) {
  World w;
  auto p = w.projections("proj");
  for (int i = 0; i < 600; ++i) w.dpop("old", "j" + std::to_string(i), true);
  ASSERT_TRUE(p->catch_up(*w.log));
  w.clock.advance_micros(10 * kMinute);
  const auto cut = w.clock.now_micros();
  for (int i = 0; i < 200; ++i)
    w.dpop("new" + std::to_string(i % 7), "k" + std::to_string(i), true);
  std::thread cleaner([&] { EXPECT_EQ(p->cleanup(cut).value(), 600u); });
  ASSERT_TRUE(p->catch_up(*w.log, 3));
  cleaner.join();
  for (int i = 0; i < 200; ++i) {
    EXPECT_TRUE(
        seen_proof(*p, replay_key("jkt-new" + std::to_string(i % 7), "k" + std::to_string(i)), cut)
            .value());
  }
  EXPECT_EQ(p->scan(kReplayJtiCf, "").value().size(), 200u);
}

TEST(Projections, ResumeFromStoredPositionsAfterReopen) {
  World w;
  for (int i = 0; i < 20; ++i) w.register_user("user" + std::to_string(i), "h" + std::to_string(i));
  {
    auto p = w.projections("proj");
    EXPECT_EQ(p->catch_up(*w.log).value(), 20u);
    EXPECT_EQ(p->lag(*w.log), 0u);
  }
  for (int i = 0; i < 5; ++i) w.simple("user" + std::to_string(i), schema::Event::EmailVerified);
  auto p = w.projections("proj");
  EXPECT_EQ(p->lag(*w.log), 5u);
  EXPECT_EQ(p->catch_up(*w.log).value(), 5u) << "only the new records are applied";
  EXPECT_EQ(user(*p, "user3")["status"], "active");
}

// Issue 16: a node whose projections start below a retention cut is seeded with a copy of a
// running node's: the copy holds the state and positions of one moment, the store's latest
// write (memtable and WAL included), not what is applied later; opened elsewhere it catches up
// from there to the same state.
TEST(Projections, ACopyMadeWhileTheStoreIsInUseHoldsOneMomentAndCatchesUpFromItsPositions) {
  World w;
  for (int i = 0; i < 20; ++i) w.register_user("user" + std::to_string(i), "h" + std::to_string(i));
  auto live = w.projections("live");
  ASSERT_EQ(live->catch_up(*w.log).value(), 20u);
  const auto at_copy = live->digest().value();
  const auto copied =
      ProjectionStore::copy(w.dir.sub("live"), w.dir.sub("snapshot"), w.dir.sub("scratch"));
  ASSERT_TRUE(copied) << copied.error().message();
  EXPECT_GT(copied.value().entries, 20u);
  std::uint64_t applied = 0;
  for (const auto& [partition, next] : copied.value().positions) applied += next;
  EXPECT_EQ(applied, 20u) << "the positions of the copied moment";
  EXPECT_FALSE(std::filesystem::exists(w.dir.sub("scratch")));
  EXPECT_EQ(
      ProjectionStore::copy(w.dir.sub("live"), w.dir.sub("snapshot"), w.dir.sub("scratch")).error(),
      ledger::Errc::invalid_argument)
      << "never over an existing directory";
  for (int i = 0; i < 5; ++i) w.simple("user" + std::to_string(i), schema::Event::EmailVerified);
  ASSERT_EQ(live->catch_up(*w.log).value(), 5u);

  auto seeded = ProjectionStore::open(w.dir.sub("snapshot"), kPartitions, default_projections());
  ASSERT_TRUE(seeded) << seeded.error().message();
  EXPECT_EQ(seeded.value()->digest().value(), at_copy);
  EXPECT_EQ(seeded.value()->lag(*w.log), 5u) << "positions as of the copy";
  EXPECT_EQ(seeded.value()->catch_up(*w.log).value(), 5u);
  EXPECT_EQ(seeded.value()->digest().value(), live->digest().value());
}

TEST(Projections, ApplyRefusesGapsAndReplays) {
  World w;
  const auto a = w.register_user("x", "hx");
  w.simple("x", schema::Event::EmailVerified);
  auto p = w.projections("proj");
  auto recs = w.log->read_range(a.partition, ledger::Seq{0}, ledger::Seq{10}).value();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(p->apply(a.partition, std::span(recs).subspan(1)).error(),
            ledger::Errc::invalid_argument);
  ASSERT_TRUE(p->apply(a.partition, std::span(recs).first(1)));
  EXPECT_EQ(p->apply(a.partition, std::span(recs).first(1)).error(), ledger::Errc::invalid_argument)
      << "a record is never applied twice";
  ASSERT_TRUE(p->apply(a.partition, std::span(recs).subspan(1)));
  EXPECT_EQ(p->position(a.partition).value, 2u);
}

// 004 FR-007, FR-025, FR-028 (single-use, time-limited links), 002 (one live OTP per user),
// 004 FR-012 (consecutive failures), 002 step-up grants, 004 FR-004 (admin-set policy level).
TEST(Projections, IdentityStateFollowsTokensCodesFailuresGrantsAndPolicy) {
  World w;
  auto p = w.projections("p");
  const auto t0 = w.clock.now_micros();
  w.register_user("ann", "eh-ann");
  w.issue_token("ann", false, "verify-1", t0 + kDay);
  w.issue_token("ann", false, "verify-2", t0 + kDay);  // a resend: only the newest link works
  w.issue_token("ann", true, "reset-1", t0 + kHour);
  w.otp("ann", "code-1", t0 + 5 * kMinute);
  w.otp("ann", "code-2", t0 + 5 * kMinute);  // replaces code-1
  w.otp("ann", "step-1", t0 + 5 * kMinute, /*reauth=*/true);
  w.failures("ann", 1);
  w.failures("ann", 2);
  w.failures("anon:abcd", 1);  // an unknown email counts like an account, for a day
  w.reauth("ann", "grant-1", t0 + 5 * kMinute);
  ASSERT_TRUE(p->catch_up(*w.log));

  using TokenState = OneTimeToken::State;
  EXPECT_EQ(one_time_token(*p, "verify-1").value()->state, TokenState::superseded);
  const auto v2 = one_time_token(*p, "verify-2").value();
  ASSERT_TRUE(v2);
  EXPECT_EQ(v2->state, TokenState::live);
  EXPECT_EQ(v2->user, "ann");
  EXPECT_EQ(v2->purpose, kPurposeVerifyEmail);
  EXPECT_EQ(v2->expires_at, t0 + kDay);
  EXPECT_EQ(one_time_token(*p, "reset-1").value()->purpose, kPurposePasswordReset);
  EXPECT_FALSE(one_time_token(*p, "never-issued").value());
  EXPECT_EQ(otp_code(*p, "ann", "login").value()->code_hash, "code-2");
  EXPECT_EQ(otp_code(*p, "ann", "reauth").value()->code_hash, "step-1");
  const auto now = w.clock.now_micros();
  EXPECT_EQ(login_failures(*p, "ann", at(now)).value(), 2u);
  EXPECT_EQ(login_failures(*p, "ann", at(now + 365 * kDay)).value(), 2u)
      << "an account's never ends";
  EXPECT_EQ(login_failures(*p, "anon:abcd", at(now)).value(), 1u);
  EXPECT_EQ(login_failures(*p, "anon:abcd", at(now + kDay - kMinute)).value(), 1u);
  EXPECT_EQ(login_failures(*p, "anon:abcd", at(now + kDay)).value(), 0u)
      << "an unknown email's count ends a day after its last failure";
  const IdentityProjection identity;
  const auto anon_row = p->get(kLoginFailuresCf, "anon:abcd").value();
  const auto ann_row = p->get(kLoginFailuresCf, "ann").value();
  ASSERT_TRUE(anon_row && ann_row);
  EXPECT_TRUE(identity.expired(kLoginFailuresCf, "anon:abcd", *anon_row, now + kDay))
      << "cleanup drops it then";
  EXPECT_FALSE(identity.expired(kLoginFailuresCf, "ann", *ann_row, now + 365 * kDay));
  EXPECT_EQ(reauth_grant_user(*p, "grant-1", at(w.clock.now_micros())).value(), "ann");
  EXPECT_FALSE(reauth_grant_user(*p, "grant-1", at(t0 + 5 * kMinute)).value()) << "expired";
  EXPECT_EQ(password_policy_level(*p).value(), "basic");

  w.use_token("ann", false, "verify-2");
  w.use_token("ann", true, "reset-1");  // a reset also clears the failure count
  w.otp_verified("ann");
  w.policy("high");
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_EQ(one_time_token(*p, "verify-2").value()->state, TokenState::used);
  EXPECT_EQ(one_time_token(*p, "reset-1").value()->state, TokenState::used);
  EXPECT_FALSE(otp_code(*p, "ann", "login").value());
  EXPECT_TRUE(otp_code(*p, "ann", "reauth").value()) << "purposes are separate";
  EXPECT_EQ(login_failures(*p, "ann", at(w.clock.now_micros())).value(), 0u);
  EXPECT_EQ(password_policy_level(*p).value(), "high");

  w.failures("ann", 1);
  w.login_ok("ann");
  w.issue_token("ann", false, "verify-3", w.clock.now_micros() + kDay);
  w.otp("ann", "code-3", w.clock.now_micros() + 5 * kMinute);
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_EQ(login_failures(*p, "ann", at(w.clock.now_micros())).value(), 0u)
      << "a success ends the run of failures";
  w.simple("ann", schema::Event::SubjectErased);
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_FALSE(one_time_token(*p, "verify-3").value()) << "an erased user's link opens nothing";
  EXPECT_FALSE(otp_code(*p, "ann", "login").value());
  EXPECT_FALSE(otp_code(*p, "ann", "reauth").value());

  // A used token stays a week past its expiry (410, not 400), then cleanup removes it.
  const auto t = w.clock.now_micros();
  EXPECT_TRUE(one_time_token(*p, "verify-2").value());
  ASSERT_TRUE(p->cleanup(t0 + kDay + kSpentTokenKeepMicros + 1));
  EXPECT_FALSE(one_time_token(*p, "verify-2").value());
  EXPECT_GT(t0 + kDay + kSpentTokenKeepMicros, t);
}

// API.md "Protected resources": a secret belongs to its creator; only the owner's events move
// it; erasing the owner removes it.
TEST(Projections, SecretsFollowTheirOwnersEventsOnly) {
  World w;
  auto p = w.projections("p");
  const auto created = w.emit("ann", [&](ledger::EventBuilder& b) {
    const auto share = b.seal("server_share", "share-bytes").value();
    return b.finish(schema::CreateSecretCreated(b.fbb(), b.fbb().CreateString("sec_1"), share))
        .value();
  });
  (void)created;
  auto check_in = [&](const std::string& who) {
    return w.emit(who, [&](ledger::EventBuilder& b) {
      return b.finish(schema::CreateCheckIn(b.fbb(), b.fbb().CreateString("sec_1"))).value();
    });
  };
  check_in("mallory");
  ASSERT_TRUE(p->catch_up(*w.log));
  auto s = secret(*p, "sec_1").value();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->owner, "ann");
  EXPECT_EQ(s->last_check_in, s->created_at) << "another subject's check-in changes nothing";
  ledger::Bytes event_id;
  ASSERT_TRUE(ledger::from_hex(s->event_id_hex, event_id));
  const auto opened = w.keys->open_field(
      "ann", event_id, "server_share",
      ledger::ByteView(reinterpret_cast<const std::uint8_t*>(s->server_share_sealed.data()),
                       s->server_share_sealed.size()));
  ASSERT_TRUE(opened);
  EXPECT_EQ(std::string(opened.value().begin(), opened.value().end()), "share-bytes");
  check_in("ann");
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_GT(secret(*p, "sec_1").value()->last_check_in, s->created_at);
  w.simple("ann", schema::Event::SubjectErased);
  ASSERT_TRUE(p->catch_up(*w.log));
  EXPECT_FALSE(secret(*p, "sec_1").value());
}

TEST(Projections, RebuildFromTheLogIsByteIdenticalToLiveApply) {
  World w;
  auto live = w.projections("live");
  std::mt19937 rng(1234);
  std::vector<std::string> ids;
  struct Sess {
    std::string user, id, family, token;
    int rotations = 0;
  };
  std::vector<Sess> sessions;
  std::uint64_t cleaned = 0;
  // A mixed workload touching every projection, applied live in small uneven steps as ledgerd
  // would after each command. Time jumps now and then, so jtis, rate windows, timed lockouts
  // and sessions expire mid-workload, and the live store is cleaned at random moments (at the
  // current time, which no later event precedes), as ledgerd's timer would.
  for (int step = 0; step < 400; ++step) {
    const auto pick = rng() % 16;
    if (ids.empty() || pick < 3) {
      ids.push_back("u" + std::to_string(step));
      w.register_user(ids.back(), "eh" + ids.back());
    } else {
      const auto& id = ids[rng() % ids.size()];
      switch (pick) {
        case 3:
          w.simple(id, schema::Event::EmailVerified);
          break;
        case 4:
          w.role(id, rng() % 2 ? "admin" : "premium", rng() % 3 != 0);
          break;
        case 5:
          w.simple(id, schema::Event::PasswordChanged);
          break;
        case 6:
          if (rng() % 4 == 0) w.simple(id, schema::Event::SubjectErased);
          break;
        case 7:
          w.lock(id, w.clock.now_micros() + 30 * kMinute, rng() % 5 == 0);
          break;
        case 8:
          if (rng() % 2) {
            w.unlock(id);
          } else if (!sessions.empty() && rng() % 2) {
            const auto& s = sessions[rng() % sessions.size()];
            w.logout(s.user, s.id, rng() % 2 == 0);
          } else {
            w.logout(id, "s" + std::to_string(step), rng() % 2 == 0);
          }
          break;
        case 9: {
          const auto sid = "s" + std::to_string(step);
          sessions.push_back({id, sid, "f" + sid, "t" + sid + ".0"});
          w.start_session(id, sid, "f" + sid, sessions.back().token, rng() % 2 == 0);
          break;
        }
        case 10:
          if (!sessions.empty()) {
            auto& s = sessions[rng() % sessions.size()];
            const auto next = s.id + "." + std::to_string(++s.rotations);
            if (rng() % 6 == 0) {
              w.reuse(s.user, s.id, s.family, "t" + s.id + ".0");
            } else if (rng() % 6 == 0) {
              w.revoke(s.user, s.id);
            } else {
              w.refresh(s.user, s.id, s.family, s.token, "t" + next);
              s.token = "t" + next;
            }
          }
          break;
        case 11:
          w.login_failed(id, "eh" + id, "ip-" + std::to_string(rng() % 3));
          break;
        case 12:
          switch (rng() % 6) {
            case 0:
              w.otp_failed(id);
              break;
            case 1:
              w.issue_token(id, rng() % 2 == 0, "tok-" + std::to_string(step),
                            w.clock.now_micros() + (rng() % 2 ? kHour : kDay));
              break;
            case 2:
              w.use_token(id, rng() % 2 == 0, "tok-" + std::to_string(step - 1 - rng() % 8));
              break;
            case 3:
              w.otp(id, "code-" + std::to_string(step), w.clock.now_micros() + 5 * kMinute,
                    rng() % 2 == 0);
              break;
            case 4:
              w.reauth(id, "grant-" + std::to_string(step), w.clock.now_micros() + 5 * kMinute);
              break;
            default:
              w.failures(id, 1 + rng() % 5);
              break;
          }
          break;
        case 13:
          w.dpop(id, "jti-" + std::to_string(rng() % 20), rng() % 3 != 0);
          break;
        case 14:
          w.pay(id, "pay-" + std::to_string(step), 100 + step);
          break;
        default:
          w.simple(id, schema::Event::CheckIn);
      }
    }
    switch (rng() % 40) {
      case 0:
        w.clock.advance_micros(7 * kMinute);
        break;
      case 1:
        w.clock.advance_micros(2 * kHour);
        break;
      case 2:
        w.clock.advance_micros(2 * kDay);
        break;
      default:
        break;
    }
    if (rng() % 3 == 0) {
      ASSERT_TRUE(live->catch_up(*w.log, 1 + rng() % 7));
    }
    if (rng() % 25 == 0) {
      ASSERT_TRUE(live->catch_up(*w.log));
      cleaned += live->cleanup(w.clock.now_micros(), 1 + rng() % 50).value();
    }
  }
  ASSERT_GT(cleaned, 0u) << "the workload must exercise cleanup to test it";
  ASSERT_TRUE(live->catch_up(*w.log));
  auto rebuilt = w.projections("rebuilt");
  ASSERT_TRUE(rebuilt->catch_up(*w.log, 4096));
  const auto t = w.clock.now_micros();
  // Every projection got state from the workload, so the digests cover all of them.
  for (const auto* cf : {kUsersCf, kAuditByTimeCf, kLockoutsCf, kPaymentsCf, kSessionsCf,
                         kRefreshTokensCf, kRateLimitsCf, kReplayJtiCf, kOneTimeTokensCf,
                         kOtpCodesCf, kLoginFailuresCf, kReauthGrantsCf}) {
    EXPECT_FALSE(rebuilt->scan(cf, "", 1).value().empty()) << cf;
  }
  // Live entries agree at every later instant, although only the live store was cleaned.
  for (const auto at : {t, t + 10 * kMinute, t + 3 * kHour, t + 3 * kDay}) {
    EXPECT_EQ(live->digest(at).value(), rebuilt->digest(at).value()) << format_rfc3339(at);
  }
  EXPECT_NE(live->digest().value(), rebuilt->digest().value())
      << "the rebuilt store still holds what the live one cleaned up";
  // Both cleaned at the same instant: byte-identical, expired entries included.
  ASSERT_TRUE(live->cleanup(t));
  EXPECT_GT(rebuilt->cleanup(t).value(), 0u);
  const auto a = live->digest().value(), b = rebuilt->digest().value();
  EXPECT_EQ(a, b);
  // And the digest is not trivially equal: one more event changes it.
  w.simple(ids.front(), schema::Event::CheckIn);
  ASSERT_TRUE(live->catch_up(*w.log));
  EXPECT_NE(live->digest().value(), b);
}

}  // namespace
}  // namespace sechex::projections
