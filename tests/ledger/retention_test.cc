// Retention on the embedded store (design card: "retention jobs enforcing 90-day windows";
// ARCHITECTURE.md "Retention"): payloads below a cut become stubs, verification stays green and
// says where the cut is, tampering around the cut is told apart from pruning, and Merkle proofs
// made before the cut stay valid.
#include "ledger/retention.h"

#include <gtest/gtest.h>

#include "ledger/merkle.h"
#include "ledger/proof.h"
#include "ledger/verify.h"
#include "support/test_util.h"

namespace sechex::ledger {
namespace {

using testing::RawDb;
using testing::TempDir;

constexpr std::uint32_t kPartitions = 2;
constexpr std::uint32_t kP = 1;
constexpr int kRecords = 40;  // checkpoints every 8 records

class Retention : public ::testing::Test {
 protected:
  void SetUp() override {
    signer_ = std::make_unique<CheckpointSigner>(testing::make_signer("trusted"));
    ASSERT_TRUE(trusted_.add(signer_->verifier_key()));
    log_ = open_writer().value();
    subject_ = testing::subject_in(kP, kPartitions);
    testing::append_n(*log_, subject_, kRecords);
    testing::append_n(*log_, testing::subject_in(0, kPartitions), 5);
  }

  Result<std::unique_ptr<LogStore>> open_writer(Fault* fault = nullptr) {
    LogOptions o;
    o.path = dir_.path();
    o.create_if_missing = true;
    o.partitions = kPartitions;
    o.signer = signer_.get();
    o.checkpoints.every_records = 8;
    o.checkpoints.every = std::chrono::microseconds(0);
    return LogStore::open(o, fault);
  }

  VerifyReport verify() {
    VerifyOptions vo;
    vo.trusted = &trusted_;
    return verify_log(*log_, vo);
  }

  void expect_fault(std::uint64_t seq, const std::string& reason) {
    log_.reset();
    LogOptions o;
    o.path = dir_.path();
    o.mode = LogOptions::Mode::read_only;
    auto ro = LogStore::open(o).value();
    VerifyOptions vo;
    vo.trusted = &trusted_;
    const auto report = verify_log(*ro, vo);
    ASSERT_EQ(report.outcome, VerifyReport::Outcome::tampered);
    EXPECT_EQ(report.fault->position.partition.value, kP);
    EXPECT_EQ(report.fault->position.seq.value, seq);
    EXPECT_EQ(report.fault->reason, reason) << report.fault->detail;
  }

  static std::string key(std::uint64_t s) { return encode_log_key(Partition{kP}, Seq{s}); }

