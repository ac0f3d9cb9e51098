// The command path: decisions of one partition are serialised from the first projection read to
// the last apply, so every decision sees the effects of all earlier ones (ARCHITECTURE.md: "5
// failures -> lock cannot be bypassed by parallel requests").
#include "api/app/commands.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <thread>

#include "projections/audit.h"
#include "support/forwarding_log.h"
#include "support/test_util.h"

namespace sechex::api {
namespace {

class CommandPathTest : public ::testing::Test {
 protected:
  CommandPathTest() {
    ledger::LogOptions lo;
    lo.path = dir_.sub("log");
    lo.partitions = 2;
    lo.create_if_missing = true;
    log_ = ledger::LogStore::open(lo).value();
    store_ = projections::ProjectionStore::open(dir_.sub("projections"), 2,
                                                projections::default_projections())
                 .value();
    commands_ = std::make_unique<CommandPath>(*log_, *store_);
  }

  // How many events the audit index holds for `subject`: the state decisions read.
  std::size_t seen(const std::string& subject) {
    return store_->scan(projections::kAuditBySubjectCf, projections::audit_subject_prefix(subject))
        .value()
        .size();
  }

  testing::TempDir dir_;
  std::unique_ptr<ledger::LogStore> log_;
  std::unique_ptr<projections::ProjectionStore> store_;
  std::unique_ptr<CommandPath> commands_;
};

std::string note_of(const ledger::Record& r) {
  return schemas::envelope_of(r.event.data())->event_as_CheckIn()->secret_id()->str();
}

TEST_F(CommandPathTest, ConcurrentCommandsOfOnePartitionEachSeeAllEarlierDecisions) {
  constexpr int kThreads = 6, kEach = 15;
  const std::string subject = "alice";
  const auto p = commands_->partition_for(subject);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        auto r = commands_->run(p, [&]() -> Result<std::vector<ledger::Bytes>> {
          // The decision records what it saw; a lost update would repeat a number.
          return std::vector<ledger::Bytes>{
              testing::make_event(subject, std::to_string(seen(subject)))};
        });
        ASSERT_TRUE(r) << r.error().message();
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto records = log_->read_range(p, ledger::Seq{0}, ledger::Seq{UINT64_MAX}).value();
  ASSERT_EQ(records.size(), static_cast<std::size_t>(kThreads * kEach));
  for (std::size_t i = 0; i < records.size(); ++i)
    EXPECT_EQ(note_of(records[i]), std::to_string(i));
  EXPECT_EQ(store_->lag(*log_), 0u);
}

TEST_F(CommandPathTest, ARefusingOrEmptyDecisionAppendsNothing) {
  const auto p = commands_->partition_for("bob");
  auto refused = commands_->run(
      p, []() -> Result<std::vector<ledger::Bytes>> { return ledger::Errc::invalid_argument; });
  EXPECT_EQ(refused.error(), ledger::Errc::invalid_argument);
  auto empty = commands_->run(
      p, []() -> Result<std::vector<ledger::Bytes>> { return std::vector<ledger::Bytes>{}; });
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty.value().empty());
  EXPECT_EQ(log_->head(p).next.value, 0u);
}

TEST_F(CommandPathTest, ReturnsTheAppendedRecordsWithTheirHashes) {
  const auto p = commands_->partition_for("carol");
  auto r = commands_->run(p, [] {
    return Result<std::vector<ledger::Bytes>>(std::vector<ledger::Bytes>{
        testing::make_event("carol", "a"), testing::make_event("carol", "b")});
  });
  ASSERT_TRUE(r);
  ASSERT_EQ(r.value().size(), 2u);
  EXPECT_EQ(r.value()[1].position.seq.value, 1u);
  EXPECT_EQ(r.value()[1].hash, log_->head(p).hash);
  EXPECT_EQ(note_of(r.value()[0]), "a");
}

TEST_F(CommandPathTest, RecordsAppendedBehindItsBackAreAppliedBeforeTheNextDecision) {
  // Something appended without applying (as after a crash between append and apply).
  testing::append_n(*log_, "dave", 3);
  const auto p = commands_->partition_for("dave");
  EXPECT_EQ(store_->lag(*log_), 3u);
  std::size_t saw = 99;
  ASSERT_TRUE(commands_->run(p, [&]() -> Result<std::vector<ledger::Bytes>> {
    saw = seen("dave");
    return std::vector<ledger::Bytes>{};
  }));
  EXPECT_EQ(saw, 3u);
  EXPECT_EQ(store_->lag(*log_), 0u);
}

TEST_F(CommandPathTest, RefusesAPartitionThisNodeDoesNotOwnWithoutDecidingOrAppending) {
  // Partition 1 belongs to another node: appending would fence its writer.
  CommandPath node(*log_, *store_,
                   PartitionOwnership::resolve(2, OwnershipFlags::parse("0", {}).value()).value());
  const auto theirs = testing::subject_in(1, 2);
  bool decided = false;
  auto refused = node.run(node.partition_for(theirs), [&]() -> Result<std::vector<ledger::Bytes>> {
    decided = true;
    return std::vector<ledger::Bytes>{testing::make_event(theirs)};
  });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), OwnershipErrc::not_owner);
  EXPECT_FALSE(decided);
  EXPECT_EQ(log_->head(ledger::Partition{1}).next.value, 0u);

  // Its own partition still takes commands, and every partition is still projected.
  const auto mine = testing::subject_in(0, 2);
  ASSERT_TRUE(node.run(node.partition_for(mine), [&]() -> Result<std::vector<ledger::Bytes>> {
    return std::vector<ledger::Bytes>{testing::make_event(mine)};
  }));
  EXPECT_EQ(log_->head(ledger::Partition{0}).next.value, 1u);
  testing::append_n(*log_, theirs, 2);  // as the owner's appends arrive through the log
  EXPECT_EQ(node.sync_all().value(), 2u);
  EXPECT_EQ(seen(theirs), 2u);
}

