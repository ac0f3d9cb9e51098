// KafkaLog against a real Kafka broker (ctest label `kafka`). Run with
//   ops/kafka/with-broker --brokers 1 -- build/debug/tests/ledger/kafka_log_test
// Without SECHEX_KAFKA_BROKERS every test is skipped; without SECHEX_KAFKA_DIR (a cluster not
// started by ops/kafka) the broker kill test is skipped.
#include "ledger/kafka_log.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "ledger/crypto.h"
#include "ledger/merkle.h"
#include "ledger/proof.h"
#include "ledger/verify.h"
#include "support/process.h"
#include "support/test_util.h"

namespace sechex::ledger {
namespace {

using namespace std::chrono_literals;
using testing::make_event;
using testing::subject_in;

const char* brokers() { return std::getenv("SECHEX_KAFKA_BROKERS"); }

#define REQUIRE_BROKER()                                                                 \
  if (brokers() == nullptr)                                                              \
  GTEST_SKIP() << "SECHEX_KAFKA_BROKERS is unset: run under ops/kafka/with-broker (see " \
                  "ops/kafka/README.md), e.g. ops/kafka/with-broker -- ctest -L kafka"

std::string unique(const std::string& name) {
  auto id = crypto::random_bytes(4);
  return name + "-" + to_hex(id.value());
}

KafkaLogOptions options(const std::string& topic, const std::string& prefix) {
  KafkaLogOptions o;
  o.brokers = brokers();
  o.topic = topic;
  o.partitions = 2;
  o.transactional_id_prefix = prefix;
  o.request_timeout = 20s;
  o.transaction_timeout = 30s;
  o.message_timeout = 20s;
  return o;
}

std::unique_ptr<KafkaLog> open_log(const KafkaLogOptions& o) {
  auto log = KafkaLog::open(o);
  EXPECT_TRUE(log) << log.error().message();
  return log ? std::move(log).value() : nullptr;
}

Result<AppendResult> append_events(KafkaLog& log, Partition p, const std::vector<Bytes>& events) {
  std::vector<ByteView> views(events.begin(), events.end());
  return log.append(p, views);
}

std::string note_of(const Record& r) {
  const auto* env = schemas::envelope_of(r.event.data());
  return env->request_id()->str();  // make_event puts "req-<note>" here
}

// Reads the whole partition and checks seq 0.. contiguous and every hash linking.
std::vector<Record> read_checked(const KafkaLog& log, Partition p) {
  auto records = log.read_range(p, Seq{0}, Seq{UINT64_MAX});
  EXPECT_TRUE(records) << records.error().message() << " " << log.last_error();
  if (!records) return {};
  Hash prev{};
  for (std::size_t i = 0; i < records.value().size(); ++i) {
    const auto& r = records.value()[i];
    EXPECT_EQ(r.position.partition, p);
    EXPECT_EQ(r.position.seq.value, i) << "seqs must be contiguous";
    EXPECT_EQ(r.hash, chain_hash(p, Seq{i}, prev, r.event)) << "seq " << i << " does not link";
    prev = r.hash;
  }
  return std::move(records).value();
}

TEST(KafkaLog, AppendThenReadBackLinks) {
  REQUIRE_BROKER();
  const auto topic = unique("t-append");
  const auto o = options(topic, unique("x") + "-");
  auto log = open_log(o);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->partition_count(), 2u);
  EXPECT_EQ(log->ledger_id().size(), 32u);
  const auto subject = subject_in(1, 2);
  const Partition p{1};
  EXPECT_EQ(log->head(p).next.value, 0u);

  std::vector<Bytes> batch;
  for (int i = 0; i < 5; ++i) batch.push_back(make_event(subject, "b" + std::to_string(i)));
  auto r = append_events(*log, p, batch);
  ASSERT_TRUE(r) << r.error().message() << " " << log->last_error();
  EXPECT_EQ(r.value().first.value, 0u);
  EXPECT_EQ(r.value().last.value, 4u);
  ASSERT_EQ(r.value().hashes.size(), 5u);
  EXPECT_EQ(r.value().hashes.back(), r.value().head);
  auto r2 = append_events(*log, p, {make_event(subject, "single")});
  ASSERT_TRUE(r2) << log->last_error();
  EXPECT_EQ(r2.value().first.value, 5u);

  const auto records = read_checked(*log, p);
  ASSERT_EQ(records.size(), 6u);
  EXPECT_EQ(note_of(records[5]), "req-single");
  EXPECT_EQ(records.back().hash, r2.value().head);
  EXPECT_EQ(log->head(p).next.value, 6u);
  EXPECT_EQ(log->head(p).hash, r2.value().head);
  // Partial ranges and `max`.
  auto mid = log->read_range(p, Seq{2}, Seq{4});
  ASSERT_TRUE(mid);
  ASSERT_EQ(mid.value().size(), 2u);
  EXPECT_EQ(mid.value()[0].position.seq.value, 2u);
  auto capped = log->read_range(p, Seq{1}, Seq{100}, 3);
  ASSERT_TRUE(capped);
  EXPECT_EQ(capped.value().size(), 3u);
  // The other partition is untouched.
  EXPECT_TRUE(log->read_range(Partition{0}, Seq{0}, Seq{10}).value().empty());
  // Bad batches write nothing.
  EXPECT_EQ(log->append(p, {}).error(), Errc::invalid_argument);
  const std::string garbage = "not a flatbuffer";
  const ByteView bad = as_bytes(garbage);
  EXPECT_EQ(log->append(p, std::span<const ByteView>(&bad, 1)).error(), Errc::invalid_argument);
  EXPECT_EQ(log->append(Partition{7}, std::span<const ByteView>(&bad, 1)).error(),
            Errc::invalid_argument);
  EXPECT_EQ(log->stats().appends, 2u);
  EXPECT_EQ(log->stats().events, 6u);

  // A reader process (read-only, no producer) sees the same head and records.
  auto ro = o;
  ro.read_only = true;
  ro.create_if_missing = false;
  auto reader = open_log(ro);
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->ledger_id(), log->ledger_id());
  EXPECT_EQ(reader->head(p).next.value, 6u);
  EXPECT_EQ(reader->head(p).hash, r2.value().head);
  EXPECT_EQ(append_events(*reader, p, batch).error(), Errc::invalid_argument);
  // wait_for returns what is there, and wakes up for a later append.
  auto tail = reader->wait_for(p, Seq{4}, 5s);
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail.value().size(), 2u);
  std::thread later([&] {
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(append_events(*log, p, {make_event(subject, "later")}));
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto woke = reader->wait_for(p, Seq{6}, 15s);
  later.join();
  ASSERT_TRUE(woke);
  ASSERT_EQ(woke.value().size(), 1u);
  EXPECT_EQ(woke.value()[0].position.seq.value, 6u);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  auto none = reader->wait_for(p, Seq{7}, 200ms);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none.value().empty());

  // A missing topic is not created by a read-only open.
  auto missing = options(unique("t-missing"), "m-");
  missing.create_if_missing = false;
  auto m = KafkaLog::open(missing);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error(), Errc::store_missing);
}

