// Spec 000 FR-05 ("logs are immutable: append-only, signed"): tampering must be found.
// A catalogue of corruptions in the style of RocksDB's db/log_test.cc: each failure mode is
// made on disk the way an attacker with write access to the store would, and `verify` must
// name the exact (partition, seq) and a reason of its own.
#include <gtest/gtest.h>

#include "ledger/merkle.h"
#include "ledger/verify.h"
#include "support/test_util.h"

namespace sechex::ledger {
namespace {

using testing::RawDb;
using testing::TempDir;

constexpr std::uint32_t kPartitions = 4;
constexpr std::uint32_t kP = 1;  // the partition we tamper with
constexpr std::uint32_t kQ = 2;  // another partition
constexpr int kRecords = 12;     // checkpoints every 5: at sizes 5 and 10

class Corruption : public ::testing::Test {
 protected:
  void SetUp() override {
    signer_ = std::make_unique<CheckpointSigner>(testing::make_signer("trusted"));
    ASSERT_TRUE(trusted_.add(signer_->verifier_key()));
    auto log = open_writer();
    ASSERT_TRUE(log);
    testing::append_n(*log.value(), testing::subject_in(kP, kPartitions), kRecords);
    testing::append_n(*log.value(), testing::subject_in(kQ, kPartitions), kRecords);
    testing::append_n(*log.value(), testing::subject_in(0, kPartitions), 3);
  }

  Result<std::unique_ptr<LogStore>> open_writer(Fault* fault = nullptr) {
    LogOptions o;
    o.path = dir_.path();
    o.create_if_missing = true;
    o.partitions = kPartitions;
    o.signer = signer_.get();
    o.checkpoints.every_records = 5;
    o.checkpoints.every = std::chrono::microseconds(0);
    return LogStore::open(o, fault);
  }

  VerifyReport verify() {
    LogOptions o;
    o.path = dir_.path();
    o.mode = LogOptions::Mode::read_only;
    auto log = LogStore::open(o);
    EXPECT_TRUE(log) << log.error().message();
    VerifyOptions vo;
    vo.trusted = &trusted_;
    // The generic walk through the Log interface (what the Kafka log gets) must not call a
    // tampered store verified either; its reasons may be coarser, its partition is the same.
    chain_ = verify_chain(*log.value(), vo);
    return verify_log(*log.value(), vo);
  }

  // `chain_sees_it`: whether verify_chain, which knows only what the Log interface tells (the
  // records, the reported head, the latest checkpoint), can see this corruption too.
  void expect_fault(std::uint32_t partition, std::uint64_t seq, const std::string& reason,
                    bool chain_sees_it = true) {
    const auto report = verify();
    ASSERT_EQ(report.outcome, VerifyReport::Outcome::tampered)
        << (report.fault ? report.fault->reason : "no fault");
    ASSERT_TRUE(report.fault);
    EXPECT_EQ(report.fault->position.partition.value, partition);
    EXPECT_EQ(report.fault->position.seq.value, seq);
    EXPECT_EQ(report.fault->reason, reason) << report.fault->detail;
    if (!chain_sees_it) return;
    ASSERT_NE(chain_.outcome, VerifyReport::Outcome::verified) << "verify_chain missed " << reason;
    EXPECT_EQ(chain_.fault->position.partition.value, partition) << chain_.fault->reason;
  }

  static std::string key(std::uint32_t p, std::uint64_t s) {
    return encode_log_key(Partition{p}, Seq{s});
  }
  static std::string ckpt_key(std::uint32_t p, std::uint64_t size) {
    std::string k = encode_log_key(Partition{p}, Seq{size});  // same be32||be64 layout
    return k;
  }

