// ledgerctl with --log kafka against the real broker that ops/test starts (label `kafka`):
// verify of a chain written by KafkaLog with the data directory's key; demo on a fresh topic
// then verify, export, tail, checkpoints and replay; export's decryption, erasure and offset
// gaps. Tests needing a broker are skipped (saying why) when SECHEX_KAFKA_BROKERS is unset.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>

#include "ledger/data_dir.h"
#include "ledger/kafka_keys.h"
#include "ledger/kafka_log.h"
#include "ledger/time_format.h"
#include "support/export_checks.h"
#include "support/process.h"
#include "support/test_util.h"

namespace sechex::ledger {
namespace {

TEST(LedgerctlKafka, VerifiesAChainWrittenToKafkaWithTheDataDirectorysKey) {
  const char* brokers = std::getenv("SECHEX_KAFKA_BROKERS");
  if (brokers == nullptr || *brokers == '\0') GTEST_SKIP() << "SECHEX_KAFKA_BROKERS is not set";
  testing::TempDir dir;
  const DataDir data{dir.sub("data")};
  std::string created;
  ASSERT_TRUE(init_data_dir(data, 2, kDefaultKeyName, &created));
  auto signer = CheckpointSigner::load(data.signing_key(), kDefaultKeyName);
  ASSERT_TRUE(signer);
  const auto topic = "ctl-verify-" + std::to_string(std::random_device{}());
  {
    KafkaLogOptions o;
    o.brokers = brokers;
    o.topic = topic;
    o.partitions = 2;
    o.signer = &signer.value();
    o.checkpoints.every_records = 4;
    o.checkpoints.every = std::chrono::microseconds(0);
    auto log = KafkaLog::open(o);
    ASSERT_TRUE(log) << log.error().message();
    for (std::uint32_t p = 0; p < 2; ++p) {
      const auto subject = testing::subject_in(p, 2);
      for (int i = 0; i < 5; ++i) {
        const auto e = testing::make_event(subject, "e" + std::to_string(i));
        const ByteView v(e);
        ASSERT_TRUE(log.value()->append(Partition{p}, std::span<const ByteView>(&v, 1)))
            << log.value()->last_error();
      }
    }
  }
  const std::vector<std::string> base = {SECHEX_LEDGERCTL, "--data-dir", data.root,
                                         "--log",          "kafka",      "--kafka-brokers",
                                         brokers,          "--topic",    topic};
  auto args = base;
  args.push_back("verify");
  const auto ok = testing::run(args, {"SECHEX_KEK="});
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("verified: 10 records, 2 signed checkpoints, 2 partitions"),
            std::string::npos)
      << ok.out;

  // Someone else's trusted keys: the checkpoints do not count as ours.
  const auto other = dir.sub("other-keys.txt");
  std::ofstream(other) << testing::make_signer("stranger").verifier_key() << "\n";
  args = base;
  args.insert(args.end(), {"--trusted-keys", other, "verify"});
  const auto refused = testing::run(args, {"SECHEX_KEK="});
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.out.find("checkpoint_unknown_key"), std::string::npos) << refused.out;

  // A topic with no ledger is "cannot run", not "tampered".
  args = {SECHEX_LEDGERCTL,  "--data-dir", data.root, "--log",           "kafka",
          "--kafka-brokers", brokers,      "--topic", topic + "-absent", "verify"};
  EXPECT_EQ(testing::run(args, {"SECHEX_KEK="}).code, 2);

  // Issue 16 on Kafka: a proof of one record and an archive of the partition, both checked on a
  // "machine" with nothing but the public key.
  testing::TempDir auditor;
  const auto key = auditor.sub("ledger.pub");
  std::filesystem::copy_file(data.verifier_keys(), key);
  const auto proof = dir.sub("proof.json");
  args = base;
  args.insert(args.end(), {"prove", "--partition", "1", "--seq", "2", "-o", proof});
  auto r = testing::run(args, {"SECHEX_KEK="});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  r = testing::run({SECHEX_LEDGERCTL, "--data-dir", auditor.sub("none"), "verify-proof", proof,
                    "--trusted-keys", key},
                   {"SECHEX_KEK="});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("verified: record (1, 2) is in the tree of 4"), std::string::npos) << r.out;
  const auto archive = dir.sub("p1.jsonl");
  args = base;
  args.insert(args.end(), {"archive", "--from", "2000-01-01T00:00:00Z", "--to",
                           "2100-01-01T00:00:00Z", "--partition", "1", "-o", archive});
  r = testing::run(args, {"SECHEX_KEK="});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  r = testing::run({SECHEX_LEDGERCTL, "--data-dir", auditor.sub("none"), "verify", "--archive",
                    archive, "--trusted-key", key},
                   {"SECHEX_KEK="});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("verified archive: "), std::string::npos) << r.out;
}

