// LogStore: append, group commit, readers, reopen, modes and checkpoint policy.
#include "ledger/log_store.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "ledger/record.h"
#include "ledger/verify.h"
#include "support/test_util.h"

namespace sechex::ledger {
namespace {

using testing::append_n;
using testing::make_event;
using testing::TempDir;

std::unique_ptr<LogStore> open_rw(const std::string& path, const CheckpointSigner* signer = nullptr,
                                  const Clock* clock = &SystemClock::instance(),
                                  CheckpointPolicy policy = {}) {
  LogOptions o;
  o.path = path;
  o.create_if_missing = true;
  o.partitions = 4;
  o.signer = signer;
  o.clock = clock;
  o.checkpoints = policy;
  auto s = LogStore::open(o);
  EXPECT_TRUE(s) << s.error().message();
  return s ? std::move(s).value() : nullptr;
}

// A writer signing a checkpoint every `every_records` records (0: only when asked), never by
// time.
std::unique_ptr<LogStore> open_signing(const std::string& path, const CheckpointSigner& signer,
                                       std::uint64_t every_records) {
  CheckpointPolicy policy;
  policy.every_records = every_records;
  policy.every = std::chrono::microseconds(0);
  return open_rw(path, &signer, &SystemClock::instance(), policy);
}

Result<AppendResult> append_one(LogStore& log, const Bytes& ev, std::string_view subject) {
  const ByteView v(ev);
  return log.append(partition_for(subject, log.partition_count()),
                    std::span<const ByteView>(&v, 1));
}

TEST(LogStore, AppendAssignsGaplessSeqsAndChainsHashes) {
  TempDir dir;
  auto log = open_rw(dir.path());
  const std::string subject = "alice";
  const auto p = partition_for(subject, 4);
  std::vector<Bytes> events;
  for (int i = 0; i < 5; ++i) events.push_back(make_event(subject, std::to_string(i)));
  std::vector<ByteView> views(events.begin(), events.end());
  auto r = log->append(p, views);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.value().first.value, 0u);
  EXPECT_EQ(r.value().last.value, 4u);
  auto r2 = append_one(*log, make_event(subject, "5"), subject);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2.value().first.value, 5u);

  auto records = log->read_range(p, Seq{0}, Seq{100});
  ASSERT_TRUE(records);
  ASSERT_EQ(records.value().size(), 6u);
  // The append reports each record's hash, as stored.
  ASSERT_EQ(r.value().hashes.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(r.value().hashes[i], records.value()[i].hash);
  EXPECT_EQ(r2.value().hashes, std::vector<Hash>{records.value()[5].hash});
  Hash prev{};
  for (std::size_t i = 0; i < records.value().size(); ++i) {
    const auto& rec = records.value()[i];
    EXPECT_EQ(rec.position.seq.value, i);
    EXPECT_EQ(rec.hash, chain_hash(p, Seq{i}, prev, rec.event));
    prev = rec.hash;
  }
  EXPECT_EQ(log->head(p).next.value, 6u);
  EXPECT_EQ(log->head(p).hash, prev);
  EXPECT_EQ(r2.value().head, prev);
}

TEST(LogStore, SingleRecordReadsMatchRangeReadsAndMissAbsentSeqs) {
  TempDir dir;
  auto log = open_rw(dir.path());
  const std::string subject = "carol";
  const auto p = partition_for(subject, 4);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(append_one(*log, make_event(subject, std::to_string(i)), subject));
  const auto all = log->read_range(p, Seq{0}, Seq{3}).value();
  for (std::uint64_t s = 0; s < 3; ++s) {
    const auto one = log->read_range(p, Seq{s}, Seq{s + 1}).value();  // the point-lookup path
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one[0].position, all[s].position);
    EXPECT_EQ(one[0].hash, all[s].hash);
    EXPECT_EQ(one[0].event, all[s].event);
  }
  EXPECT_TRUE(log->read_range(p, Seq{3}, Seq{4}).value().empty());
  EXPECT_TRUE(log->read_range(Partition{99}, Seq{0}, Seq{1}).value().empty());
  EXPECT_TRUE(log->read_range(p, Seq{0}, Seq{1}, 0).value().empty());
}