TEST(KafkaLog, ReopenContinuesTheChain) {
  REQUIRE_BROKER();
  const auto o = options(unique("t-reopen"), unique("x") + "-");
  const Partition p{0};
  const auto subject = subject_in(0, 2);
  Hash head{};
  std::string id;
  {
    auto log = open_log(o);
    ASSERT_TRUE(log);
    id = log->ledger_id();
    for (int i = 0; i < 3; ++i) {
      auto r = append_events(*log, p, {make_event(subject, "a" + std::to_string(i))});
      ASSERT_TRUE(r) << log->last_error();
      head = r.value().head;
    }
  }
  auto log = open_log(o);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->ledger_id(), id);
  EXPECT_EQ(log->head(p).next.value, 3u);
  EXPECT_EQ(log->head(p).hash, head);
  auto r = append_events(*log, p, {make_event(subject, "b0"), make_event(subject, "b1")});
  ASSERT_TRUE(r) << log->last_error();
  EXPECT_EQ(r.value().first.value, 3u);
  const auto records = read_checked(*log, p);
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records[2].hash, head);
}

TEST(KafkaLog, SecondWriterFencesTheFirstAndTheChainDoesNotFork) {
  REQUIRE_BROKER();
  const auto o = options(unique("t-fence"), unique("x") + "-");
  const Partition p{1};
  const auto subject = subject_in(1, 2);
  auto a = open_log(o);
  auto b = open_log(o);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(append_events(*a, p, {make_event(subject, "a0")})) << a->last_error();
  ASSERT_TRUE(append_events(*a, p, {make_event(subject, "a1")})) << a->last_error();
  // b's first append creates its producer: init_transactions fences a.
  auto rb = append_events(*b, p, {make_event(subject, "b0")});
  ASSERT_TRUE(rb) << b->last_error();
  EXPECT_EQ(rb.value().first.value, 2u);
  auto ra = append_events(*a, p, {make_event(subject, "a2")});
  ASSERT_FALSE(ra);
  EXPECT_EQ(ra.error(), Errc::writer_failed);
  EXPECT_TRUE(a->fenced(p));
  EXPECT_NE(a->last_error().find("fenced"), std::string::npos) << a->last_error();
  // It stays refused, even with the other partition still usable for it.
  EXPECT_EQ(append_events(*a, p, {make_event(subject, "a3")}).error(), Errc::writer_failed);
  ASSERT_TRUE(append_events(*b, p, {make_event(subject, "b1")})) << b->last_error();

  const auto records = read_checked(*b, p);
  ASSERT_EQ(records.size(), 4u);
  std::vector<std::string> notes;
  for (const auto& r : records) notes.push_back(note_of(r));
  EXPECT_EQ(notes, (std::vector<std::string>{"req-a0", "req-a1", "req-b0", "req-b1"}));
}

// Child mode: holds a transaction open on partition 0 of $SECHEX_KAFKA_CHILD_TOPIC with
// records that continue the chain (seq, hash), writes "ready" to $SECHEX_KAFKA_CHILD_READY,
// then waits to be killed.
TEST(KafkaLogChild, HoldOpenTransaction) {
  const char* topic = std::getenv("SECHEX_KAFKA_CHILD_TOPIC");
  if (topic == nullptr) GTEST_SKIP() << "only run as a child process";
  ASSERT_NE(brokers(), nullptr) << "the parent passes SECHEX_KAFKA_BROKERS";
  const Partition p{0};
  Seq next{std::stoull(std::getenv("SECHEX_KAFKA_CHILD_NEXT"))};
  Bytes head_bytes;
  ASSERT_TRUE(from_hex(std::getenv("SECHEX_KAFKA_CHILD_HEAD"), head_bytes));
  Hash head{};
  std::copy(head_bytes.begin(), head_bytes.end(), head.begin());
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::string tid = std::string(std::getenv("SECHEX_KAFKA_CHILD_PREFIX")) + "ledger-0";
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), err, sizeof(err)), 0);
  ASSERT_EQ(rd_kafka_conf_set(conf, "transactional.id", tid.c_str(), err, sizeof(err)), 0);
  ASSERT_EQ(rd_kafka_conf_set(conf, "transaction.timeout.ms", "60000", err, sizeof(err)), 0);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  ASSERT_NE(rk, nullptr) << err;
  ASSERT_EQ(rd_kafka_init_transactions(rk, 30000), nullptr);
  ASSERT_EQ(rd_kafka_begin_transaction(rk), nullptr);
  for (int i = 0; i < 3; ++i) {
    const auto ev = make_event("child", "uncommitted" + std::to_string(i));
    head = chain_hash(p, next, head, ev);
    const auto value = encode_record(p, next, head, ev);
    std::string seq;
    for (int s = 56; s >= 0; s -= 8) seq.push_back(static_cast<char>(next.value >> s));
    ASSERT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADER("seq", seq.data(), 8),
                                RD_KAFKA_V_HEADER("hash", head.data(), 32), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    next = Seq{next.value + 1};
  }
  ASSERT_EQ(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);  // on the broker, uncommitted
  std::ofstream(std::getenv("SECHEX_KAFKA_CHILD_READY")) << "ready\n";
  for (;;) std::this_thread::sleep_for(1s);
}

// Starts KafkaLogChild.HoldOpenTransaction continuing the chain after `before`, and waits
// (up to 60 s) until its records are on the broker.
struct OpenTransactionChild {
  pid_t pid = -1;
  bool ready = false;
  std::string output;  // the child's stderr, when it did not get ready
};
OpenTransactionChild start_open_transaction(const testing::TempDir& dir, const std::string& topic,
                                            const std::string& prefix, const Head& before) {
  const auto ready = dir.sub("ready");
  // Children do not inherit SECHEX_KAFKA_BROKERS (support/process.h): it is passed explicitly.
  const auto child = testing::spawn(
      {"/proc/self/exe", "--gtest_filter=KafkaLogChild.*"}, dir.sub("child.err"),
      {"SECHEX_KAFKA_BROKERS=" + std::string(brokers()), "SECHEX_KAFKA_CHILD_TOPIC=" + topic,
       "SECHEX_KAFKA_CHILD_PREFIX=" + prefix,
       "SECHEX_KAFKA_CHILD_NEXT=" + std::to_string(before.next.value),
       "SECHEX_KAFKA_CHILD_HEAD=" + to_hex(before.hash), "SECHEX_KAFKA_CHILD_READY=" + ready});
  OpenTransactionChild c{child.pid, false, {}};
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!std::filesystem::exists(ready) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  c.ready = std::filesystem::exists(ready);
  if (!c.ready) {
    // ctest counts a test whose output holds gtest's skip marker as skipped: a child's skip
    // quoted in this test's failure must not turn the failure into a skip.
    ::kill(child.pid, SIGKILL);
    testing::wait_exit(child.pid);
    c.output = testing::slurp(dir.sub("child.err"));
    for (auto at = c.output.find("SKIPPED"); at != std::string::npos;
         at = c.output.find("SKIPPED", at)) {
      c.output.replace(at, 7, "skipped");
    }
  }
  return c;
}