  TempDir dir_;
  std::unique_ptr<CheckpointSigner> signer_;
  TrustedKeys trusted_;
  std::unique_ptr<LogStore> log_;
  std::string subject_;
};

TEST_F(Retention, PrunedStoreStillVerifiesAndReportsItsCut) {
  const auto r = log_->prune(Partition{kP}, Seq{20}, 1'700'000'000'000'000);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r.value().pruned, 20u);
  EXPECT_GT(r.value().bytes_freed, 0u);
  const auto report = verify();
  EXPECT_EQ(report.outcome, VerifyReport::Outcome::verified)
      << (report.fault ? report.fault->reason + ": " + report.fault->detail : "");
  EXPECT_EQ(report.records, kRecords + 5u) << "pruned records are still counted and checked";
  EXPECT_EQ(report.partitions[kP].cut.below.value, 20u);
  EXPECT_EQ(report.partitions[kP].cut.before_micros, 1'700'000'000'000'000);
  EXPECT_EQ(report.partitions[0].cut.below.value, 0u);
  EXPECT_TRUE(report.partitions[kP].tree_checked);
  // Pruning again to a lower cut changes nothing; to a higher one continues from the cut.
  EXPECT_EQ(log_->prune(Partition{kP}, Seq{10}, 1).value().pruned, 0u);
  EXPECT_EQ(log_->prune(Partition{kP}, Seq{24}, 1'700'000'000'000'001).value().pruned, 4u);
  EXPECT_EQ(log_->retention_cut(Partition{kP}).below.value, 24u);
  EXPECT_EQ(verify().outcome, VerifyReport::Outcome::verified);
  // The cut cannot pass the head.
  EXPECT_EQ(log_->prune(Partition{kP}, Seq{kRecords + 1}, 1).error(), Errc::invalid_argument);
}

TEST_F(Retention, ReadsBelowTheCutSayPrunedAndAppendsGoOn) {
  ASSERT_TRUE(log_->prune(Partition{kP}, Seq{16}, 1));
  EXPECT_EQ(log_->read_range(Partition{kP}, Seq{3}, Seq{4}).error(), Errc::pruned);
  EXPECT_EQ(log_->read_range(Partition{kP}, Seq{0}, Seq{100}).error(), Errc::pruned);
  const auto kept = log_->read_range(Partition{kP}, Seq{16}, Seq{100});
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept.value().size(), kRecords - 16u);
  // read_by_time starts at the cut instead of failing.
  EXPECT_EQ(log_->read_by_time(Partition{kP}, INT64_MIN, INT64_MAX).value().size(), kRecords - 16u);
  testing::append_n(*log_, subject_, 9, "after");
  ASSERT_TRUE(log_->checkpoint_due(true));
  EXPECT_EQ(verify().outcome, VerifyReport::Outcome::verified);
  // And after a restart: the writer re-checks the tail across stubs.
  log_.reset();
  log_ = open_writer().value();
  EXPECT_EQ(log_->head(Partition{kP}).next.value, kRecords + 9u);
  EXPECT_EQ(verify().outcome, VerifyReport::Outcome::verified);
}

// C2SP tlog-tiles "minimum index": what was proven before the cut stays proven after it.
TEST_F(Retention, ProofsMadeBeforeTheCutStayValidAndNewOnesBelowItArePruned) {
  const auto before = prove_inclusion(*log_, Partition{kP}, Seq{5});
  ASSERT_TRUE(before) << before.error().message();
  const auto older_size = before.value().tree_size;
  ASSERT_TRUE(log_->prune(Partition{kP}, Seq{24}, 1));
  testing::append_n(*log_, subject_, 8, "after");
  EXPECT_TRUE(check_inclusion(before.value(), trusted_).ok);
  EXPECT_EQ(prove_inclusion(*log_, Partition{kP}, Seq{5}).error(), Errc::pruned);
  // The tree over the pruned records is intact: the new checkpoint extends the old one.
  const auto latest = parse_checkpoint_body(*log_->latest_checkpoint(Partition{kP}).value());
  const auto consistency = prove_consistency(*log_, Partition{kP}, older_size, latest.value().size);
  ASSERT_TRUE(consistency) << consistency.error().message();
  EXPECT_TRUE(check_consistency(consistency.value(), trusted_).ok)
      << check_consistency(consistency.value(), trusted_).detail;
  const auto above = prove_inclusion(*log_, Partition{kP}, Seq{30});
  ASSERT_TRUE(above);
  EXPECT_TRUE(check_inclusion(above.value(), trusted_).ok);
}

TEST_F(Retention, ARecordThatShouldHaveBeenPrunedIsReported) {
  ASSERT_TRUE(log_->prune(Partition{kP}, Seq{10}, 1));
  log_.reset();
  {
    // The cut is moved up without pruning: record 10 now sits below it with its payload.
    RawDb db(dir_.path());
    std::string cv;
    for (int i = 0; i < 7; ++i) cv.push_back('\0');
    cv.push_back(12);
    cv.append(8, '\0');
    db.put(db.meta(), "cut/" + std::string("\0\0\0\1", 4), cv);
  }
  expect_fault(10, "not_pruned");
}

TEST_F(Retention, APayloadRemovedAboveTheCutIsTamperingNotRetention) {
  ASSERT_TRUE(log_->prune(Partition{kP}, Seq{10}, 1));
  log_.reset();
  {
    RawDb db(dir_.path());
    const auto value = db.get(db.log(), key(15));
    const auto view = decode_record(value).value();
    db.put(db.log(), key(15),
           encode_pruned_record(Partition{kP}, Seq{15}, view.hash, crypto::sha256(view.event),
                                merkle::leaf_hash(as_bytes(value))));
  }
  expect_fault(15, "pruned_above_cut");
}

TEST_F(Retention, APrunedRecordWhoseHashNoLongerFitsIsReported) {
  ASSERT_TRUE(log_->prune(Partition{kP}, Seq{10}, 1));
  log_.reset();
  {
    RawDb db(dir_.path());
    auto stub = db.get(db.log(), key(4));
    stub[kRecordHeaderSize + 3] ^= 0x01;  // the kept event digest
    db.put(db.log(), key(4), stub);
  }
  expect_fault(4, "pruned_hash_mismatch");
}

TEST_F(Retention, AStubWithAnAlteredLeafIsCaughtByTheTree) {
  ASSERT_TRUE(log_->prune(Partition{kP}, Seq{10}, 1));
  log_.reset();
  {
    RawDb db(dir_.path());
    auto stub = db.get(db.log(), key(6));
    stub[kRecordHeaderSize + 32 + 1] ^= 0x01;  // the kept leaf hash
    db.put(db.log(), key(6), stub);
  }
  // The signed root at size 8 no longer fits (and node (4, 0) over leaves 0..15 would not either).
  expect_fault(7, "checkpoint_root_mismatch");
}

TEST_F(Retention, ATamperedRecordIsNeverPrunedIntoAStub) {
  log_.reset();
  {
    RawDb db(dir_.path());
    auto v = db.get(db.log(), key(3));
    v[v.size() - 2] ^= 0x01;
    db.put(db.log(), key(3), v);
  }
  // Seq 3 is below the newest checkpoint, so the writer opens; pruning over it refuses and
  // leaves the evidence in place.
  log_ = open_writer().value();
  EXPECT_EQ(log_->prune(Partition{kP}, Seq{8}, 1).error(), Errc::chain_broken);
  EXPECT_EQ(log_->retention_cut(Partition{kP}).below.value, 0u);
  EXPECT_EQ(verify().fault->reason, "event_altered");
}

// A store written before the Merkle tree existed gets its tree on the first read-write open;
// its old checkpoints (without a root) still verify.
TEST_F(Retention, AStoreWithoutATreeGetsOneOnItsFirstWriterOpen) {
  log_.reset();
  {
    RawDb db(dir_.path());
    db.del(db.meta(), "tree");
    for (std::uint32_t level = 1; level < 8; ++level) {
      for (std::uint64_t i = 0; i < 64; ++i)
        db.del(db.merkle(), merkle_node_key(Partition{kP}, level, i));
    }
  }
  {
    LogOptions o;
    o.path = dir_.path();
    o.mode = LogOptions::Mode::read_only;
    auto ro = LogStore::open(o).value();
    EXPECT_FALSE(ro->has_tree());
    EXPECT_EQ(ro->tree_node(Partition{kP}, 1, 0).error(), Errc::not_supported);
  }
  log_ = open_writer().value();
  EXPECT_TRUE(log_->has_tree());
  EXPECT_EQ(verify().outcome, VerifyReport::Outcome::verified);
  const auto proof = prove_inclusion(*log_, Partition{kP}, Seq{9});
  ASSERT_TRUE(proof);
  EXPECT_TRUE(check_inclusion(proof.value(), trusted_).ok);
}

// A store written when nodes were kept from level 4 up ("rfc6962/v1") holds every node this
// build reads: a reader uses it as it is, its first writer re-marks it v2 (so that a build
// expecting levels 4 and 5 refuses it rather than missing them), and proofs and verify agree
// throughout. A mark this build does not know is refused.
TEST_F(Retention, AV1TreeIsReadAsItIsAndRemarkedV2ByItsFirstWriter) {
  testing::append_n(*log_, subject_, 100, "more");  // 140 records: nodes (6,0), (6,1), (7,0)
  log_.reset();
  {
    RawDb db(dir_.path());
    db.put(db.meta(), "tree", "rfc6962/v1");
    // A level-4 node as a v1 writer kept it, here spoiled: v2 never reads below level 6.
    db.put(db.merkle(), merkle_node_key(Partition{kP}, 4, 0), std::string(32, 'x'));
  }
  {
    LogOptions o;
    o.path = dir_.path();
    o.mode = LogOptions::Mode::read_only;
    auto ro = LogStore::open(o).value();
    EXPECT_TRUE(ro->has_tree());
    const auto proof = prove_inclusion(*ro, Partition{kP}, Seq{9});
    ASSERT_TRUE(proof);
    EXPECT_TRUE(check_inclusion(proof.value(), trusted_).ok);
  }
  {
    RawDb db(dir_.path());
    EXPECT_EQ(db.get(db.meta(), "tree"), "rfc6962/v1") << "a reader re-marked the store";
  }
  log_ = open_writer().value();
  {
    log_.reset();
    RawDb db(dir_.path());
    EXPECT_EQ(db.get(db.meta(), "tree"), "rfc6962/v2");
  }
  log_ = open_writer().value();
  testing::append_n(*log_, subject_, 70, "after");  // 210: (6,2) stored by this build
  ASSERT_TRUE(log_->checkpoint_due(/*force=*/true));
  EXPECT_EQ(verify().outcome, VerifyReport::Outcome::verified);
  for (const std::uint64_t seq : {0u, 63u, 64u, 139u, 150u, 209u}) {
    const auto proof = prove_inclusion(*log_, Partition{kP}, Seq{seq});
    ASSERT_TRUE(proof) << seq;
    EXPECT_TRUE(check_inclusion(proof.value(), trusted_).ok) << seq;
  }
  log_.reset();
  {
    RawDb db(dir_.path());
    db.put(db.meta(), "tree", "rfc6962/v9");
  }
  const auto refused = open_writer();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), Errc::unsupported_version);
}

// Appends one event at `time_micros` for `subject`.
void append_at(LogStore& log, const std::string& subject, std::int64_t time_micros) {
  const auto ev = testing::make_event(subject, "t", time_micros);
  const ByteView view(ev);
  ASSERT_TRUE(log.append(partition_for(subject, log.partition_count()),
                         std::span<const ByteView>(&view, 1)));
}

TEST(RetentionRun, PrunesTheOldPrefixOnlyUnderASignatureAndWithinTheLimitChainingEachStep) {
  TempDir dir;
  auto signer = testing::make_signer();
  LogOptions o;
  o.path = dir.path();
  o.create_if_missing = true;
  o.partitions = 2;
  o.signer = &signer;
  o.checkpoints.every_records = 0;
  o.checkpoints.every = std::chrono::microseconds(0);
  auto log = LogStore::open(o).value();
  const auto a = testing::subject_in(0, 2);
  const auto b = testing::subject_in(1, 2);
  constexpr std::int64_t kDay = 86'400'000'000;
  // Partition 0: ten old events, one recent, two more old (kept: behind the recent one).
  for (int i = 0; i < 10; ++i) append_at(*log, a, 10 * kDay + i);
  append_at(*log, a, 100 * kDay);
  append_at(*log, a, 11 * kDay);
  append_at(*log, a, 11 * kDay);
  // Partition 1: six old events, then a checkpoint, then four more old ones it does not cover.
  for (int i = 0; i < 6; ++i) append_at(*log, b, 10 * kDay);
  ASSERT_TRUE(log->checkpoint_due(true));
  for (int i = 0; i < 4; ++i) append_at(*log, b, 10 * kDay);

  RetentionOptions ro;
  ro.before_micros = 50 * kDay;
  ro.window_days = 90;
  ro.run_id = "run-1";
  auto plan = plan_retention(*log, ro);
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan.value().size(), 2u);
  EXPECT_EQ(plan.value()[0].below.value, 10u) << "stops at the first recent event";
  EXPECT_EQ(plan.value()[1].below.value, 6u) << "never past the latest signed checkpoint";
  // The projections' applied position caps it too.
  ro.limit = [](Partition p) { return Seq{p.value == 0 ? 4u : 100u}; };
  EXPECT_EQ(plan_retention(*log, ro).value()[0].below.value, 4u);
  ro.limit = {};

  std::vector<RetentionStep> chained;
  auto report = run_retention(*log, ro, [&](const RetentionStep& step) -> Result<void> {
    // Chained before the payloads go: they are still readable now.
    EXPECT_TRUE(log->read_range(step.partition, step.from, step.below));
    chained.push_back(step);
    const auto ev = retention_event(step, ro, 2, 200 * kDay).value();
    const ByteView view(ev);
    return log->append(step.partition, std::span<const ByteView>(&view, 1)).has_value()
               ? Result<void>(boost::outcome_v2::success())
               : Result<void>(Errc::io_error);
  });
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report.value().records, 16u);
  EXPECT_EQ(chained.size(), 2u);
  EXPECT_EQ(log->retention_cut(Partition{0}).below.value, 10u);
  EXPECT_EQ(log->retention_cut(Partition{0}).before_micros, 50 * kDay);
  EXPECT_EQ(log->retention_cut(Partition{1}).below.value, 6u);
  // A second run finds nothing more to do until a checkpoint covers partition 1's tail.
  EXPECT_EQ(plan_retention(*log, ro).value().size(), 0u);
  ASSERT_TRUE(log->checkpoint_due(true));
  EXPECT_EQ(plan_retention(*log, ro).value().size(), 1u);
  // Each partition's chained event, in that partition, says what was pruned there, by whom.
  for (const auto& [p, below] : {std::pair{0u, 10u}, std::pair{1u, 6u}}) {
    const auto head = log->head(Partition{p}).next;  // the step went last
    const auto rec = log->read_range(Partition{p}, Seq{head.value - 1}, head).value();
    ASSERT_EQ(rec.size(), 1u);
    const auto* env = schemas::envelope_of(rec.front().event.data());
    ASSERT_NE(env->event_as_RetentionApplied(), nullptr) << "partition " << p;
    EXPECT_EQ(env->event_as_RetentionApplied()->partition(), p);
    EXPECT_EQ(env->event_as_RetentionApplied()->below_seq(), below);
    EXPECT_EQ(env->event_as_RetentionApplied()->window_days(), 90u);
    EXPECT_EQ(env->actor()->str(), "system");
    EXPECT_TRUE(is_retention_subject(env->subject()->str()));
  }
  VerifyOptions vo;
  EXPECT_EQ(verify_log(*log, vo).outcome, VerifyReport::Outcome::verified);
}

// Each step is chained into the partition it prunes, so the partition's writer (in Kafka mode its
// owner) runs it; the subject that maps there is found deterministically.
TEST(RetentionSubject, MapsToEachPartitionAndOnlyThoseSubjectsCount) {
  for (const std::uint32_t partitions : {1u, 2u, 8u, 64u}) {
    for (std::uint32_t p = 0; p < partitions; ++p) {
      const auto subject = retention_subject(Partition{p}, partitions);
      EXPECT_EQ(partition_for(subject, partitions).value, p) << subject;
      EXPECT_TRUE(is_retention_subject(subject)) << subject;
    }
  }
  EXPECT_EQ(retention_subject(partition_for(std::string(kRetentionSubject), 8), 8),
            kRetentionSubject);
  for (const char* other : {"system:retention:", "system:retention:x", "system:retentionx",
                            "system:retention:1:2", "user:system:retention", "system:retentio"}) {
    EXPECT_FALSE(is_retention_subject(other)) << other;
  }
}

TEST(RetentionRun, LargeRunsAreChainedInBoundedSteps) {
  TempDir dir;
  auto signer = testing::make_signer();
  LogOptions o;
  o.path = dir.path();
  o.create_if_missing = true;
  o.partitions = 1;
  o.signer = &signer;
  auto log = LogStore::open(o).value();
  const auto s = testing::subject_in(0, 1);
  std::vector<Bytes> events;
  for (std::uint64_t i = 0; i < kMaxRetentionStep + 10; ++i) {
    events.push_back(testing::make_event(s, "x", 1));
  }
  std::vector<ByteView> views(events.begin(), events.end());
  ASSERT_TRUE(log->append(Partition{0}, views));
  ASSERT_TRUE(log->checkpoint_due(true));
  RetentionOptions ro;
  ro.before_micros = 2;
  const auto plan = plan_retention(*log, ro).value();
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].below.value - plan[0].from.value, kMaxRetentionStep);
  EXPECT_EQ(plan[1].from.value, kMaxRetentionStep);
  EXPECT_EQ(plan[1].below.value, kMaxRetentionStep + 10);
}

}  // namespace
}  // namespace sechex::ledger
