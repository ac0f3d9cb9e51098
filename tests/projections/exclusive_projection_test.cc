// The exclusive-mode projection (projections/exclusive.h): challenges are single-use whatever
// the attempt's fate, devices are enrolled once and removed by their owner, and a removed
// device's sessions end with it. Events are built as the commands build them (EventBuilder with
// sealed fields) and appended to a real log.
#include <gtest/gtest.h>

#include "ledger/event_builder.h"
#include "ledger/key_store.h"
#include "projections/exclusive.h"
#include "projections/store.h"
#include "support/test_util.h"

namespace sechex::projections {
namespace {

constexpr std::uint32_t kPartitions = 4;
constexpr std::int64_t kMinute = 60'000'000;

flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> vec(flatbuffers::FlatBufferBuilder& f,
                                                           const std::string& s) {
  return f.CreateVector(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

class ExclusiveProjectionTest : public ::testing::Test {
 protected:
  ExclusiveProjectionTest() {
    auto ledger = testing::open_test_ledger(dir_.sub("log"), kPartitions);
    log_ = std::move(ledger.log);
    keys_ = std::move(ledger.keys);
    store_ = ProjectionStore::open(dir_.sub("p"), kPartitions, default_projections()).value();
  }

  template <typename Body>
  void emit(const std::string& user, Body&& body) {
    clock_.advance_micros(1'000'000);
    ledger::EventBuilder b(keys_.get(),
                           {user, user, "r", clock_.now_micros(), std::nullopt, std::nullopt});
    auto bytes = body(b).value();
    const ledger::ByteView v(bytes);
    ASSERT_TRUE(log_->append(ledger::partition_for(user, kPartitions),
                             std::span<const ledger::ByteView>(&v, 1)));
    ASSERT_TRUE(store_->catch_up(*log_));
  }
  void challenge(const std::string& user, const std::string& hash, const std::string& raw) {
    emit(user, [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
      SECHEX_TRY(auto sealed, b.seal("challenge", raw));
      auto& f = b.fbb();
      return b.finish(schema::CreateExclusiveChallengeIssued(
          f, vec(f, hash), clock_.now_micros() + 5 * kMinute, sealed));
    });
  }
  void activate(const std::string& user, const std::string& device, const std::string& session,
                const std::string& challenge_hash) {
    emit(user, [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
      SECHEX_TRY(auto key, b.seal("device_key", "point-of-" + device));
      SECHEX_TRY(auto name, b.seal("device_name", "Ann's phone"));
      auto& f = b.fbb();
      return b.finish(schema::CreateExclusiveActivated(
          f, f.CreateString(session), f.CreateString("jkt-" + device), name,
          f.CreateString("packed"), clock_.now_micros() + 30 * kMinute, f.CreateString(device), key,
          vec(f, std::string(16, 'a')), f.CreateString("ab12"), vec(f, challenge_hash),
          f.CreateString("basic")));
    });
  }
  void rejected(const std::string& user, const std::string& challenge_hash) {
    emit(user, [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateExclusiveRequestRejected(
          f, f.CreateString(""), f.CreateString("attestation_failed:wrong_rp"), f.CreateString(""),
          vec(f, challenge_hash)));
    });
  }
  template <typename Create>
  void session_event(const std::string& user, Create&& create) {
    emit(user, [&](ledger::EventBuilder& b) { return b.finish(create(b.fbb())); });
  }
  TimePoint now() const { return clock_.now(); }

  testing::TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<ledger::LogStore> log_;
  std::unique_ptr<ledger::KeyStore> keys_;
  std::unique_ptr<ProjectionStore> store_;
};

TEST_F(ExclusiveProjectionTest, AChallengeIsLiveUntilUsedExpiredOrReplaced) {
  challenge("ann", "hash-1", "raw-1");
  auto live = live_challenge(*store_, "ann", now()).value();
  ASSERT_TRUE(live);
  EXPECT_EQ(std::string(live->hash.begin(), live->hash.end()), "hash-1");
  const auto opened =
      keys_->open_field("ann", live->sealed.event_id, "challenge", live->sealed.sealed);
  ASSERT_TRUE(opened);
  EXPECT_EQ(std::string(opened.value().begin(), opened.value().end()), "raw-1") << "sealed, opens";
  EXPECT_FALSE(live_challenge(*store_, "bob", now()).value()) << "bound to the user";
  EXPECT_FALSE(live_challenge(*store_, "ann", now() + std::chrono::minutes{5}).value())
      << "expired after 5 minutes";

  // A refused activation uses it up too; another hash does not.
  rejected("ann", "other-hash");
  EXPECT_TRUE(live_challenge(*store_, "ann", now()).value());
  rejected("ann", "hash-1");
  EXPECT_FALSE(live_challenge(*store_, "ann", now()).value()) << "single use, whatever the fate";

  challenge("ann", "hash-2", "raw-2");
  challenge("ann", "hash-3", "raw-3");
  live = live_challenge(*store_, "ann", now()).value();
  ASSERT_TRUE(live);
  EXPECT_EQ(std::string(live->hash.begin(), live->hash.end()), "hash-3") << "the newest replaces";
  activate("ann", "dev-1", "xs-1", "hash-3");
  EXPECT_FALSE(live_challenge(*store_, "ann", now()).value()) << "used by the activation";
}

TEST_F(ExclusiveProjectionTest, ActivationEnrollsTheDeviceOnceAndStartsASession) {
  challenge("ann", "h1", "r1");
  activate("ann", "dev-1", "xs-1", "h1");
  challenge("ann", "h2", "r2");
  activate("ann", "dev-1", "xs-2", "h2");  // the same device again: a new session only
  const auto devices = active_devices(*store_, "ann").value();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].id, "dev-1");
  EXPECT_EQ(devices[0].thumbprint, "jkt-dev-1");
  EXPECT_EQ(devices[0].format, "packed");
  EXPECT_EQ(devices[0].attestation_type, "basic");
  EXPECT_EQ(devices[0].aaguid_hex, "61616161616161616161616161616161");
  const auto key =
      keys_->open_field("ann", devices[0].key.event_id, "device_key", devices[0].key.sealed);
  ASSERT_TRUE(key);
  EXPECT_EQ(std::string(key.value().begin(), key.value().end()), "point-of-dev-1")
      << "000 FR-01: the key is stored sealed and opens under the user's key";

