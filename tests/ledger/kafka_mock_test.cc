// KafkaLog against librdkafka's in-process mock cluster (rdkafka_mock.h): error mapping and
// retry/abort/fence/recreate paths, fast and without a broker. The mock has no real
// read_committed (aborted records stay visible to its Fetch), so these tests only inject
// errors that stop records before they reach the log, and never replace the real-broker
// tests in kafka_log_test.cc.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "ledger/crypto.h"
#include "ledger/kafka_log.h"
#include "support/test_util.h"

namespace sechex::ledger {
namespace {

using namespace std::chrono_literals;
using testing::make_event;

// Kafka protocol ApiKeys.
constexpr std::int16_t kProduce = 0;
constexpr std::int16_t kAddPartitionsToTxn = 24;
constexpr std::int16_t kEndTxn = 26;

class MockCluster {
 public:
  MockCluster() {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk_ == nullptr) throw std::runtime_error(err);
    mc_ = rd_kafka_mock_cluster_new(rk_, 1);
    if (mc_ == nullptr) throw std::runtime_error("mock cluster");
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(mc_);
    rd_kafka_destroy(rk_);
  }
  rd_kafka_mock_cluster_t* get() { return mc_; }
  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(mc_); }
  // The mock does not implement CreateTopics: create what KafkaLog::open would.
  void create_ledger_topics(const std::string& topic, int partitions) {
    rd_kafka_mock_topic_create(mc_, topic.c_str(), partitions, 1);
    rd_kafka_mock_topic_create(mc_, (topic + ".meta").c_str(), 1, 1);
    rd_kafka_mock_topic_create(mc_, (topic + ".checkpoints").c_str(), 1, 1);
  }

 private:
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* mc_ = nullptr;
};

KafkaLogOptions mock_options(const MockCluster& mc) {
  KafkaLogOptions o;
  o.brokers = mc.bootstraps();
  o.topic = "ledger.events";
  o.partitions = 2;
  o.request_timeout = 10s;
  o.transaction_timeout = 20s;
  o.message_timeout = 10s;
  o.client_config = {{"log_level", "2"}};  // the injected errors are expected: keep quiet
  return o;
}

Result<AppendResult> append_one(KafkaLog& log, Partition p, const std::string& note) {
  const auto ev = make_event("alice", note);
  const ByteView v(ev);
  return log.append(p, std::span<const ByteView>(&v, 1));
}

TEST(KafkaErrors, MapToLedgerCodes) {
  EXPECT_EQ(errc_from_kafka(RD_KAFKA_RESP_ERR_NO_ERROR), Errc::ok);
  for (auto e : {RD_KAFKA_RESP_ERR__FENCED, RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
                 RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH}) {
    EXPECT_TRUE(kafka_error_is_fencing(e)) << rd_kafka_err2name(e);
    EXPECT_EQ(errc_from_kafka(e), Errc::writer_failed) << rd_kafka_err2name(e);
  }
  EXPECT_FALSE(kafka_error_is_fencing(RD_KAFKA_RESP_ERR__TIMED_OUT));
  EXPECT_EQ(errc_from_kafka(RD_KAFKA_RESP_ERR__DESTROY), Errc::closed);
  EXPECT_EQ(errc_from_kafka(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART), Errc::store_missing);
  EXPECT_EQ(errc_from_kafka(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION), Errc::store_missing);
  EXPECT_EQ(errc_from_kafka(RD_KAFKA_RESP_ERR_INVALID_CONFIG), Errc::invalid_argument);
  EXPECT_EQ(errc_from_kafka(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE), Errc::invalid_argument);
  EXPECT_EQ(errc_from_kafka(RD_KAFKA_RESP_ERR__BAD_MSG), Errc::corruption);
  EXPECT_EQ(errc_from_kafka(RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION), Errc::unsupported_version);
  for (auto e : {RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT,
                 RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                 RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED}) {
    EXPECT_EQ(errc_from_kafka(e), Errc::io_error) << rd_kafka_err2name(e);
  }
}

TEST(KafkaMock, OpenMissingTopicWithoutCreateIsStoreMissing) {
  MockCluster mc;
  auto o = mock_options(mc);
  o.create_if_missing = false;
  o.topic = "absent";
  auto log = KafkaLog::open(o);
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error(), Errc::store_missing);
  KafkaLogOptions bad = o;
  bad.message_timeout = bad.transaction_timeout;  // must be smaller
  EXPECT_EQ(KafkaLog::open(bad).error(), Errc::invalid_argument);
}