  TempDir dir_;
  std::unique_ptr<CheckpointSigner> signer_;
  TrustedKeys trusted_;
  VerifyReport chain_;  // verify_chain's report from the last verify()
};

TEST_F(Corruption, UntouchedLogVerifies) {
  const auto report = verify();
  EXPECT_EQ(report.outcome, VerifyReport::Outcome::verified);
  EXPECT_EQ(chain_.outcome, VerifyReport::Outcome::verified)
      << (chain_.fault ? chain_.fault->reason + ": " + chain_.fault->detail : "");
  EXPECT_EQ(chain_.records, report.records);
  EXPECT_EQ(report.records, 2u * kRecords + 3);
  EXPECT_EQ(report.checkpoints, 4u);
  EXPECT_TRUE(report.signatures_checked);
}

TEST_F(Corruption, ChangedEventByteIsEventAltered) {
  {
    RawDb db(dir_.path());
    auto v = db.get(db.log(), key(kP, 6));
    v[v.size() - 3] ^= 0x01;  // inside the event bytes
    db.put(db.log(), key(kP, 6), v);
  }
  expect_fault(kP, 6, "event_altered");
}

TEST_F(Corruption, ChangedStoredHashIsStoredHashAltered) {
  {
    RawDb db(dir_.path());
    auto v = db.get(db.log(), key(kP, 6));
    v[13] ^= 0x80;  // first byte of the stored hash
    db.put(db.log(), key(kP, 6), v);
  }
  expect_fault(kP, 6, "stored_hash_altered");
}

TEST_F(Corruption, DeletedRecordIsMissingRecord) {
  {
    RawDb db(dir_.path());
    db.del(db.log(), key(kP, 6));
  }
  expect_fault(kP, 6, "missing_record");
}

TEST_F(Corruption, TwoSwappedRecordsAreRecordsSwapped) {
  {
    RawDb db(dir_.path());
    const auto a = db.get(db.log(), key(kP, 6));
    const auto b = db.get(db.log(), key(kP, 7));
    db.put(db.log(), key(kP, 6), b);
    db.put(db.log(), key(kP, 7), a);
  }
  expect_fault(kP, 6, "records_swapped");
}

TEST_F(Corruption, RecordCopiedFromAnotherPartitionIsNamedAsSuch) {
  {
    RawDb db(dir_.path());
    db.put(db.log(), key(kP, 6), db.get(db.log(), key(kQ, 6)));
  }
  expect_fault(kP, 6, "record_from_other_partition");
}

TEST_F(Corruption, TruncatedTailIsTruncated) {
  {
    RawDb db(dir_.path());
    db.del(db.log(), key(kP, 11));
    db.del(db.log(), key(kP, 10));
  }
  // Records after the latest checkpoint, cut together with nothing else: only the store's own
  // head entry tells, which the Log interface does not expose (the next checkpoint would).
  expect_fault(kP, 10, "truncated", /*chain_sees_it=*/false);
}

TEST_F(Corruption, TruncatedTailIsFoundByTheSignedCheckpointEvenWhenTheHeadIsRewritten) {
  {
    RawDb db(dir_.path());
    const auto nine = decode_record(db.get(db.log(), key(kP, 8))).value();
    for (std::uint64_t s = 9; s < kRecords; ++s) db.del(db.log(), key(kP, s));
    // The attacker also rewrites the stored head to match the shortened log.
    std::string head = "head/";
    head += std::string("\0\0\0\1", 4);
    std::string hv(8, '\0');
    hv[7] = 9;
    hv.append(reinterpret_cast<const char*>(nine.hash.data()), 32);
    db.put(db.meta(), head, hv);
  }
  expect_fault(kP, 9, "truncated");  // the checkpoint at size 10 needs seq 9
}

TEST_F(Corruption, ForgedCheckpointIsBadSignature) {
  {
    RawDb db(dir_.path());
    const auto note = db.get(db.checkpoints(), ckpt_key(kP, 10));
    auto cp = parse_checkpoint_body(note).value();
    cp.hash[0] ^= 1;  // claim another head, keep the old signature line
    const auto forged = checkpoint_body(cp) + note.substr(note.find("\n\n") + 1);
    db.put(db.checkpoints(), ckpt_key(kP, 10), forged);
  }
  expect_fault(kP, 9, "checkpoint_bad_signature");
}

TEST_F(Corruption, CheckpointSignedByAnUnknownKeyIsUnknownKey) {
  {
    RawDb db(dir_.path());
    const auto note = db.get(db.checkpoints(), ckpt_key(kP, 10));
    const auto cp = parse_checkpoint_body(note).value();
    const auto intruder = testing::make_signer("intruder");
    db.put(db.checkpoints(), ckpt_key(kP, 10), intruder.sign(cp).value());
  }
  expect_fault(kP, 9, "checkpoint_unknown_key");
}

TEST_F(Corruption, FullyRechainedRewriteIsCaughtByTheCheckpoint) {
  {
    // The attacker changes event 2 and recomputes every later hash and the head, so every
    // link checks out; only the signed checkpoint at size 5 still remembers the truth.
    RawDb db(dir_.path());
    Hash prev = decode_record(db.get(db.log(), key(kP, 1))).value().hash;
    for (std::uint64_t s = 2; s < kRecords; ++s) {
      const auto old = db.get(db.log(), key(kP, s));
      const auto view = decode_record(old).value();
      Bytes ev(view.event.begin(), view.event.end());
      if (s == 2) ev[ev.size() - 3] ^= 0x01;
      const auto h = chain_hash(Partition{kP}, Seq{s}, prev, ev);
      db.put(db.log(), key(kP, s), encode_record(Partition{kP}, Seq{s}, h, ev));
      prev = h;
    }
    std::string hv(8, '\0');
    hv[7] = kRecords;
    hv.append(reinterpret_cast<const char*>(prev.data()), 32);
    db.put(db.meta(), "head/" + std::string("\0\0\0\1", 4), hv);
  }
  expect_fault(kP, 4, "checkpoint_mismatch");
}

TEST_F(Corruption, RechainedRewriteWithARebuiltMerkleTreeIsCaughtByTheSignedCheckpoint) {
  {
    // As above, and the attacker also rebuilds every Merkle node: only the signature is left.
    RawDb db(dir_.path());
    Hash prev{};
    merkle::CompactRange tree;
    for (std::uint64_t s = 0; s < kRecords; ++s) {
      const auto old = db.get(db.log(), key(kP, s));
      const auto view = decode_record(old).value();
      Bytes ev(view.event.begin(), view.event.end());
      if (s == 2) ev[ev.size() - 3] ^= 0x01;
      const auto h = chain_hash(Partition{kP}, Seq{s}, prev, ev);
      const auto value = encode_record(Partition{kP}, Seq{s}, h, ev);
      db.put(db.log(), key(kP, s), value);
      tree.push(merkle::leaf_hash(as_bytes(value)),
                [&](unsigned level, std::uint64_t index, const Hash& node) {
                  db.put(db.merkle(), merkle_node_key(Partition{kP}, level, index),
                         std::string(node.begin(), node.end()));
                });
      prev = h;
    }
    std::string hv(8, '\0');
    hv[7] = kRecords;
    hv.append(reinterpret_cast<const char*>(prev.data()), 32);
    db.put(db.meta(), "head/" + std::string("\0\0\0\1", 4), hv);
  }
  expect_fault(kP, 4, "checkpoint_mismatch");
}

// Stored nodes start at level kMerkleStoredLevel (64 leaves): 116 more records give partition
// kP 128, so nodes (6, 0), (6, 1) and (7, 0) are stored.
static_assert(kMerkleStoredLevel == 6, "the node tests below name level-6 nodes");
TEST_F(Corruption, AlteredMerkleNodeIsTreeNodeAltered) {
  testing::append_n(*open_writer().value(), testing::subject_in(kP, kPartitions), 116, "more");
  {
    RawDb db(dir_.path());
    const auto k = merkle_node_key(Partition{kP}, 6, 1);  // leaves 64..127
    auto v = db.get(db.merkle(), k);
    v[0] ^= 0x01;
    db.put(db.merkle(), k, v);
  }
  // Only the store keeps the tree: the Log-interface walk has nothing to compare it with.
  expect_fault(kP, 127, "tree_node_altered", /*chain_sees_it=*/false);
}

TEST_F(Corruption, DeletedMerkleNodeIsTreeNodeMissing) {
  testing::append_n(*open_writer().value(), testing::subject_in(kP, kPartitions), 116, "more");
  {
    RawDb db(dir_.path());
    db.del(db.merkle(), merkle_node_key(Partition{kP}, 6, 0));  // leaves 0..63
  }
  expect_fault(kP, 63, "tree_node_missing", /*chain_sees_it=*/false);
}

TEST_F(Corruption, WriterRefusesToExtendABrokenTail) {
  {
    RawDb db(dir_.path());
    auto v = db.get(db.log(), key(kP, 11));  // after the last checkpoint (size 10)
    v[v.size() - 2] ^= 0x01;
    db.put(db.log(), key(kP, 11), v);
  }
  Fault fault;
  auto log = open_writer(&fault);
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error(), Errc::chain_broken);
  EXPECT_EQ(fault.position.partition.value, kP);
  EXPECT_EQ(fault.position.seq.value, 11u);
  EXPECT_EQ(fault.reason, "hash_mismatch");  // no successor to tell which part changed
}

TEST_F(Corruption, NewerRecordFormatMeansCannotVerifyNotTampered) {
  {
    RawDb db(dir_.path());
    auto v = db.get(db.log(), key(kQ, 3));
    v[0] = 9;
    db.put(db.log(), key(kQ, 3), v);
  }
  const auto report = verify();
  EXPECT_EQ(report.outcome, VerifyReport::Outcome::cannot_run);
  EXPECT_EQ(report.fault->reason, "unsupported_record_format");
  EXPECT_EQ(report.fault->position.seq.value, 3u);
}

}  // namespace
}  // namespace sechex::ledger