TEST(LogStore, RejectsBadBatchesAndWritesNothing) {
  TempDir dir;
  auto log = open_rw(dir.path());
  const auto ev = make_event("bob");
  const ByteView good(ev);
  EXPECT_EQ(log->append(Partition{0}, {}).error(), Errc::invalid_argument);
  EXPECT_EQ(log->append(Partition{99}, std::span<const ByteView>(&good, 1)).error(),
            Errc::invalid_argument);
  const std::string garbage = "definitely not a flatbuffer";
  const ByteView bad = as_bytes(garbage);
  // A batch with one bad event is refused whole.
  const std::vector<ByteView> mixed = {good, bad};
  EXPECT_EQ(log->append(partition_for("bob", 4), mixed).error(), Errc::invalid_argument);
  // An event from a newer schema version is refused, not stored blindly.
  flatbuffers::FlatBufferBuilder fbb;
  const std::array<std::uint8_t, 16> id{};
  const schema::EventId eid(flatbuffers::span<const std::uint8_t, 16>(id.data(), 16));
  auto body = schema::CreateCheckIn(fbb, fbb.CreateString("s"));
  auto env =
      schema::CreateEnvelope(fbb, schemas::kSchemaVersion + 1, &eid, 0, fbb.CreateString("bob"), 0,
                             0, 0, schema::Event::CheckIn, body.Union());
  schema::FinishEnvelopeBuffer(fbb, env);
  const ByteView newer(fbb.GetBufferPointer(), fbb.GetSize());
  EXPECT_EQ(log->append(partition_for("bob", 4), std::span<const ByteView>(&newer, 1)).error(),
            Errc::invalid_argument);
  for (std::uint32_t p = 0; p < 4; ++p) EXPECT_EQ(log->head(Partition{p}).next.value, 0u);
}