TEST(KafkaLog, UncommittedTransactionOfAKilledWriterNeverBecomesVisible) {
  REQUIRE_BROKER();
  const auto topic = unique("t-uncommitted");
  const auto prefix = unique("x") + "-";
  const auto o = options(topic, prefix);
  const Partition p{0};
  const auto subject = subject_in(0, 2);
  Head before;
  {
    auto log = open_log(o);
    ASSERT_TRUE(log);
    auto r = append_events(*log, p, {make_event(subject, "c0"), make_event(subject, "c1")});
    ASSERT_TRUE(r) << log->last_error();
    before = log->head(p);
  }
  testing::TempDir dir;
  auto child = start_open_transaction(dir, topic, prefix, before);
  ASSERT_TRUE(child.ready) << child.output;

  auto log = open_log(o);
  ASSERT_TRUE(log);
  // While the transaction is open, readers see the committed tail only.
  auto seen = log->recover_head(p);
  ASSERT_TRUE(seen) << log->last_error();
  EXPECT_EQ(seen.value().next.value, before.next.value);
  EXPECT_EQ(seen.value().hash, before.hash);
  ::kill(child.pid, SIGKILL);
  EXPECT_EQ(testing::wait_exit(child.pid), 128 + SIGKILL);

  // The next writer (same transactional.id) aborts the open transaction and continues.
  auto r = append_events(*log, p, {make_event(subject, "c2")});
  ASSERT_TRUE(r) << log->last_error();
  EXPECT_EQ(r.value().first.value, before.next.value);
  const auto records = read_checked(*log, p);
  ASSERT_EQ(records.size(), 3u);
  for (const auto& rec : records) {
    EXPECT_EQ(note_of(rec).find("uncommitted"), std::string::npos);
  }
  EXPECT_EQ(note_of(records[2]), "req-c2");
}

// kill -9 the single broker during appends and restart it. With long timeouts the appends
// wait the restart out; with short ones some fail (commit timed out: the outcome is unknown
// to the writer, which recreates its producer and re-recovers the tail). Either way every
// acknowledged event is present exactly once, nothing is present twice, the chain links.
void kill_broker_during_appends(std::chrono::milliseconds request_timeout,
                                std::chrono::milliseconds message_timeout,
                                std::chrono::milliseconds transaction_timeout,
                                std::size_t min_acked) {
  auto o = options(unique("t-kill"), unique("x") + "-");
  o.request_timeout = request_timeout;
  o.message_timeout = message_timeout;
  o.transaction_timeout = transaction_timeout;
  auto log = open_log(o);
  ASSERT_TRUE(log);
  const Partition p{0};
  const auto subject = subject_in(0, 2);
  constexpr int kAppends = 120;
  std::map<std::string, std::uint64_t> acked;  // note -> seq
  std::atomic<int> done{0};
  std::vector<std::string> failures;
  std::thread appender([&] {
    for (int i = 0; i < kAppends; ++i) {
      const auto note = "k" + std::to_string(i);
      auto r = append_events(*log, p, {make_event(subject, note)});
      if (r) {
        acked["req-" + note] = r.value().first.value;
      } else {
        failures.push_back(r.error().message() + ": " + log->last_error());
      }
      done = i + 1;
    }
  });
  while (done < 20) std::this_thread::sleep_for(10ms);
  const std::string kafka = std::string(SECHEX_SOURCE_DIR) + "/ops/kafka/";
  auto killed = testing::run({kafka + "kill-broker", "1"});
  EXPECT_EQ(killed.code, 0) << killed.err;
  const int at_kill = done;
  std::this_thread::sleep_for(1s);
  auto restarted = testing::run({kafka + "restart-broker", "1"});
  EXPECT_EQ(restarted.code, 0) << restarted.err;
  appender.join();
  std::cerr << "killed at append " << at_kill << "; " << acked.size() << " acknowledged, "
            << failures.size() << " failed\n";
  for (const auto& f : failures) std::cerr << "  failed: " << f << "\n";
  EXPECT_GE(acked.size(), min_acked);

  const auto records = read_checked(*log, p);
  std::map<std::string, int> count;
  for (const auto& r : records) ++count[note_of(r)];
  for (const auto& [note, seq] : acked) {
    EXPECT_EQ(count[note], 1) << note << " acknowledged at seq " << seq;
    ASSERT_LT(seq, records.size());
    EXPECT_EQ(note_of(records[seq]), note);
  }
  for (const auto& [note, n] : count) EXPECT_EQ(n, 1) << note << " present " << n << " times";
  // And the writer goes on after the restart.
  auto r = append_events(*log, p, {make_event(subject, "after")});
  ASSERT_TRUE(r) << log->last_error();
  EXPECT_EQ(r.value().first.value, records.size());
}

bool single_node_cluster_of_ours() {
  const char* dir = std::getenv("SECHEX_KAFKA_DIR");
  const char* nodes = std::getenv("SECHEX_KAFKA_NODES");
  return dir != nullptr && nodes != nullptr && std::string(nodes) == "1";
}

TEST(KafkaLog, BrokerKilledDuringAppendsLosesNothingAcknowledged) {
  REQUIRE_BROKER();
  if (!single_node_cluster_of_ours()) {
    GTEST_SKIP() << "needs a single-node cluster started by ops/kafka/with-broker --brokers 1";
  }
  kill_broker_during_appends(30s, 45s, 60s, 120);
}

TEST(KafkaLog, BrokerKilledWithShortTimeoutsFailedAppendsAreNotDuplicated) {
  REQUIRE_BROKER();
  if (!single_node_cluster_of_ours()) {
    GTEST_SKIP() << "needs a single-node cluster started by ops/kafka/with-broker --brokers 1";
  }
  kill_broker_during_appends(2s, 4s, 10s, 60);
}