  const auto sessions = active_exclusive_sessions(*store_, "ann", now()).value();
  ASSERT_EQ(sessions.size(), 2u);
  EXPECT_EQ(sessions[0].id, "xs-2") << "newest first";
  EXPECT_EQ(sessions[0].jkt, "jkt-dev-1");
  EXPECT_TRUE(
      active_exclusive_sessions(*store_, "ann", now() + std::chrono::minutes{31}).value().empty())
      << "a session token lasts 30 minutes";
  EXPECT_TRUE(active_devices(*store_, "bob").value().empty());
}

TEST_F(ExclusiveProjectionTest, ValidationLockAndEndUpdateTheSessionAndTheFirstEndWins) {
  challenge("ann", "h1", "r1");
  activate("ann", "dev-1", "xs-1", "h1");
  session_event("ann", [&](auto& f) {
    return schema::CreateExclusiveActionValidated(f, f.CreateString("xs-1"), f.CreateString("pay"),
                                                  f.CreateString("jti-1"));
  });
  auto row = exclusive_session(*store_, "xs-1").value();
  ASSERT_TRUE(row);
  EXPECT_EQ(row->last_validated, clock_.now_micros());
  session_event("ann", [&](auto& f) {
    return schema::CreateExclusiveLocked(f, f.CreateString("xs-1"), f.CreateString("idle"));
  });
  session_event("ann", [&](auto& f) {
    return schema::CreateExclusiveEnded(f, f.CreateString("xs-1"), f.CreateString("user"));
  });
  row = exclusive_session(*store_, "xs-1").value();
  EXPECT_EQ(row->state, "locked");
  EXPECT_EQ(row->end_reason, "idle");
  EXPECT_FALSE(row->active_at(now()));
}

TEST_F(ExclusiveProjectionTest, RemovingADeviceEndsItsSessionsOnly) {
  challenge("ann", "h1", "r1");
  activate("ann", "dev-1", "xs-1", "h1");
  challenge("ann", "h2", "r2");
  activate("ann", "dev-2", "xs-2", "h2");
  session_event("ann", [&](auto& f) {
    return schema::CreateExclusiveDeviceRemoved(f, f.CreateString("dev-1"),
                                                f.CreateString("owner"));
  });
  const auto devices = active_devices(*store_, "ann").value();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].id, "dev-2");
  EXPECT_FALSE(device_row(*store_, "ann", "dev-1").value()->active);
  const auto sessions = active_exclusive_sessions(*store_, "ann", now()).value();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].id, "xs-2");
  EXPECT_EQ(exclusive_session(*store_, "xs-1").value()->end_reason, "device_removed");
}

TEST_F(ExclusiveProjectionTest, RowsExpireOnlyAfterTheirKeptWindowAndUnreadableOnesNever) {
  ExclusiveProjection p;
  const std::string challenge_row = R"({"expires_at":1000,"used":false})";
  EXPECT_FALSE(
      p.expired(kExclusiveChallengeCf, "ann", challenge_row, 1000 + kChallengeKeptMicros - 1));
  EXPECT_TRUE(p.expired(kExclusiveChallengeCf, "ann", challenge_row, 1000 + kChallengeKeptMicros));
  const std::string session_row = R"({"expires_at":1000,"state":"active"})";
  EXPECT_TRUE(
      p.expired(kExclusiveSessionsCf, "xs", session_row, 1000 + kExclusiveSessionKeptMicros));
  EXPECT_FALSE(p.expired(kExclusiveSessionsCf, "xs", "{not json", INT64_MAX));
  EXPECT_FALSE(p.expired(kExclusiveDevicesCf, "d", R"({"expires_at":0})", INT64_MAX))
      << "devices stay until removed";
}

}  // namespace
}  // namespace sechex::projections