using nlohmann::json;
using testing::RunResult;

#define REQUIRE_BROKER()                                                                 \
  if (brokers_ == nullptr || *brokers_ == '\0')                                          \
  GTEST_SKIP() << "SECHEX_KAFKA_BROKERS is unset: run under ops/kafka/with-broker (see " \
                  "ops/kafka/README.md), e.g. ops/kafka/with-broker -- ctest -L kafka"

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::vector<json> jsonl(const std::string& text) {
  std::vector<json> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) out.push_back(json::parse(line));
  return out;
}

// (partition, seq) -> hash of every record in `log`, read through the Log interface.
std::map<std::pair<std::uint32_t, std::uint64_t>, std::string> chain_of(const Log& log) {
  std::map<std::pair<std::uint32_t, std::uint64_t>, std::string> out;
  for (std::uint32_t p = 0; p < log.partition_count(); ++p) {
    auto recs = log.read_range(Partition{p}, Seq{0}, Seq{UINT64_MAX});
    EXPECT_TRUE(recs) << recs.error().message();
    if (!recs) continue;
    for (const auto& r : recs.value()) {
      out[{r.position.partition.value, r.position.seq.value}] = to_hex(r.hash);
    }
  }
  return out;
}

// One fresh topic and data directory per test; `ctl` runs ledgerctl against both.
class LedgerctlKafkaTopic : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_ =
        "ctl-" +
        std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()).substr(0, 24) +
        "-" + std::to_string(std::random_device{}());
  }
  RunResult ctl(std::vector<std::string> args,
                const std::vector<std::string>& env = {"SECHEX_KEK="}) {
    args.insert(args.begin(), {SECHEX_LEDGERCTL, "--data-dir", data_.root, "--log", "kafka",
                               "--kafka-brokers", brokers_, "--topic", topic_});
    return testing::run(args, env);
  }
  // `ledgerctl demo` on the (fresh) topic; returns the number of events it reports.
  std::uint64_t demo(int events, std::uint32_t partitions = 2) {
    const auto r = ctl({"demo", "--events", std::to_string(events), "--seed", "7", "--partitions",
                        std::to_string(partitions)});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    std::smatch m;
    if (!std::regex_search(r.out, m, std::regex("wrote ([0-9]+) events"))) {
      ADD_FAILURE() << "no count in: " << r.out;
      return 0;
    }
    return std::stoull(m[1]);
  }
  KafkaLogOptions options(bool read_only) const {
    KafkaLogOptions o;
    o.brokers = brokers_;
    o.topic = topic_;
    o.read_only = read_only;
    o.partitions = 2;
    o.transactional_id_prefix = default_transactional_id_prefix(topic_);
    return o;
  }
  std::unique_ptr<KafkaLog> open_log(bool read_only = true, const CheckpointSigner* signer = {}) {
    auto o = options(read_only);
    o.signer = signer;
    auto log = KafkaLog::open(o);
    EXPECT_TRUE(log) << log.error().message();
    return log ? std::move(log).value() : nullptr;
  }

  const char* brokers_ = std::getenv("SECHEX_KAFKA_BROKERS");
  testing::TempDir dir_;
  const DataDir data_{dir_.sub("data")};
  std::string topic_;
};

TEST(LedgerctlKafkaPrefix, LedgerdAndLedgerctlShareOneTransactionalIdRule) {
  EXPECT_EQ(default_transactional_id_prefix("ledger.events"), "");
  EXPECT_EQ(default_transactional_id_prefix("tenant-a.events"), "tenant-a.events.");
}