// Many batched appends and reads through the sparse index; prints rough timings (ASan build,
// broker on the same 2 cores: not a benchmark, see bench/ for that).
TEST(KafkaLog, BatchedAppendsAndIndexedReads) {
  REQUIRE_BROKER();
  auto log = open_log(options(unique("t-batch"), unique("x") + "-"));
  ASSERT_TRUE(log);
  const Partition p{1};
  const auto subject = subject_in(1, 2);
  constexpr int kBatches = 20, kPerBatch = 100;
  const auto t0 = std::chrono::steady_clock::now();
  for (int b = 0; b < kBatches; ++b) {
    std::vector<Bytes> batch;
    for (int i = 0; i < kPerBatch; ++i) {
      batch.push_back(make_event(subject, std::to_string(b) + "." + std::to_string(i)));
    }
    ASSERT_TRUE(append_events(*log, p, batch)) << log->last_error();
  }
  const auto t1 = std::chrono::steady_clock::now();
  const auto records = read_checked(*log, p);
  const auto t2 = std::chrono::steady_clock::now();
  ASSERT_EQ(records.size(), std::size_t{kBatches * kPerBatch});
  // A read in the middle starts from the index, not from offset 0.
  auto mid = log->read_range(p, Seq{1234}, Seq{1240});
  const auto t3 = std::chrono::steady_clock::now();
  ASSERT_TRUE(mid);
  ASSERT_EQ(mid.value().size(), 6u);
  EXPECT_EQ(mid.value()[0].hash, records[1234].hash);
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::cerr << kBatches << " appends of " << kPerBatch << " events: " << ms(t1 - t0)
            << " ms; read all " << records.size() << ": " << ms(t2 - t1)
            << " ms; read 6 from the middle: " << ms(t3 - t2) << " ms\n";
}

TEST(KafkaLog, SignedCheckpointsInTheSameTransaction) {
  REQUIRE_BROKER();
  const auto signer = testing::make_signer();
  auto o = options(unique("t-cp"), unique("x") + "-");
  o.signer = &signer;
  o.checkpoints.every_records = 3;
  o.checkpoints.every = std::chrono::microseconds(0);
  const Partition p{0};
  const auto subject = subject_in(0, 2);
  auto log = open_log(o);
  ASSERT_TRUE(log);
  EXPECT_FALSE(log->latest_checkpoint(p).value());
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(append_events(*log, p, {make_event(subject, "e" + std::to_string(i))}))
        << log->last_error();
  }
  auto cp = log->latest_checkpoint(p);
  ASSERT_TRUE(cp && cp.value()) << log->last_error();
  TrustedKeys keys;
  ASSERT_TRUE(keys.add(signer.verifier_key()));
  auto check = keys.verify(*cp.value());
  ASSERT_EQ(check.status, TrustedKeys::Status::ok);
  EXPECT_EQ(check.checkpoint.size, 3u);
  EXPECT_EQ(check.checkpoint.origin, checkpoint_origin(log->ledger_id(), p));
  const auto records = read_checked(*log, p);
  EXPECT_EQ(check.checkpoint.hash, records[2].hash);
  // Forced: covers the 4th record.
  auto n = log->checkpoint_due(true);
  ASSERT_TRUE(n) << log->last_error();
  EXPECT_EQ(n.value(), 1u);
  auto ro = o;
  ro.read_only = true;
  auto reader = open_log(ro);
  ASSERT_TRUE(reader);
  auto cp2 = reader->latest_checkpoint(p);
  ASSERT_TRUE(cp2 && cp2.value());
  EXPECT_EQ(keys.verify(*cp2.value()).checkpoint.size, 4u);
  EXPECT_EQ(log->stats().checkpoints, 2u);

  // The whole chain verifies through the Log interface from a separate reader, the way
  // `ledgerctl verify --log kafka` does; a verifier that trusts another key says so.
  VerifyOptions vo;
  vo.trusted = &keys;
  const auto report = verify_chain(*reader, vo);
  EXPECT_EQ(report.outcome, VerifyReport::Outcome::verified)
      << (report.fault ? report.fault->reason + ": " + report.fault->detail : "");
  EXPECT_EQ(report.records, 4u);
  EXPECT_EQ(report.checkpoints, 1u);
  TrustedKeys strangers;
  ASSERT_TRUE(strangers.add(testing::make_signer("stranger").verifier_key()));
  vo.trusted = &strangers;
  const auto refused = verify_chain(*reader, vo);
  ASSERT_TRUE(refused.fault);
  EXPECT_EQ(refused.fault->reason, "checkpoint_unknown_key");
}

// Produces one checkpoint message the way a writer would, but outside any writer (a forger
// holding the signing key, or a bug): key be32(partition) || be64(size).
void produce_checkpoint(const std::string& topic, Partition p, const std::string& note) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), err, sizeof(err)), 0);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  ASSERT_NE(rk, nullptr) << err;
  const auto cp = parse_checkpoint_body(note);
  ASSERT_TRUE(cp);
  std::string key;
  for (int s = 24; s >= 0; s -= 8) key.push_back(static_cast<char>(p.value >> s));
  for (int s = 56; s >= 0; s -= 8) key.push_back(static_cast<char>(cp->size >> s));
  ASSERT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC((topic + ".checkpoints").c_str()),
                              RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(key.data(), key.size()),
                              RD_KAFKA_V_VALUE(const_cast<char*>(note.data()), note.size()),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
}

// The RFC 6962 root of a partition's first `size` records, from what a reader returns.
Hash root_of(const std::vector<Record>& records, std::uint64_t size) {
  merkle::CompactRange tree;
  for (std::uint64_t i = 0; i < size; ++i) {
    const auto& r = records[i];
    const auto bytes = encode_record(r.position.partition, r.position.seq, r.hash, r.event);
    tree.push(merkle::leaf_hash(as_bytes(bytes)));
  }
  return tree.root();
}