TEST(LogStore, ConcurrentAppendersShareSyncedWrites) {
  TempDir dir;
  auto log = open_rw(dir.path());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 60;
  std::vector<std::thread> threads;
  std::vector<std::vector<AppendResult>> results(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Two threads per partition so appends to one partition also race.
      const auto subject = testing::subject_in(static_cast<std::uint32_t>(t % 4), 4, t);
      for (int i = 0; i < kPerThread; ++i) {
        auto r = append_one(*log, make_event(subject, std::to_string(i)), subject);
        ASSERT_TRUE(r);
        results[t].push_back(r.value());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::pair<std::uint32_t, std::uint64_t>> seen;
  for (int t = 0; t < kThreads; ++t) {
    for (const auto& r : results[t]) {
      EXPECT_TRUE(seen.insert({static_cast<std::uint32_t>(t % 4), r.first.value}).second)
          << "seq handed out twice";
    }
  }
  for (std::uint32_t p = 0; p < 4; ++p) {
    EXPECT_EQ(log->head(Partition{p}).next.value, 2u * kPerThread);
  }
  const auto stats = log->stats();
  EXPECT_EQ(stats.appends, static_cast<std::uint64_t>(kThreads * kPerThread));
  // Group commit: fewer synced writes than appends.
  EXPECT_LT(stats.commit_groups, stats.appends);
  EXPECT_EQ(verify_log(*log, {}).outcome, VerifyReport::Outcome::verified);
}

// A commit group hashes its records' leaves and nodes as it chains them: the tree must come out
// exactly as if every record had been added alone, whatever the group sizes, whichever
// partitions share a group, and across a reopen.
TEST(LogStore, GroupsOfEverySizeAndMixGiveTheTreeOfRecordByRecordHashing) {
  TempDir dir;
  auto signer = testing::make_signer();
  auto log = open_signing(dir.path(), signer, 0);
  // One writer: batches of many sizes, some crossing stored-node edges (every 64 records).
  const auto solo = testing::subject_in(0, 4, 1);
  int n = 0;
  for (const int size : {1, 31, 32, 33, 5, 100, 300, 16, 64}) {
    std::vector<Bytes> events;
    for (int i = 0; i < size; ++i) events.push_back(make_event(solo, std::to_string(n++)));
    const std::vector<ByteView> views(events.begin(), events.end());
    ASSERT_TRUE(log->append(Partition{0}, views));
  }
  // Racing writers of all partitions: groups that mix partitions, large and small.
  std::vector<std::thread> threads;
  for (std::uint32_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const auto subject = testing::subject_in(t, 4, 2);
      for (int b = 0; b < 20; ++b) {
        std::vector<Bytes> events;
        for (int i = 0; i < (b % 2 == 0 ? 40 : 3); ++i) {
          events.push_back(make_event(subject, std::to_string(b) + "-" + std::to_string(i)));
        }
        const std::vector<ByteView> views(events.begin(), events.end());
        ASSERT_TRUE(log->append(Partition{t}, views));
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(log->checkpoint_due(/*force=*/true).value(), 4u);

  TrustedKeys trusted;
  ASSERT_TRUE(trusted.add(signer.verifier_key()));
  for (std::uint32_t p = 0; p < 4; ++p) {
    const Partition part{p};
    auto records = log->read_range(part, Seq{0}, Seq{UINT64_MAX}, 100'000);
    ASSERT_TRUE(records);
    ASSERT_EQ(records.value().size(), log->head(part).next.value);
    // The tree recomputed from the stored bytes, one leaf at a time.
    merkle::CompactRange inline_tree;
    std::map<std::pair<unsigned, std::uint64_t>, Hash> nodes;
    for (const auto& r : records.value()) {
      const auto bytes = encode_record(part, r.position.seq, r.hash, r.event);
      inline_tree.push(merkle::leaf_hash(ByteView(
                           reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size())),
                       [&](unsigned level, std::uint64_t index, const Hash& h) {
                         if (level >= kMerkleStoredLevel) nodes[{level, index}] = h;
                       });
    }
    ASSERT_FALSE(nodes.empty());
    for (const auto& [id, hash] : nodes) {
      const auto stored = log->tree_node(part, id.first, id.second);
      ASSERT_TRUE(stored) << "partition " << p << " level " << id.first << " index " << id.second;
      EXPECT_EQ(stored.value(), hash)
          << "partition " << p << " level " << id.first << " index " << id.second;
    }
    const auto note = log->latest_checkpoint(part);
    ASSERT_TRUE(note && note.value());
    const auto checked = trusted.verify(*note.value());
    ASSERT_EQ(checked.status, TrustedKeys::Status::ok);
    EXPECT_EQ(checked.checkpoint.size, records.value().size());
    ASSERT_TRUE(checked.checkpoint.root);
    EXPECT_EQ(*checked.checkpoint.root, inline_tree.root()) << "partition " << p;
  }
  VerifyOptions vo;
  vo.trusted = &trusted;
  EXPECT_EQ(verify_log(*log, vo).outcome, VerifyReport::Outcome::verified);
  // Reopened, the tree continues from the stored nodes: a small and a large append still agree.
  log.reset();
  log = open_signing(dir.path(), signer, 0);
  append_n(*log, solo, 3);
  std::vector<Bytes> events;
  for (int i = 0; i < 50; ++i) events.push_back(make_event(solo, "after-" + std::to_string(i)));
  const std::vector<ByteView> views(events.begin(), events.end());
  ASSERT_TRUE(log->append(Partition{0}, views));
  ASSERT_TRUE(log->checkpoint_due(/*force=*/true));
  EXPECT_EQ(verify_log(*log, vo).outcome, VerifyReport::Outcome::verified);
}

TEST(LogStore, ReopenRestoresHeadsAndContinuesTheChain) {
  TempDir dir;
  Head before;
  {
    auto log = open_rw(dir.path());
    append_n(*log, "carol", 7);
    before = log->head(partition_for("carol", 4));
  }
  auto log = open_rw(dir.path());
  const auto p = partition_for("carol", 4);
  EXPECT_EQ(log->head(p).next, before.next);
  EXPECT_EQ(log->head(p).hash, before.hash);
  auto r = append_n(*log, "carol", 1);
  EXPECT_EQ(r.first.value, 7u);
  EXPECT_EQ(verify_log(*log, {}).outcome, VerifyReport::Outcome::verified);
}

TEST(LogStore, ReadsByTimeInSeqOrder) {
  TempDir dir;
  auto log = open_rw(dir.path());
  const std::string s = "dave";
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(append_one(*log, make_event(s, std::to_string(i), 1'000'000 * (i + 1)), s));
  }
  auto r = log->read_by_time(partition_for(s, 4), 3'000'000, 6'000'000);
  ASSERT_TRUE(r);
  ASSERT_EQ(r.value().size(), 3u);
  EXPECT_EQ(r.value()[0].position.seq.value, 2u);
  EXPECT_EQ(r.value()[2].position.seq.value, 4u);
}

TEST(LogStore, TailWaitsForRecordsAppendedLater) {
  TempDir dir;
  auto log = open_rw(dir.path());
  const std::string s = "erin";
  const auto p = partition_for(s, 4);
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    append_n(*log, s, 2);
  });
  auto r = log->wait_for(p, Seq{0}, std::chrono::seconds(10));
  writer.join();
  ASSERT_TRUE(r);
  EXPECT_GE(r.value().size(), 1u);
  auto none = log->wait_for(p, Seq{2}, std::chrono::milliseconds(20));
  ASSERT_TRUE(none);
  EXPECT_TRUE(none.value().empty());
}

TEST(LogStore, ReadOnlyInstanceReadsWhileWriterIsOpenAndCatchesUp) {
  TempDir dir;
  auto writer = open_rw(dir.path());
  append_n(*writer, "frank", 3);
  LogOptions ro;
  ro.path = dir.path();
  ro.mode = LogOptions::Mode::read_only;
  auto reader = LogStore::open(ro);
  ASSERT_TRUE(reader) << reader.error().message();
  const auto p = partition_for("frank", 4);
  EXPECT_EQ(reader.value()->head(p).next.value, 3u);
  append_n(*writer, "frank", 2);
  ASSERT_TRUE(reader.value()->catch_up());
  EXPECT_EQ(reader.value()->head(p).next.value, 5u);
  EXPECT_EQ(reader.value()->append(p, {}).error(), Errc::invalid_argument);
  auto tail = reader.value()->wait_for(p, Seq{5}, std::chrono::milliseconds(10));
  ASSERT_TRUE(tail);
  append_n(*writer, "frank", 1);
  tail = reader.value()->wait_for(p, Seq{5}, std::chrono::seconds(10));
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail.value().size(), 1u);
}

TEST(LogStore, SecondWriterIsRefusedAsLocked) {
  TempDir dir;
  auto first = open_rw(dir.path());
  LogOptions o;
  o.path = dir.path();
  auto second = LogStore::open(o);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), Errc::store_locked);
}

