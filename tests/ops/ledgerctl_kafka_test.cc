// `ledgerctl verify --log kafka` against the real broker that ops/test starts: a chain written
// by KafkaLog with the data directory's checkpoint key verifies; a verifier without that key is
// refused. Skipped (saying why) when SECHEX_KAFKA_BROKERS is unset.
#include <gtest/gtest.h>

#include <random>

#include "ledger/data_dir.h"
#include "ledger/kafka_log.h"
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
}

}  // namespace
}  // namespace sechex::ledger