// Issue 16: Kafka checkpoints commit to the partition's Merkle tree like the embedded log's, every
// checkpoint is kept (key partition || size) so proofs against older ones work, and a writer that
// takes over continues the tree from the latest checkpoint's compact range.
TEST(KafkaLog, CheckpointsCommitToTheMerkleTreeAndInclusionAndConsistencyProofsVerify) {
  REQUIRE_BROKER();
  const auto signer = testing::make_signer();
  TrustedKeys keys;
  ASSERT_TRUE(keys.add(signer.verifier_key()));
  const auto topic = unique("t-tree");
  const auto prefix = unique("x") + "-";
  const Partition p{0};
  const auto subject = subject_in(0, 2);

  // Seven records written before any checkpoint: the first signing writer builds the tree from
  // the records.
  {
    auto o = options(topic, prefix);
    auto plain = open_log(o);
    ASSERT_TRUE(plain);
    for (int i = 0; i < 7; ++i) {
      ASSERT_TRUE(append_events(*plain, p, {make_event(subject, "pre" + std::to_string(i))}))
          << plain->last_error();
    }
  }
  auto o = options(topic, prefix);
  o.signer = &signer;
  o.checkpoints.every_records = 5;
  o.checkpoints.every = std::chrono::microseconds(0);
  {
    auto log = open_log(o);
    ASSERT_TRUE(log);
    for (int b = 0; b < 3; ++b) {  // 10 (checkpoint), 13, 16 (checkpoint) records
      std::vector<Bytes> batch;
      for (int i = 0; i < 3; ++i) {
        batch.push_back(make_event(subject, "a" + std::to_string(b) + "." + std::to_string(i)));
      }
      ASSERT_TRUE(append_events(*log, p, batch)) << log->last_error();
    }
    ASSERT_TRUE(append_events(*log, p, {make_event(subject, "a3")})) << log->last_error();
    ASSERT_EQ(log->checkpoint_due(true).value(), 1u);  // 17
  }
  // A new writer (it fences the old one) continues the tree from the checkpoint at 17.
  {
    auto log = open_log(o);
    ASSERT_TRUE(log);
    for (int i = 0; i < 5; ++i) {  // 22: checkpoint
      ASSERT_TRUE(append_events(*log, p, {make_event(subject, "b" + std::to_string(i))}))
          << log->last_error();
    }
  }

  auto ro = o;
  ro.read_only = true;
  auto reader = open_log(ro);
  ASSERT_TRUE(reader);
  const auto records = read_checked(*reader, p);
  ASSERT_EQ(records.size(), 22u);
  for (const std::uint64_t size : {10u, 16u, 17u, 22u}) {
    auto note = reader->checkpoint_at(p, size);
    ASSERT_TRUE(note) << reader->last_error();
    ASSERT_TRUE(note.value()) << "a checkpoint at size " << size << " is kept";
    const auto check = keys.verify(*note.value());
    ASSERT_EQ(check.status, TrustedKeys::Status::ok);
    ASSERT_TRUE(check.checkpoint.root) << "size " << size;
    EXPECT_EQ(*check.checkpoint.root, root_of(records, size)) << "size " << size;
  }
  EXPECT_FALSE(reader->checkpoint_at(p, 11).value()) << "no checkpoint was written at 11";
  EXPECT_EQ(keys.verify(*reader->latest_checkpoint(p).value()).checkpoint.size, 22u);

  // Inclusion against the latest and an older checkpoint, consistency between two, all checked
  // offline the way `ledgerctl verify-proof` does.
  for (const auto& [seq, size] :
       std::vector<std::pair<std::uint64_t, std::optional<std::uint64_t>>>{
           {0, std::nullopt}, {21, std::nullopt}, {6, 10}, {15, 16}, {16, 17}}) {
    auto proof = prove_inclusion(*reader, p, Seq{seq}, size);
    ASSERT_TRUE(proof) << proof.error().message() << " " << reader->last_error();
    const auto verdict = check_inclusion(proof.value(), keys);
    EXPECT_TRUE(verdict.ok) << "seq " << seq << ": " << verdict.reason << " " << verdict.detail;
  }
  EXPECT_EQ(prove_inclusion(*reader, p, Seq{3}, 11).error(), Errc::not_found);
  auto consistency = prove_consistency(*reader, p, 10, 22);
  ASSERT_TRUE(consistency) << consistency.error().message();
  EXPECT_TRUE(check_consistency(consistency.value(), keys).ok);
  // A proof whose record was altered is refused.
  auto proof = prove_inclusion(*reader, p, Seq{4});
  ASSERT_TRUE(proof);
  proof.value().record.back() ^= 1;
  EXPECT_FALSE(check_inclusion(proof.value(), keys).ok);

  // The whole chain verifies, roots included; a checkpoint signed over a root the records do
  // not give is reported as such.
  VerifyOptions vo;
  vo.trusted = &keys;
  auto report = verify_chain(*reader, vo);
  EXPECT_EQ(report.outcome, VerifyReport::Outcome::verified)
      << (report.fault ? report.fault->reason + ": " + report.fault->detail : "");
  const auto head = reader->head(p);
  Hash wrong_root = root_of(records, 22);
  wrong_root[0] ^= 1;
  auto forged = signer.sign({checkpoint_origin(reader->ledger_id(), p), 22, head.hash, wrong_root});
  ASSERT_TRUE(forged);
  produce_checkpoint(topic, p, forged.value());
  auto fresh = open_log(ro);
  ASSERT_TRUE(fresh);
  report = verify_chain(*fresh, vo);
  ASSERT_TRUE(report.fault);
  EXPECT_EQ(report.fault->reason, "checkpoint_root_mismatch") << report.fault->detail;
}

// --- Long-lived readers (one consumer per partition, kept between reads) ---

using Clock = std::chrono::steady_clock;

// Appends `batches` batches of `per_batch` events; returns every record's hash by seq.
std::vector<Hash> append_batches(KafkaLog& log, Partition p, int batches, int per_batch) {
  std::vector<Hash> hashes;
  const auto subject = subject_in(p.value, 2);
  for (int b = 0; b < batches; ++b) {
    std::vector<Bytes> batch;
    for (int i = 0; i < per_batch; ++i) {
      batch.push_back(make_event(subject, std::to_string(b) + "." + std::to_string(i)));
    }
    auto r = append_events(log, p, batch);
    EXPECT_TRUE(r) << log.last_error();
    if (!r) return hashes;
    hashes.insert(hashes.end(), r.value().hashes.begin(), r.value().hashes.end());
  }
  return hashes;
}

// read_range must return exactly seqs [from, from + n) with the hashes appended.
void expect_range(const KafkaLog& log, Partition p, std::uint64_t from, std::uint64_t to,
                  std::size_t max, const std::vector<Hash>& hashes, std::size_t n) {
  auto got = log.read_range(p, Seq{from}, Seq{to}, max);
  ASSERT_TRUE(got) << got.error().message() << " " << log.last_error();
  ASSERT_EQ(got.value().size(), n) << "read_range(" << from << ", " << to << ", " << max << ")";
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(got.value()[i].position.seq.value, from + i);
    ASSERT_EQ(got.value()[i].hash, hashes[from + i]) << "seq " << from + i;
  }
}

