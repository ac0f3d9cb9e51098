// ledger.ingest consumed exactly once (ARCHITECTURE.md "Kafka mode"; api/ingest_worker.h)
// against a real broker (ctest label `kafka`): every record produced to the ingest topic ends
// exactly once in the chain (in its subject's partition, also when produced to another one) or
// in the dead-letter topic with a reason, including when a second node takes the partitions over
// in the middle of the stream and fences the first.
#include "api/ingest/ingest_worker.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <map>
#include <set>
#include <thread>

#include "ledger/crypto.h"
#include "ledger/kafka_keys.h"
#include "ledger/verify.h"
#include "projections/store.h"
#include "support/test_util.h"

namespace sechex::api {
namespace {

using namespace std::chrono_literals;
using ledger::Partition;

const char* brokers() { return std::getenv("SECHEX_KAFKA_BROKERS"); }

#define REQUIRE_BROKER()                                                                 \
  if (brokers() == nullptr)                                                              \
  GTEST_SKIP() << "SECHEX_KAFKA_BROKERS is unset: run under ops/kafka/with-broker (see " \
                  "ops/kafka/README.md), e.g. ops/kafka/with-broker -- ctest -L kafka"

constexpr std::uint32_t kPartitions = 4;

ledger::Kek test_kek() {
  const std::string raw(32, 'k');
  return ledger::Kek::from_base64(ledger::crypto::base64_encode(ledger::as_bytes(raw))).value();
}

// One ledgerd's worth of parts, for the ingest worker.
struct Node {
  sechex::testing::TempDir dir;
  std::unique_ptr<ledger::KafkaLog> log;
  std::unique_ptr<ledger::KeyStore> keys;
  std::unique_ptr<projections::ProjectionStore> projections;
  std::unique_ptr<CommandPath> commands;
  std::unique_ptr<IngestWorker> worker;

  explicit Node(const std::string& topic) {
    ledger::KafkaLogOptions o;
    o.brokers = brokers();
    o.topic = topic;
    o.partitions = kPartitions;
    o.transactional_id_prefix = topic + ".";
    log = ledger::KafkaLog::open(o).value();
    keys = ledger::KeyStore::open(std::make_unique<ledger::KafkaKeys>(*log), test_kek()).value();
    projections = projections::ProjectionStore::open(dir.sub("p"), kPartitions,
                                                     projections::default_projections())
                      .value();
    commands = std::make_unique<CommandPath>(*log, *projections);
  }
  void start(const std::string& topic) {
    auto w = IngestWorker::start(*log, *commands, *keys, SystemClock::instance(),
                                 {.topic = topic + ".ingest",
                                  .group_id = topic + ".ledger-ingest",
                                  .max_batch = 16,
                                  .log = {}});
    ASSERT_TRUE(w) << w.error().message() << " " << log->last_error();
    worker = std::move(w).value();
  }
};

// A plain (idempotent) producer, as an application would use.
struct Producer {
  rd_kafka_t* rk = nullptr;
  Producer() {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err));
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  }
  ~Producer() { rd_kafka_destroy(rk); }
  void send(const std::string& topic, std::int32_t partition, const std::string& value) {
    ASSERT_EQ(
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  void flush() { ASSERT_EQ(rd_kafka_flush(rk, 30'000), RD_KAFKA_RESP_ERR_NO_ERROR); }
};

std::string event_json(const std::string& subject, int i) {
  return R"({"subject":")" + subject + R"(","type":"app.ingested","payload":{"i":)" +
         std::to_string(i) + R"(},"personal":{"email":"u)" + std::to_string(i) +
         R"(@example.com"}})";
}

// request id ("kafka:<topic>/<p>@<offset>") -> how many chained events carry it, over the
// whole ledger; also checks each event sits in its subject's partition.
std::map<std::string, int> chained_sources(const ledger::KafkaLog& log) {
  std::map<std::string, int> out;
  for (std::uint32_t p = 0; p < log.partition_count(); ++p) {
    auto recs = log.read_range(Partition{p}, ledger::Seq{0}, ledger::Seq{UINT64_MAX});
    EXPECT_TRUE(recs);
    if (!recs) continue;
    for (const auto& r : recs.value()) {
      const auto* env = schemas::envelope_of(r.event.data());
      EXPECT_EQ(ledger::partition_for(env->subject()->str(), kPartitions).value, p);
      ++out[env->request_id()->str()];
    }
  }
  return out;
}

// Dead letters as (source, reason).
std::vector<std::pair<std::string, std::string>> dead_letters(ledger::KafkaLog& log,
                                                              const std::string& topic) {
  std::vector<std::pair<std::string, std::string>> out;
  rd_kafka_conf_t* conf = nullptr;
  auto c = log.client_conf("test-dlq", {{"group.id", "test-dlq"},
                                        {"isolation.level", "read_committed"},
                                        {"enable.partition.eof", "true"},
                                        {"auto.offset.reset", "earliest"}});
  EXPECT_TRUE(c);
  conf = c.value();
  char err[256];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  rd_kafka_poll_set_consumer(rk);
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 200);
    if (m == nullptr) continue;
    const bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_headers_t* h = nullptr;
      const void* v = nullptr;
      size_t n = 0;
      std::string source, reason;
      if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (rd_kafka_header_get_last(h, "sechex-source", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          source.assign(static_cast<const char*>(v), n);
        }
        if (rd_kafka_header_get_last(h, "sechex-reason", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          reason.assign(static_cast<const char*>(v), n);
        }
      }
      out.emplace_back(source, reason);
    }
    rd_kafka_message_destroy(m);
    if (eof) break;
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

std::string unique_topic() {
  return "ingest-" + ledger::to_hex(ledger::crypto::random_bytes(4).value());
}

// Waits until `expected` distinct sources are chained (or 60 s).
std::map<std::string, int> wait_chained(const ledger::KafkaLog& log, std::size_t expected) {
  std::map<std::string, int> got;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    got = chained_sources(log);
    if (got.size() >= expected) break;
    std::this_thread::sleep_for(300ms);
  }
  return got;
}