TEST_F(LedgerctlKafkaTopic, DemoOnAFreshTopicThenVerifyAndExportListEveryRecordOfTheLog) {
  REQUIRE_BROKER();
  const auto written = demo(300);
  ASSERT_EQ(written, 300u);
  // The keys were created in the data directory, but no embedded ledger.
  EXPECT_TRUE(std::filesystem::exists(data_.signing_key()));
  EXPECT_TRUE(std::filesystem::exists(data_.kek_file()));
  EXPECT_FALSE(std::filesystem::exists(data_.log_path()));

  auto r = ctl({"verify"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("verified: 300 records, 2 signed checkpoints, 2 partitions"),
            std::string::npos)
      << r.out;

  r = ctl({"export"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("exported 300 events"), std::string::npos) << r.err;
  const auto exported = jsonl(r.out);
  ASSERT_EQ(exported.size(), written);
  std::map<std::pair<std::uint32_t, std::uint64_t>, std::string> from_export;
  for (const auto& j : exported) {
    from_export[{j["partition"].get<std::uint32_t>(), j["seq"].get<std::uint64_t>()}] =
        j["hash"].get<std::string>();
  }
  auto log = open_log();
  ASSERT_TRUE(log);
  EXPECT_EQ(from_export, chain_of(*log));

  r = ctl({"export", "--format", "csv"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 301) << "header + one line each";

  r = ctl({"tail", "-n", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 6) << r.out;  // 3 per partition
  r = ctl({"checkpoints"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_of(r.out, "\xE2\x80\x94 sechex-ledger "), 2u) << r.out;  // a note each
  r = ctl({"checkpoints", "--all", "-p", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_GE(count_of(r.out, "\xE2\x80\x94 sechex-ledger "), 1u) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("(^|\n)sechex-ledger/[0-9a-f]{32}/0\n")))
      << r.out;
  EXPECT_FALSE(std::regex_search(r.out, std::regex("(^|\n)sechex-ledger/[0-9a-f]{32}/1\n")))
      << "only partition 0's: " << r.out;
}

// Issue 16 retention on Kafka by hand: the payloads older than the window leave the topic
// (DeleteRecords), verify stays green and names the cut, export says "pruned below" instead of
// leaving a gap, proofs below the cut say why not, and a second run finds nothing to do.
TEST_F(LedgerctlKafkaTopic, RetentionRunDeletesOldRecordsFromTheTopicAndVerifyStaysGreen) {
  REQUIRE_BROKER();
  demo(600);
  const auto before = ctl({"export", "--format", "jsonl"});
  ASSERT_EQ(before.code, 0) << before.err;
  const auto all = std::count(before.out.begin(), before.out.end(), '\n');
  auto r = ctl({"retention", "run", "--days", "90", "--dry-run"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("would be pruned; nothing changed"), std::string::npos) << r.out;

  r = ctl({"retention", "run", "--days", "90"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("chained steps"), std::string::npos) << r.out;
  r = ctl({"verify"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("pruned below seq"), std::string::npos) << r.out;

  r = ctl({"export", "--format", "jsonl"});
  ASSERT_EQ(r.code, 0) << r.err;
  testing::expect_export_after_retention(r.out, r.err, all, 90);
  // Each partition's own chain records its step.
  EXPECT_EQ(count_of(r.out, "\"request_id\":\"retention:"), 2u) << r.out;
  r = ctl({"prove", "--partition", "0", "--seq", "0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("removed by retention"), std::string::npos) << r.err;
  // The records are gone from the brokers, not only hidden.
  auto log = open_log();
  ASSERT_TRUE(log);
  for (std::uint32_t p = 0; p < 2; ++p) {
    const auto cut = log->retention_cut(Partition{p});
    EXPECT_GT(cut.below.value, 0u) << "partition " << p;
    EXPECT_EQ(log->read_range(Partition{p}, Seq{0}, Seq{1}).error(), Errc::pruned);
  }
  r = ctl({"retention", "run", "--days", "90"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("pruned 0 records"), std::string::npos) << r.out;
  EXPECT_EQ(ctl({"verify"}).code, 0);
}

TEST_F(LedgerctlKafkaTopic, DemoFencesAWriterUsingLedgerdsTransactionalIds) {
  REQUIRE_BROKER();
  std::string created;
  ASSERT_TRUE(init_data_dir(data_, 1, kDefaultKeyName, &created, /*embedded_log=*/false));
  auto o = options(/*read_only=*/false);
  o.partitions = 1;
  auto opened = KafkaLog::open(o);  // what ledgerd does for this topic
  ASSERT_TRUE(opened) << opened.error().message();
  auto& writer = *opened.value();
  const auto subject = testing::subject_in(0, 1);
  const auto e1 = testing::make_event(subject, "before");
  ByteView v(e1);
  ASSERT_TRUE(writer.append(Partition{0}, std::span<const ByteView>(&v, 1))) << writer.last_error();

  EXPECT_EQ(demo(20, 1), 20u);
  const auto e2 = testing::make_event(subject, "after");
  v = ByteView(e2);
  const auto after = writer.append(Partition{0}, std::span<const ByteView>(&v, 1));
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error(), Errc::writer_failed);
  const auto r = ctl({"verify"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("verified: 21 records"), std::string::npos) << r.out;
}

TEST_F(LedgerctlKafkaTopic, ExportOpensSealedFieldsWithTheKekAndAWrongKekFileExitsTwo) {
  REQUIRE_BROKER();
  ASSERT_EQ(demo(200), 200u);
  auto r = ctl({"export", "--subject", "user-4"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto rows = jsonl(r.out);
  ASSERT_FALSE(rows.empty());
  for (const auto& j : rows) {
    EXPECT_EQ(j["subject"], "user-4");
    EXPECT_FALSE(j["erased"].get<bool>());
    EXPECT_NE(j["source"]["ip"].get<std::string>().find("198.51.100."), std::string::npos) << j;
  }
  EXPECT_EQ(r.out.find("[sealed]"), std::string::npos);
  EXPECT_EQ(r.out.find("[erased]"), std::string::npos);

  const auto wrong = dir_.sub("wrong-kek");
  {
    std::ofstream out(wrong);
    out << crypto::base64_encode(Bytes(32, 9)) << "\n";
  }
  std::filesystem::permissions(wrong, std::filesystem::perms::owner_read);
  r = ctl({"--kek-file", wrong, "export"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("key-encryption key does not match this ledger"), std::string::npos)
      << r.err;
  EXPECT_TRUE(r.out.empty()) << "nothing exported";
  r = ctl({"--kek-file", dir_.sub("absent"), "export"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("key-encryption key not found"), std::string::npos) << r.err;
}

TEST_F(LedgerctlKafkaTopic, ExportAfterAnErasureShowsTheSubjectErasedAndOthersIntact) {
  REQUIRE_BROKER();
  ASSERT_EQ(demo(400), 400u);
  {
    // The erasure as ledgerd would write it: the subject partition's writer, the Kafka keys.
    auto signer = CheckpointSigner::load(data_.signing_key(), kDefaultKeyName);
    ASSERT_TRUE(signer);
    auto log = open_log(/*read_only=*/false, &signer.value());
    ASSERT_TRUE(log);
    auto kek = Kek::from_file(data_.kek_file());
    ASSERT_TRUE(kek);
    auto keys = KeyStore::open(std::make_unique<KafkaKeys>(*log), std::move(kek).value());
    ASSERT_TRUE(keys) << keys.error().message();
    auto erased = keys.value()->erase("user-3", "test", "gdpr_request", 1'767'225'600'000'000);
    ASSERT_TRUE(erased) << erased.error().message() << " " << log->last_error();
  }
  auto r = ctl({"verify"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;

  r = ctl({"export", "--subject", "user-3"});
  ASSERT_EQ(r.code, 0) << r.err;
  int erased = 0, total = 0;
  bool saw_erasure_event = false;
  for (const auto& j : jsonl(r.out)) {
    ++total;
    EXPECT_EQ(j["subject"], "user-3");
    if (j["erased"].get<bool>()) ++erased;
    if (j["type"] == "SubjectErased") saw_erasure_event = true;
  }
  EXPECT_EQ(r.out.find("user3@example.com"), std::string::npos);
  EXPECT_EQ(r.out.find("198.51.100."), std::string::npos);
  EXPECT_GT(total, 1);
  EXPECT_EQ(erased, total - 1);  // every event but SubjectErased itself had sealed fields
  EXPECT_TRUE(saw_erasure_event);

  r = ctl({"export", "--subject", "user-4"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("198.51.100."), std::string::npos);  // ip opened
  EXPECT_EQ(r.out.find("[erased]"), std::string::npos);
}

TEST_F(LedgerctlKafkaTopic, ReplayOnKafkaGivesTheSameJsonAsReplayOnAnEmbeddedCopy) {
  REQUIRE_BROKER();
  ASSERT_EQ(demo(400), 400u);
  // The same events, partition by partition in seq order, in an embedded ledger: the same
  // chain (heads equal), so replay must find the same state in both.
  const DataDir copy{dir_.sub("copy")};
  std::uint64_t total = 0;
  {
    auto kafka = open_log();
    ASSERT_TRUE(kafka);
    std::filesystem::create_directories(copy.root);
    LogOptions lo;
    lo.path = copy.log_path();
    lo.create_if_missing = true;
    lo.partitions = kafka->partition_count();
    auto store = LogStore::open(lo);
    ASSERT_TRUE(store) << store.error().message();
    for (std::uint32_t p = 0; p < kafka->partition_count(); ++p) {
      auto recs = kafka->read_range(Partition{p}, Seq{0}, Seq{UINT64_MAX});
      ASSERT_TRUE(recs) << kafka->last_error();
      std::vector<ByteView> events;
      for (const auto& rec : recs.value()) events.emplace_back(rec.event);
      ASSERT_TRUE(store.value()->append(Partition{p}, events));
      total += events.size();
      const auto kafka_head = kafka->recover_head(Partition{p});
      ASSERT_TRUE(kafka_head) << kafka->last_error();
      EXPECT_EQ(store.value()->head(Partition{p}).hash, kafka_head.value().hash);
    }
  }
  ASSERT_EQ(total, 400u);
  auto replay = [&](bool on_kafka, std::int64_t at, const std::string& subject) {
    std::vector<std::string> args{"replay", "--at", format_rfc3339(at)};
    if (!subject.empty()) args.insert(args.end(), {"--subject", subject});
    RunResult r;
    if (on_kafka) {
      r = ctl(args);
    } else {
      args.insert(args.begin(), {SECHEX_LEDGERCTL, "--data-dir", copy.root});
      r = testing::run(args, {"SECHEX_KEK="});
    }
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? json::parse(r.out) : json();
  };
  // The demo spreads its events over the last 100 days.
  const auto now = SystemClock::instance().now_micros();
  constexpr std::int64_t kDay = 86'400'000'000;
  for (const std::int64_t at : {now - 50 * kDay, now + kDay}) {
    for (const std::string subject : {"", "user-1"}) {
      const auto on_kafka = replay(true, at, subject);
      EXPECT_EQ(on_kafka, replay(false, at, subject)) << subject;
      EXPECT_GT(on_kafka.value("records_applied", 0), 0) << on_kafka;
    }
  }
  const auto all = replay(true, now + kDay, "");
  EXPECT_EQ(all["records_applied"], 400);
  EXPECT_FALSE(all["sessions"].empty() && all["roles"].empty() && all["locked"].empty()) << all;
}

TEST_F(LedgerctlKafkaTopic, ExportSkipsTheOffsetGapOfAnAbortedTransaction) {
  REQUIRE_BROKER();
  std::string created;
  ASSERT_TRUE(init_data_dir(data_, 2, kDefaultKeyName, &created, /*embedded_log=*/false));
  auto signer = CheckpointSigner::load(data_.signing_key(), kDefaultKeyName);
  ASSERT_TRUE(signer);
  auto log = open_log(/*read_only=*/false, &signer.value());
  ASSERT_TRUE(log);
  const Partition p{0};
  const auto subject = testing::subject_in(0, 2);
  auto append = [&](const std::string& note) {
    const auto e = testing::make_event(subject, note);
    const ByteView v(e);
    ASSERT_TRUE(log->append(p, std::span<const ByteView>(&v, 1))) << log->last_error();
  };
  for (int i = 0; i < 3; ++i) append("c" + std::to_string(i));

  // Another transactional producer writes records that continue the chain, then aborts: they
  // keep their offsets (and an abort marker follows) but are never committed.
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const auto tid = "aborter-" + topic_;
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", brokers_, err, sizeof(err)), 0);
  ASSERT_EQ(rd_kafka_conf_set(conf, "transactional.id", tid.c_str(), err, sizeof(err)), 0);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  ASSERT_NE(rk, nullptr) << err;
  const std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)> producer(rk, rd_kafka_destroy);
  ASSERT_EQ(rd_kafka_init_transactions(rk, 30000), nullptr);
  ASSERT_EQ(rd_kafka_begin_transaction(rk), nullptr);
  auto head = log->head(p);
  for (int i = 0; i < 3; ++i) {
    const auto ev = testing::make_event(subject, "aborted" + std::to_string(i));
    head.hash = chain_hash(p, head.next, head.hash, ev);
    const auto value = encode_record(p, head.next, head.hash, ev);
    std::string seq;
    for (int s = 56; s >= 0; s -= 8) seq.push_back(static_cast<char>(head.next.value >> s));
    ASSERT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_PARTITION(0),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADER("seq", seq.data(), 8),
                                RD_KAFKA_V_HEADER("hash", head.hash.data(), 32), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    head.next = Seq{head.next.value + 1};
  }
  ASSERT_EQ(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_abort_transaction(rk, 30000), nullptr);
  for (int i = 3; i < 6; ++i) append("c" + std::to_string(i));
  std::int64_t low = 0, high = 0;
  ASSERT_EQ(rd_kafka_query_watermark_offsets(rk, topic_.c_str(), 0, &low, &high, 30000),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_GE(high - low, 6 + 3) << "the aborted records occupy offsets";

  auto r = ctl({"export"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::uint64_t> seqs;
  std::vector<std::string> request_ids;
  for (const auto& j : jsonl(r.out)) {
    if (j["partition"] != 0) continue;
    seqs.push_back(j["seq"]);
    request_ids.push_back(j["request_id"]);
  }
  EXPECT_EQ(seqs, (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(request_ids,
            (std::vector<std::string>{"req-c0", "req-c1", "req-c2", "req-c3", "req-c4", "req-c5"}));
  EXPECT_EQ(chain_of(*log).size(), 6u);
  r = ctl({"verify"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  r = ctl({"tail", "-p", "0", "-n", "100"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 6) << r.out;
}

// Refused before any connection, so no broker is needed.
TEST(LedgerctlKafkaFlags, CommandsAndFlagsThatDoNotFitTheLogExitTwo) {
  testing::TempDir dir;
  const std::vector<std::string> kafka = {SECHEX_LEDGERCTL, "--data-dir", dir.path(),
                                          "--log",          "kafka",      "--kafka-brokers",
                                          "127.0.0.1:1"};
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"erase", "--subject", "s"}, {"rebuild-projections"}}) {
    auto argv = kafka;
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = testing::run(argv, {"SECHEX_KEK="});
    EXPECT_EQ(r.code, 2) << args[0];
    EXPECT_NE(r.err.find("embedded log only"), std::string::npos) << r.err;
  }
  const std::string root = dir.path();
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{SECHEX_LEDGERCTL, "--data-dir", root, "--kafka-brokers",
                                 "127.0.0.1:1", "verify"},
        {SECHEX_LEDGERCTL, "--data-dir", root, "demo", "--partitions", "2"},
        {SECHEX_LEDGERCTL, "--data-dir", root, "--log", "kafka", "demo"}}) {
    const auto r = testing::run(argv, {"SECHEX_KEK="});
    EXPECT_EQ(r.code, 2) << argv[3];
    EXPECT_NE(r.err.find("ledgerctl: "), std::string::npos) << r.err;
  }
  // --kafka-config reaches librdkafka, which refuses an unknown setting before connecting;
  // a malformed one never gets that far.
  for (const auto& [setting, says] :
       {std::pair<std::string, std::string>{"no-equals-sign", "KEY=VALUE"},
        {"not.a.librdkafka.setting=1", "cannot open the Kafka log"}}) {
    auto argv = kafka;
    argv.insert(argv.end(), {"--kafka-config", setting, "verify"});
    const auto r = testing::run(argv, {"SECHEX_KEK="});
    EXPECT_EQ(r.code, 2) << setting;
    EXPECT_NE(r.err.find(says), std::string::npos) << setting << ": " << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.sub("log"))) << "nothing was written";
  EXPECT_FALSE(std::filesystem::exists(dir.sub("keys"))) << "nothing was written";
}

}  // namespace
}  // namespace sechex::ledger