// Catch-up style: many small reads, each from where the previous one ended, by `max` and by
// `to` (the record at `to` is polled but must come back on the next read), then reads that
// seek back and forth on the same reader.
TEST(KafkaLog, SmallSequentialReadsReturnEveryRecordOnceInOrderAndSeeksGoBack) {
  REQUIRE_BROKER();
  const auto o = options(unique("t-seq"), unique("x") + "-");
  auto log = open_log(o);
  ASSERT_TRUE(log);
  const Partition p{0};
  const auto hashes = append_batches(*log, p, 20, 500);
  ASSERT_EQ(hashes.size(), 10'000u);
  auto ro = o;
  ro.read_only = true;
  ro.create_if_missing = false;
  auto reader = open_log(ro);  // no index from appends, no writer head: all from its reader
  ASSERT_TRUE(reader);

  for (const KafkaLog* l : {reader.get(), log.get()}) {
    std::uint64_t next = 0;
    int calls = 0;
    Clock::duration spent[2] = {};
    for (;; ++calls) {
      // Alternately capped by `max` and by `to`.
      const bool by_to = calls % 2 == 1;
      const auto t0 = Clock::now();
      auto batch = by_to ? l->read_range(p, Seq{next}, Seq{next + 61})
                         : l->read_range(p, Seq{next}, Seq{UINT64_MAX}, 97);
      spent[by_to] += Clock::now() - t0;
      ASSERT_TRUE(batch) << batch.error().message() << " " << l->last_error();
      if (batch.value().empty()) break;
      for (const auto& r : batch.value()) {
        ASSERT_EQ(r.position.seq.value, next) << "after " << calls << " reads";
        ASSERT_EQ(r.hash, hashes[next]);
        ++next;
      }
    }
    EXPECT_EQ(next, hashes.size());
    auto ms = [](auto d) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    };
    std::cerr << (l == log.get() ? "writer" : "reader") << ": " << calls << " reads of " << next
              << " records: " << ms(spent[0]) << " ms in reads capped by max, " << ms(spent[1])
              << " ms in reads capped by to\n";
  }

  // Back and forth on the reader, now at the end of the partition.
  expect_range(*reader, p, 5000, 5003, SIZE_MAX, hashes, 3);        // back
  expect_range(*reader, p, 5003, 5010, SIZE_MAX, hashes, 7);        // on from there
  expect_range(*reader, p, 17, 20, SIZE_MAX, hashes, 3);            // further back
  expect_range(*reader, p, 9998, UINT64_MAX, SIZE_MAX, hashes, 2);  // forward, via the index
  expect_range(*reader, p, 0, 1, SIZE_MAX, hashes, 1);
  expect_range(*reader, p, 1, UINT64_MAX, 2, hashes, 2);
  expect_range(*reader, p, 9000, UINT64_MAX, SIZE_MAX, hashes, 1000);
  expect_range(*reader, p, 3, 4, 1, hashes, 1);
  auto tail = reader->wait_for(p, Seq{9999}, 5s);
  ASSERT_TRUE(tail) << reader->last_error();
  ASSERT_EQ(tail.value().size(), 1u);
  EXPECT_EQ(tail.value()[0].hash, hashes[9999]);
  expect_range(*reader, p, 10'000, UINT64_MAX, SIZE_MAX, hashes, 0);
  expect_range(*reader, p, 20'000, UINT64_MAX, SIZE_MAX, hashes, 0);  // past the end
  expect_range(*reader, p, 4, 6, SIZE_MAX, hashes, 2);
}

// A record whose append() returned is in the next read_range() of the same log, and a read at
// the end returns at once (the consumer got its EOF long ago and gets no other).
TEST(KafkaLog, ReadRangeSeesOwnAppendsAndReturnsPromptlyAtTheEnd) {
  REQUIRE_BROKER();
  const auto o = options(unique("t-ryw"), unique("x") + "-");
  auto log = open_log(o);
  ASSERT_TRUE(log);
  const Partition p{1};
  const auto subject = subject_in(1, 2);
  const auto bound = o.request_timeout / 2;
  auto slowest = Clock::duration::zero();
  auto total = Clock::duration::zero();
  int reads = 0;
  auto timed = [&](auto&& read) {
    const auto t0 = Clock::now();
    auto r = read();
    const auto took = Clock::now() - t0;
    slowest = std::max(slowest, took);
    total += took;
    ++reads;
    EXPECT_LT(took, bound);
    return r;
  };
  std::uint64_t next = 0;
  std::vector<Hash> hashes;
  for (int i = 0; i < 30; ++i) {
    std::vector<Bytes> batch;
    for (int k = 0; k <= i % 3; ++k) {
      batch.push_back(make_event(subject, "ryw" + std::to_string(i) + "." + std::to_string(k)));
    }
    auto r = append_events(*log, p, batch);
    ASSERT_TRUE(r) << log->last_error();
    hashes.insert(hashes.end(), r.value().hashes.begin(), r.value().hashes.end());
    auto got = timed([&] { return log->read_range(p, Seq{next}, Seq{UINT64_MAX}); });
    ASSERT_TRUE(got) << log->last_error();
    ASSERT_EQ(got.value().size(), batch.size()) << "append " << i;
    for (const auto& rec : got.value()) {
      ASSERT_EQ(rec.position.seq.value, next);
      ASSERT_EQ(rec.hash, hashes[next]);
      ++next;
    }
    auto none = timed([&] { return log->read_range(p, Seq{next}, Seq{UINT64_MAX}); });
    ASSERT_TRUE(none) << log->last_error();
    EXPECT_TRUE(none.value().empty());
  }

  // Another log (no writer head to go by) at the end of the partition: repeated reads return
  // at once, and it sees what the writer committed since, once the broker's last stable offset
  // covers it (recover_head() reads that offset too).
  auto ro = o;
  ro.read_only = true;
  auto reader = open_log(ro);
  ASSERT_TRUE(reader);
  expect_range(*reader, p, 0, UINT64_MAX, SIZE_MAX, hashes, next);
  for (int i = 0; i < 5; ++i) {
    auto none = timed([&] { return reader->read_range(p, Seq{next}, Seq{UINT64_MAX}); });
    ASSERT_TRUE(none) << reader->last_error();
    EXPECT_TRUE(none.value().empty());
  }
  for (int round = 0; round < 5; ++round) {
    auto r = append_events(*log, p, {make_event(subject, "more" + std::to_string(round))});
    ASSERT_TRUE(r) << log->last_error();
    hashes.push_back(r.value().head);
    const auto deadline = Clock::now() + 10s;
    while (reader->recover_head(p).value().next.value <= next && Clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    timed([&] {
      expect_range(*reader, p, next, UINT64_MAX, SIZE_MAX, hashes, 1);
      return 0;
    });
    ++next;
  }
  std::cerr << reads << " reads, slowest "
            << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count()
            << " ms, mean "
            << std::chrono::duration_cast<std::chrono::microseconds>(total).count() / reads
            << " us\n";
}

// wait_for on a reader already at the end (its EOF long delivered): it wakes up for records
// appended while it waits, and returns empty after its timeout when nothing comes.
TEST(KafkaLog, WaitForOnAReaderAtTheEndWakesUpAndTimesOut) {
  REQUIRE_BROKER();
  const auto o = options(unique("t-wait"), unique("x") + "-");
  auto log = open_log(o);
  ASSERT_TRUE(log);
  const Partition p{0};
  const auto subject = subject_in(0, 2);
  ASSERT_TRUE(append_events(*log, p, {make_event(subject, "w0"), make_event(subject, "w1")}))
      << log->last_error();
  auto ro = o;
  ro.read_only = true;
  auto reader = open_log(ro);
  ASSERT_TRUE(reader);
  // Collects records from `from` until `n` came or 15 s passed.
  auto collect = [&](std::uint64_t from, std::size_t n) {
    std::vector<Record> out;
    const auto deadline = Clock::now() + 15s;
    while (out.size() < n && Clock::now() < deadline) {
      auto got = reader->wait_for(p, Seq{from + out.size()}, 15s);
      EXPECT_TRUE(got) << reader->last_error();
      if (!got) break;
      for (auto& r : got.value()) out.push_back(std::move(r));
    }
    return out;
  };
  auto first = collect(0, 2);
  ASSERT_EQ(first.size(), 2u);
  std::uint64_t next = 2;
  for (int round = 0; round < 4; ++round) {
    const auto t0 = Clock::now();
    auto none = reader->wait_for(p, Seq{next}, 300ms);
    const auto took = Clock::now() - t0;
    ASSERT_TRUE(none) << reader->last_error();
    EXPECT_TRUE(none.value().empty());
    EXPECT_GE(took, 290ms);
    EXPECT_LT(took, 10s);

    std::thread later([&] {
      std::this_thread::sleep_for(200ms);
      EXPECT_TRUE(append_events(*log, p,
                                {make_event(subject, "a" + std::to_string(round)),
                                 make_event(subject, "b" + std::to_string(round))}))
          << log->last_error();
    });
    const auto t1 = Clock::now();
    auto woke = collect(next, 2);
    later.join();
    EXPECT_LT(Clock::now() - t1, 10s);
    ASSERT_EQ(woke.size(), 2u);
    EXPECT_EQ(woke[0].position.seq.value, next);
    EXPECT_EQ(note_of(woke[0]), "req-a" + std::to_string(round));
    EXPECT_EQ(note_of(woke[1]), "req-b" + std::to_string(round));
    next += 2;
  }
}

// Produces `n` records continuing the chain at (next, head) on partition 0 in a transaction
// of another transactional.id, then aborts it.
void produce_aborted(const std::string& topic, const std::string& tid, Seq next, Hash head, int n) {
  const Partition p{0};
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), err, sizeof(err)), 0);
  ASSERT_EQ(rd_kafka_conf_set(conf, "transactional.id", tid.c_str(), err, sizeof(err)), 0);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  ASSERT_NE(rk, nullptr) << err;
  ASSERT_EQ(rd_kafka_init_transactions(rk, 30000), nullptr);
  ASSERT_EQ(rd_kafka_begin_transaction(rk), nullptr);
  for (int i = 0; i < n; ++i) {
    const auto ev = make_event("aborted", "aborted" + std::to_string(i));
    head = chain_hash(p, next, head, ev);
    const auto value = encode_record(p, next, head, ev);
    std::string seq;
    for (int s = 56; s >= 0; s -= 8) seq.push_back(static_cast<char>(next.value >> s));
    ASSERT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(0),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADER("seq", seq.data(), 8),
                                RD_KAFKA_V_HEADER("hash", head.data(), 32), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    next = Seq{next.value + 1};
  }
  ASSERT_EQ(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_abort_transaction(rk, 30000), nullptr);
  rd_kafka_destroy(rk);
}

