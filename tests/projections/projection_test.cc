// Projections: catch-up, resume from stored positions, the users and audit read models, and
// the core rule that rebuilding from the log gives byte-identical state.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "ledger/key_store.h"
#include "projections/access.h"
#include "projections/audit.h"
#include "projections/payments.h"
#include "projections/store.h"
#include "projections/users.h"
#include "support/test_util.h"

namespace sechex::projections {
namespace {

using ledger::Bytes;
using ledger::ByteView;
using testing::TempDir;

constexpr std::uint32_t kPartitions = 4;

struct World {
  TempDir dir;
  std::unique_ptr<ledger::LogStore> log;
  std::unique_ptr<ledger::KeyStore> keys;
  ManualClock clock;
  World() {
    ledger::LogOptions o;
    o.path = dir.sub("log");
    o.create_if_missing = true;
    o.partitions = kPartitions;
    log = ledger::LogStore::open(o).value();
    keys = ledger::KeyStore::open(
               *log, ledger::Kek::from_base64(ledger::crypto::base64_encode(Bytes(32, 5))).value())
               .value();
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

// Spec 004 FR-012 (lockout) and FR-016 (logout revokes): the access read models.
TEST(Projections, LockoutsAndRevocationsFollowTheirEvents) {
  World w;
  auto p = w.projections("proj");
  w.register_user("u", "hu");
  const auto locked_at = w.clock.now_micros();
  w.lock("u", locked_at + 1'800'000'000, false);  // 30 minutes
  w.lock("v", 0, true);                           // until an admin unlocks
  ASSERT_TRUE(p->catch_up(*w.log));
  const auto lu = p->get(kLockoutsCf, "u").value();
  ASSERT_TRUE(lu);
  EXPECT_TRUE(is_locked(*lu, locked_at + 60'000'000));
  EXPECT_FALSE(is_locked(*lu, locked_at + 1'900'000'000)) << "a timed lock ends by itself";
  EXPECT_TRUE(is_locked(*p->get(kLockoutsCf, "v").value(), locked_at + 365LL * 86'400'000'000));
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

// Spec 003 payment data isolation: every payment row is keyed under its owner.
TEST(Projections, PaymentsAreKeptPerOwnerWithTheirIdempotencyKeys) {
  World w;
  auto p = w.projections("proj");
  w.pay("alice", "pay-1", 1999);
  w.pay("alice", "pay-2", 500);
  w.pay("bob", "pay-3", 700);
  w.pay_status("alice", "pay-1", "succeeded");
  w.pay_status("bob", "pay-1", "refunded");  // not bob's: must change nothing
  ASSERT_TRUE(p->catch_up(*w.log));
  const auto alice = p->scan(kPaymentsCf, payment_owner_prefix("alice")).value();
  ASSERT_EQ(alice.size(), 2u);
  const auto first = nlohmann::json::parse(alice[0].second);
  EXPECT_EQ(first["id"], "pay-1");
  EXPECT_EQ(first["amount_minor"], 1999);
  EXPECT_EQ(first["status"], "succeeded");
  EXPECT_EQ(p->scan(kPaymentsCf, payment_owner_prefix("bob")).value().size(), 1u);
  EXPECT_FALSE(p->get(kPaymentsCf, payment_owner_prefix("bob") + "pay-1").value());
  EXPECT_EQ(p->get(kPaymentsByIdempotencyCf, payment_owner_prefix("alice") + "idem-pay-2").value(),
            "pay-2");
  EXPECT_FALSE(
      p->get(kPaymentsByIdempotencyCf, payment_owner_prefix("bob") + "idem-pay-2").value());
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

TEST(Projections, RebuildFromTheLogIsByteIdenticalToLiveApply) {
  World w;
  auto live = w.projections("live");
  std::mt19937 rng(1234);
  std::vector<std::string> ids;
  // A mixed workload, applied live in small uneven steps as ledgerd would after each command.
  for (int step = 0; step < 300; ++step) {
    const auto pick = rng() % 10;
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
          w.lock(id, w.clock.now_micros() + 1'800'000'000, rng() % 5 == 0);
          break;
        case 8:
          if (rng() % 2) {
            w.unlock(id);
          } else {
            w.logout(id, "s" + std::to_string(step), rng() % 2 == 0);
          }
          break;
        default:
          w.simple(id, schema::Event::CheckIn);
      }
    }
    if (rng() % 3 == 0) {
      ASSERT_TRUE(live->catch_up(*w.log, 1 + rng() % 7));
    }
  }
  ASSERT_TRUE(live->catch_up(*w.log));
  auto rebuilt = w.projections("rebuilt");
  ASSERT_TRUE(rebuilt->catch_up(*w.log, 4096));
  const auto a = live->digest().value(), b = rebuilt->digest().value();
  EXPECT_EQ(a, b);
  // And the digest is not trivially equal: one more event changes it.
  w.simple(ids.front(), schema::Event::CheckIn);
  ASSERT_TRUE(live->catch_up(*w.log));
  EXPECT_NE(live->digest().value(), b);
}

}  // namespace
}  // namespace sechex::projections