TEST(KafkaMock, TransientErrorsAreRetriedAndTheAppendSucceeds) {
  MockCluster mc;
  mc.create_ledger_topics("ledger.events", 2);
  auto log = KafkaLog::open(mock_options(mc));
  ASSERT_TRUE(log) << log.error().message();
  auto& l = *log.value();
  const Partition p{0};
  ASSERT_TRUE(append_one(l, p, "a0")) << l.last_error();
  // Produce fails twice with a retriable error, EndTxn once with a coordinator error: the
  // producer retries both inside one append.
  rd_kafka_mock_push_request_errors(mc.get(), kProduce, 2, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
  rd_kafka_mock_push_request_errors(mc.get(), kEndTxn, 1,
                                    RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
  auto r = append_one(l, p, "a1");
  ASSERT_TRUE(r) << l.last_error();
  EXPECT_EQ(r.value().first.value, 1u);
  EXPECT_EQ(l.head(p).next.value, 2u);
  auto records = l.read_range(p, Seq{0}, Seq{10});
  ASSERT_TRUE(records);
  ASSERT_EQ(records.value().size(), 2u);
  EXPECT_EQ(records.value()[1].hash,
            chain_hash(p, Seq{1}, records.value()[0].hash, records.value()[1].event));
}

TEST(KafkaMock, AbortableErrorAbortsAndLeavesTheHeadUnchanged) {
  MockCluster mc;
  mc.create_ledger_topics("ledger.events", 2);
  auto log = KafkaLog::open(mock_options(mc));
  ASSERT_TRUE(log) << log.error().message();
  auto& l = *log.value();
  const Partition p{1};
  auto first = append_one(l, p, "b0");
  ASSERT_TRUE(first) << l.last_error();
  const auto head = l.head(p);
  // A permanent produce error: the transaction must be aborted. (Not an authorization error:
  // librdkafka caches those on the topic and fails later produce calls at once.)
  rd_kafka_mock_push_request_errors(mc.get(), kProduce, 1, RD_KAFKA_RESP_ERR_INVALID_RECORD);
  auto r = append_one(l, p, "b1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::io_error);
  EXPECT_NE(l.last_error().find("abort"), std::string::npos) << l.last_error();
  EXPECT_EQ(l.head(p).next.value, head.next.value);
  EXPECT_EQ(l.head(p).hash, head.hash);
  EXPECT_FALSE(l.fenced(p));
  // The next append continues from the unchanged head.
  auto again = append_one(l, p, "b2");
  ASSERT_TRUE(again) << again.error().message() << ": " << l.last_error();
  EXPECT_EQ(again.value().first.value, head.next.value);
}

TEST(KafkaMock, FencedWriterRefusesFurtherAppends) {
  MockCluster mc;
  mc.create_ledger_topics("ledger.events", 2);
  auto log = KafkaLog::open(mock_options(mc));
  ASSERT_TRUE(log) << log.error().message();
  auto& l = *log.value();
  const Partition p{0};
  ASSERT_TRUE(append_one(l, p, "c0")) << l.last_error();
  rd_kafka_mock_push_request_errors(mc.get(), kAddPartitionsToTxn, 1,
                                    RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
  auto r = append_one(l, p, "c1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::writer_failed);
  EXPECT_TRUE(l.fenced(p));
  EXPECT_NE(l.last_error().find("fenced"), std::string::npos) << l.last_error();
  EXPECT_EQ(append_one(l, p, "c2").error(), Errc::writer_failed);
  // Other partitions have their own writers.
  EXPECT_TRUE(append_one(l, Partition{1}, "c3")) << l.last_error();
}

TEST(KafkaMock, FatalErrorRecreatesTheProducerAndRecoversTheTail) {
  MockCluster mc;
  mc.create_ledger_topics("ledger.events", 2);
  auto log = KafkaLog::open(mock_options(mc));
  ASSERT_TRUE(log) << log.error().message();
  auto& l = *log.value();
  const Partition p{0};
  ASSERT_TRUE(append_one(l, p, "d0")) << l.last_error();
  ASSERT_TRUE(append_one(l, p, "d1")) << l.last_error();
  const auto head = l.head(p);
  // A fatal, non-fencing error before any record reaches the log.
  rd_kafka_mock_push_request_errors(mc.get(), kAddPartitionsToTxn, 1,
                                    RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
  auto r = append_one(l, p, "d2");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::io_error);
  EXPECT_FALSE(l.fenced(p));
  EXPECT_EQ(l.head(p).next.value, head.next.value);
  EXPECT_EQ(l.head(p).hash, head.hash);
  // A new producer carries on from the recovered tail.
  auto again = append_one(l, p, "d3");
  ASSERT_TRUE(again) << l.last_error();
  EXPECT_EQ(again.value().first.value, head.next.value);
  auto records = l.read_range(p, Seq{0}, Seq{10});
  ASSERT_TRUE(records);
  ASSERT_EQ(records.value().size(), 3u);
  EXPECT_EQ(records.value()[2].hash, chain_hash(p, Seq{2}, head.hash, records.value()[2].event));
}

}  // namespace
}  // namespace sechex::ledger