TEST(LogStore, OpeningAMissingStoreFailsClearly) {
  TempDir dir;
  LogOptions o;
  o.path = dir.sub("nothing-here");
  EXPECT_EQ(LogStore::open(o).error(), Errc::store_missing);
  o.mode = LogOptions::Mode::read_only;
  EXPECT_EQ(LogStore::open(o).error(), Errc::store_missing);
  o.mode = LogOptions::Mode::read_write;
  o.create_if_missing = true;
  o.partitions = 0;
  EXPECT_EQ(LogStore::open(o).error(), Errc::invalid_argument);
}

TEST(LogStore, WritesASignedCheckpointEveryNRecords) {
  TempDir dir;
  auto signer = testing::make_signer();
  auto log = open_signing(dir.path(), signer, 4);
  const std::string s = "gina";
  append_n(*log, s, 9);
  auto notes = log->checkpoints(partition_for(s, 4));
  ASSERT_TRUE(notes);
  ASSERT_EQ(notes.value().size(), 2u);  // at sizes 4 and 8
  TrustedKeys trusted;
  ASSERT_TRUE(trusted.add(signer.verifier_key()));
  const auto check = trusted.verify(notes.value()[1]);
  EXPECT_EQ(check.status, TrustedKeys::Status::ok);
  EXPECT_EQ(check.checkpoint.size, 8u);
  EXPECT_EQ(check.checkpoint.origin, checkpoint_origin(log->ledger_id(), partition_for(s, 4)));
  VerifyOptions vo;
  vo.trusted = &trusted;
  const auto report = verify_log(*log, vo);
  EXPECT_EQ(report.outcome, VerifyReport::Outcome::verified);
  EXPECT_EQ(report.checkpoints, 2u);
}

TEST(LogStore, CheckpointsAnIdlePartitionAfterTheTimeInterval) {
  TempDir dir;
  auto signer = testing::make_signer();
  ManualClock clock;
  CheckpointPolicy policy;
  policy.every_records = 0;
  policy.every = std::chrono::seconds(60);
  auto log = open_rw(dir.path(), &signer, &clock, policy);
  const std::string s = "hank";
  const auto p = partition_for(s, 4);
  append_n(*log, s, 3);
  ASSERT_EQ(log->checkpoint_due().value(), 0u);  // interval not yet over
  clock.advance_micros(61'000'000);
  ASSERT_EQ(log->checkpoint_due().value(), 1u);  // only the partition with new records
  ASSERT_EQ(log->checkpoints(p).value().size(), 1u);
  clock.advance_micros(61'000'000);
  EXPECT_EQ(log->checkpoint_due().value(), 0u);  // nothing new since
}

}  // namespace
}  // namespace sechex::ledger