// A log whose reads from one chosen thread wait until released: a follower's read stuck on a
// moving Kafka leader.
class GatedLog : public testing::ForwardingLog {
 public:
  using ForwardingLog::ForwardingLog;
  void gate(std::thread::id reader) {
    std::lock_guard l(mu_);
    gated_ = reader;
  }
  void wait_until_gated_read_started() {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return waiting_; });
  }
  void release() {
    std::lock_guard l(mu_);
    gated_ = {};
    cv_.notify_all();
  }

  Result<std::vector<ledger::Record>> read_range(ledger::Partition p, ledger::Seq from,
                                                 ledger::Seq to, std::size_t max) const override {
    {
      std::unique_lock l(mu_);
      if (gated_ == std::this_thread::get_id()) {
        waiting_ = true;
        cv_.notify_all();
        cv_.wait(l, [&] { return gated_ != std::this_thread::get_id(); });
      }
    }
    return ForwardingLog::read_range(p, from, to, max);
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::thread::id gated_;
  mutable bool waiting_ = false;
};

// Found by the three-broker test: a follower read that waits on a moving leader held the
// partition, so the node's own commands of that partition waited (and timed out) behind it.
TEST_F(CommandPathTest, AFollowerReadingSlowlyDoesNotHoldUpCommandsAndAppliesNothingTwice) {
  const std::string subject = "erin";
  testing::append_n(*log_, subject, 3);  // another node's appends, not yet projected
  GatedLog gated(*log_);
  CommandPath node(gated, *store_);
  const auto p = node.partition_for(subject);

  std::promise<Result<std::uint64_t>> followed;
  std::promise<void> go;
  std::thread follower([&, started = go.get_future()] {
    started.wait();
    followed.set_value(node.follow(p));
  });
  gated.gate(follower.get_id());
  go.set_value();
  gated.wait_until_gated_read_started();

  // The command finishes while the follower's read is still waiting.
  auto command = std::async(std::launch::async, [&] {
    return node.run(p, [&]() -> Result<std::vector<ledger::Bytes>> {
      return std::vector<ledger::Bytes>{
          testing::make_event(subject, std::to_string(seen(subject)))};
    });
  });
  const bool finished = command.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  gated.release();
  follower.join();
  ASSERT_TRUE(finished) << "the command waited for the follower's read";
  auto ran = command.get();
  ASSERT_TRUE(ran) << ran.error().message();
  EXPECT_EQ(note_of(ran.value().front()), "3");  // it decided on all three earlier events

  // The follower's read is stale (from seq 0); it re-reads and applies nothing twice.
  auto f = followed.get_future().get();
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f.value(), 0u);
  EXPECT_EQ(seen(subject), 4u);
  EXPECT_EQ(store_->lag(*log_), 0u);
}

TEST_F(CommandPathTest, RunLockedAppliesWhatTheActionAppendedBeforeTheNextDecision) {
  const auto p = commands_->partition_for("frank");
  testing::append_n(*log_, "frank", 2);  // behind its back: applied before the action runs
  std::size_t seen_by_action = 99;
  ASSERT_TRUE(commands_->run_locked(p, [&]() -> Result<void> {
    seen_by_action = seen("frank");
    testing::append_n(*log_, "frank", 3);  // as KeyStore::erase appends
    return boost::outcome_v2::success();
  }));
  EXPECT_EQ(seen_by_action, 2u);
  EXPECT_EQ(seen("frank"), 5u);
  EXPECT_EQ(store_->lag(*log_), 0u);
  CommandPath other(
      *log_, *store_,
      PartitionOwnership::resolve(2, OwnershipFlags::parse("none", {}).value()).value());
  bool ran = false;
  EXPECT_EQ(other
                .run_locked(p,
                            [&]() -> Result<void> {
                              ran = true;
                              return boost::outcome_v2::success();
                            })
                .error(),
            OwnershipErrc::not_owner);
  EXPECT_FALSE(ran);
}

TEST_F(CommandPathTest, OwnsEveryPartitionByDefault) {
  EXPECT_TRUE(commands_->ownership().owns_all());
  EXPECT_EQ(commands_->ownership().partition_count(), 2u);
}

}  // namespace
}  // namespace sechex::api