TEST(IngestWorker, EveryRecordIsChainedOnceInItsSubjectsPartitionOrDeadLetteredWithAReason) {
  REQUIRE_BROKER();
  const auto topic = unique_topic();
  Node node(topic);
  node.start(topic);
  Producer prod;
  // 40 valid records, all produced to partition 0 whatever their subject (as Kafka's default
  // partitioner would scatter them): 3 in 4 must be forwarded once before being chained.
  for (int i = 0; i < 40; ++i)
    prod.send(topic + ".ingest", 0, event_json("user-" + std::to_string(i % 10), i));
  prod.send(topic + ".ingest", 1, "not json");
  prod.send(topic + ".ingest", 2, R"({"subject":"","type":"x"})");
  prod.send(topic + ".ingest", 3, event_json("a", 1) + "," + event_json("b", 2));
  prod.flush();

  const auto chained = wait_chained(*node.log, 40);
  ASSERT_EQ(chained.size(), 40u);
  for (int i = 0; i < 40; ++i) {
    const auto src = "kafka:" + topic + ".ingest/0@" + std::to_string(i);
    ASSERT_TRUE(chained.contains(src)) << src;
    EXPECT_EQ(chained.at(src), 1) << src << " chained more than once";
  }
  const auto dlq = dead_letters(*node.log, topic + ".ingest.rejected");
  ASSERT_EQ(dlq.size(), 3u);
  std::set<std::string> sources;
  for (const auto& [src, reason] : dlq) {
    sources.insert(src);
    EXPECT_FALSE(reason.empty()) << src;
  }
  EXPECT_EQ(sources, (std::set<std::string>{topic + ".ingest/1@0", topic + ".ingest/2@0",
                                            topic + ".ingest/3@0"}));
  const auto stats = node.worker->stats();
  EXPECT_EQ(stats.chained, 40u);
  EXPECT_EQ(stats.rejected, 3u);
  EXPECT_GT(stats.forwarded, 0u);
  // Projections were kept current by the command path, and the chain verifies.
  EXPECT_EQ(node.projections->lag(*node.log), 0u);
  const auto report = ledger::verify_chain(*node.log, {});
  EXPECT_EQ(report.outcome, ledger::VerifyReport::Outcome::verified);
  EXPECT_EQ(report.records, 40u);
}

TEST(IngestWorker, ANodeTakingOverMidStreamFencesTheFirstAndNothingIsChainedTwiceOrLost) {
  REQUIRE_BROKER();
  const auto topic = unique_topic();
  auto first = std::make_unique<Node>(topic);
  first->start(topic);
  Producer prod;
  constexpr int kRecords = 300;
  std::thread producer([&] {
    for (int i = 0; i < kRecords; ++i) {
      const auto subject = "user-" + std::to_string(i % 25);
      prod.send(topic + ".ingest",
                static_cast<std::int32_t>(ledger::partition_for(subject, kPartitions).value),
                event_json(subject, i));
      if (i % 20 == 0) std::this_thread::sleep_for(20ms);
    }
    prod.flush();
  });
  // Let the first node chain part of the stream, then a second node takes over: creating its
  // writers fences the first node's, whose open transaction (if any) is aborted.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (first->worker->stats().chained < 20 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  const auto by_first = first->worker->stats().chained;
  ASSERT_GE(by_first, 20u) << "the first node must have chained part of the stream";
  auto second = std::make_unique<Node>(topic);
  for (std::uint32_t p = 0; p < kPartitions; ++p) ASSERT_TRUE(second->log->claim(Partition{p}));
  second->start(topic);
  producer.join();

  const auto chained = wait_chained(*second->log, kRecords);
  EXPECT_LT(by_first, static_cast<std::uint64_t>(kRecords)) << "nothing was left to take over";
  first.reset();  // the zombie stops (its appends all fail once fenced)
  std::size_t total = 0;
  for (const auto& [src, n] : chained) {
    EXPECT_EQ(n, 1) << src << " was chained " << n << " times";
    total += static_cast<std::size_t>(n);
  }
  EXPECT_EQ(chained.size(), static_cast<std::size_t>(kRecords));
  EXPECT_EQ(total, static_cast<std::size_t>(kRecords));
  EXPECT_TRUE(dead_letters(*second->log, topic + ".ingest.rejected").empty());
  const auto report = ledger::verify_chain(*second->log, {});
  EXPECT_EQ(report.outcome, ledger::VerifyReport::Outcome::verified);
  EXPECT_EQ(report.records, static_cast<std::uint64_t>(kRecords));
}

}  // namespace
}  // namespace sechex::api