// A long-lived reader never delivers records of a transaction left open by a killed writer
// (nor waits for it), nor of aborted ones, and reads on correctly after them.
TEST(KafkaLog, LongLivedReaderSkipsOpenAndAbortedTransactions) {
  REQUIRE_BROKER();
  const auto topic = unique("t-readers-txn");
  const auto prefix = unique("x") + "-";
  const auto o = options(topic, prefix);
  const Partition p{0};
  const auto subject = subject_in(0, 2);
  Head before;
  {
    auto log = open_log(o);
    ASSERT_TRUE(log);
    ASSERT_TRUE(append_events(*log, p, {make_event(subject, "c0"), make_event(subject, "c1")}))
        << log->last_error();
    before = log->head(p);
  }
  auto ro = o;
  ro.read_only = true;
  auto reader = open_log(ro);
  ASSERT_TRUE(reader);
  ASSERT_EQ(reader->read_range(p, Seq{0}, Seq{UINT64_MAX}).value().size(), 2u);

  testing::TempDir dir;
  auto child = start_open_transaction(dir, topic, prefix, before);
  ASSERT_TRUE(child.ready) << child.output;

  // The open transaction holds the last stable offset below its records: nothing to read, and
  // the read returns at once.
  const auto t0 = Clock::now();
  auto open_tail = reader->read_range(p, Seq{2}, Seq{UINT64_MAX});
  EXPECT_LT(Clock::now() - t0, o.request_timeout / 2);
  ASSERT_TRUE(open_tail) << reader->last_error();
  EXPECT_TRUE(open_tail.value().empty());
  auto waited = reader->wait_for(p, Seq{2}, 300ms);
  ASSERT_TRUE(waited) << reader->last_error();
  EXPECT_TRUE(waited.value().empty());
  ::kill(child.pid, SIGKILL);
  EXPECT_EQ(testing::wait_exit(child.pid), 128 + SIGKILL);

  // The next writer aborts the open transaction and continues the chain at seq 2.
  auto log = open_log(o);
  ASSERT_TRUE(log);
  auto c2 = append_events(*log, p, {make_event(subject, "c2")});
  ASSERT_TRUE(c2) << log->last_error();
  ASSERT_EQ(c2.value().first.value, 2u);
  auto woke = reader->wait_for(p, Seq{2}, 15s);
  ASSERT_TRUE(woke) << reader->last_error();
  ASSERT_EQ(woke.value().size(), 1u);
  EXPECT_EQ(note_of(woke.value()[0]), "req-c2");
  EXPECT_EQ(woke.value()[0].hash, c2.value().head);

  // An aborted transaction at the tail: a read at the end sees nothing and returns at once.
  produce_aborted(topic, unique("rogue"), Seq{3}, c2.value().head, 4);
  for (const KafkaLog* l : {reader.get(), log.get()}) {
    const auto t1 = Clock::now();
    auto none = l->read_range(p, Seq{3}, Seq{UINT64_MAX});
    EXPECT_LT(Clock::now() - t1, o.request_timeout / 2);
    ASSERT_TRUE(none) << l->last_error();
    EXPECT_TRUE(none.value().empty());
  }
  auto c3 = append_events(*log, p, {make_event(subject, "c3")});
  ASSERT_TRUE(c3) << log->last_error();
  ASSERT_EQ(c3.value().first.value, 3u);
  for (const KafkaLog* l : {reader.get(), log.get()}) {
    const auto deadline2 = Clock::now() + 10s;
    std::vector<Record> got;
    while (got.empty() && Clock::now() < deadline2) {
      got = l->read_range(p, Seq{3}, Seq{UINT64_MAX}).value();
    }
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(note_of(got[0]), "req-c3");
    // And from the start, by seeking back.
    const auto records = read_checked(*l, p);
    ASSERT_EQ(records.size(), 4u);
    for (const auto& rec : records) {
      EXPECT_EQ(note_of(rec).find("uncommitted"), std::string::npos);
      EXPECT_EQ(note_of(rec).find("aborted"), std::string::npos);
    }
  }
}

// Reads of different partitions in parallel, and of one partition from several threads (each
// read moving the shared reader somewhere else), all return what was appended.
TEST(KafkaLog, ConcurrentReadsOfOneAndOfSeveralPartitions) {
  REQUIRE_BROKER();
  const auto o = options(unique("t-par"), unique("x") + "-");
  auto log = open_log(o);
  ASSERT_TRUE(log);
  std::vector<std::vector<Hash>> hashes;
  for (std::uint32_t i = 0; i < 2; ++i)
    hashes.push_back(append_batches(*log, Partition{i}, 4, 500));
  auto ro = o;
  ro.read_only = true;
  auto reader = open_log(ro);
  ASSERT_TRUE(reader);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const Partition p{static_cast<std::uint32_t>(t % 2)};
      const std::size_t step = 50 + 37 * static_cast<std::size_t>(t);
      std::uint64_t next = static_cast<std::uint64_t>(t) * 100;
      while (next < hashes[p.value].size()) {
        auto got = reader->read_range(p, Seq{next}, Seq{UINT64_MAX}, step);
        ASSERT_TRUE(got) << reader->last_error();
        ASSERT_FALSE(got.value().empty()) << "partition " << p.value << " from " << next;
        for (const auto& r : got.value()) {
          ASSERT_EQ(r.position.seq.value, next);
          ASSERT_EQ(r.hash, hashes[p.value][next]);
          ++next;
        }
      }
      EXPECT_TRUE(reader->read_range(p, Seq{next}, Seq{UINT64_MAX}).value().empty());
    });
  }
  for (auto& t : threads) t.join();
}

// The low watermark of a topic partition: the first offset retention left.
std::int64_t low_watermark(const std::string& topic, std::int32_t partition) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  EXPECT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), err, sizeof(err)), 0);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  EXPECT_NE(rk, nullptr) << err;
  std::int64_t low = -1, high = -1;
  EXPECT_EQ(rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &low, &high, 30000),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
  return low;
}

// Issue 16, Kafka retention: the owner stores the stubs (hash, event digest, leaf) and the cut
// where every process finds them, then DeleteRecords removes the records; another process that
// read the partition before agrees on the cut, answers "pruned" below it (never a silent gap),
// reads on above it, verifies the chain and proves records above the cut against the checkpoint.
TEST(KafkaLog, RetentionKeepsStubsDeletesRecordsAndTwoProcessesAgree) {
  REQUIRE_BROKER();
  const auto signer = testing::make_signer();
  TrustedKeys keys;
  ASSERT_TRUE(keys.add(signer.verifier_key()));
  const auto topic = unique("t-prune");
  auto o = options(topic, unique("x") + "-");
  o.signer = &signer;
  o.checkpoints.every_records = 0;
  o.checkpoints.every = std::chrono::microseconds(0);
  const Partition p{0};
  auto writer = open_log(o);
  ASSERT_TRUE(writer);
  const auto hashes = append_batches(*writer, p, 26, 200);  // 5200 records: two stub chunks
  ASSERT_EQ(hashes.size(), 5200u);
  ASSERT_EQ(writer->checkpoint_due(true).value(), 1u);

  // Another process that has read the whole partition (its reader and offset index are warm).
  auto ro = o;
  ro.read_only = true;
  auto other = open_log(ro);
  ASSERT_TRUE(other);
  ASSERT_EQ(read_checked(*other, p).size(), 5200u);
  EXPECT_EQ(other->prune(p, Seq{10}, 1).error(), Errc::invalid_argument) << "read-only";

  // Two runs: the second rewrites the first's partial chunk and starts the next one.
  auto first = writer->prune(p, Seq{3000}, 1'000);
  ASSERT_TRUE(first) << first.error().message() << " " << writer->last_error();
  EXPECT_EQ(first.value().pruned, 3000u);
  EXPECT_GT(first.value().bytes_freed, 0u);
  auto second = writer->prune(p, Seq{5000}, 2'000);
  ASSERT_TRUE(second) << second.error().message() << " " << writer->last_error();
  EXPECT_EQ(second.value().pruned, 2000u);
  EXPECT_EQ(writer->prune(p, Seq{4000}, 3'000).value().pruned, 0u) << "a cut never moves back";
  EXPECT_EQ(writer->prune(p, Seq{6000}, 3'000).error(), Errc::invalid_argument) << "past head";
  EXPECT_EQ(writer->retention_cut(p).below.value, 5000u);
  EXPECT_EQ(writer->retention_cut(p).before_micros, 2'000);
  EXPECT_GT(low_watermark(topic, 0), 5000) << "the records below the cut left the brokers";
  EXPECT_EQ(writer->read_range(p, Seq{4999}, Seq{5001}).error(), Errc::pruned);

  // The other process: its first read below the cut finds the gap and says "pruned".
  EXPECT_EQ(other->read_range(p, Seq{100}, Seq{200}).error(), Errc::pruned);
  EXPECT_EQ(other->retention_cut(p).below.value, 5000u);
  EXPECT_EQ(other->read_range(p, Seq{0}, Seq{1}).error(), Errc::pruned);
  auto above = other->read_range(p, Seq{5000}, Seq{5200});
  ASSERT_TRUE(above) << above.error().message() << " " << other->last_error();
  ASSERT_EQ(above.value().size(), 200u);
  EXPECT_EQ(above.value().front().hash, hashes[5000]);
  for (const std::uint64_t s : {0u, 2999u, 3000u, 4095u, 4096u, 4999u}) {
    auto h = other->record_hash(p, Seq{s});
    ASSERT_TRUE(h) << "seq " << s << ": " << h.error().message() << " " << other->last_error();
    EXPECT_EQ(h.value(), hashes[s]) << "seq " << s << ": the kept hash";
  }

  // Verification starts at the cut and still checks the signed root over the kept leaves;
  // records above the cut are proved against the checkpoint, those below answer "pruned".
  VerifyOptions vo;
  vo.trusted = &keys;
  const auto report = verify_chain(*other, vo);
  EXPECT_EQ(report.outcome, VerifyReport::Outcome::verified)
      << (report.fault ? report.fault->reason + ": " + report.fault->detail : "");
  ASSERT_FALSE(report.partitions.empty());
  EXPECT_EQ(report.partitions[0].cut.below.value, 5000u);
  EXPECT_EQ(report.partitions[0].records, 5200u);
  auto proof = prove_inclusion(*other, p, Seq{5100});
  ASSERT_TRUE(proof) << proof.error().message();
  EXPECT_TRUE(check_inclusion(proof.value(), keys).ok);
  EXPECT_EQ(prove_inclusion(*other, p, Seq{100}).error(), Errc::pruned);

  // A new writer continues the chain and the tree after the cut.
  writer.reset();
  auto next = open_log(o);
  ASSERT_TRUE(next);
  ASSERT_TRUE(append_events(*next, p, {make_event(subject_in(0, 2), "after-cut")}))
      << next->last_error();
  ASSERT_EQ(next->checkpoint_due(true).value(), 1u);
  auto fresh = open_log(ro);
  ASSERT_TRUE(fresh);
  const auto again = verify_chain(*fresh, vo);
  EXPECT_EQ(again.outcome, VerifyReport::Outcome::verified)
      << (again.fault ? again.fault->reason + ": " + again.fault->detail : "");
  EXPECT_EQ(again.records, 5201u);
  auto consistency = prove_consistency(*fresh, p, 5200, 5201);
  ASSERT_TRUE(consistency) << consistency.error().message();
  EXPECT_TRUE(check_consistency(consistency.value(), keys).ok);
}

}  // namespace
}  // namespace sechex::ledger
