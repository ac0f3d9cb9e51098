// Projections fed from the Kafka log equal projections fed from the embedded log: the same
// events, appended to a KafkaLog on the real broker and to a LogStore, caught up into two
// stores each (two "nodes" reading Kafka), give one digest. Skipped (saying why) when
// SECHEX_KAFKA_BROKERS is unset.
#include <gtest/gtest.h>

#include <random>

#include "ledger/event_builder.h"
#include "ledger/kafka_log.h"
#include "projections/store.h"
#include "support/test_util.h"

namespace sechex::projections {
namespace {

using ledger::Bytes;
using ledger::ByteView;

// A small mixed workload: check-ins (audit index), role grants and revocations, timed lockouts
// and logouts of all sessions (lockouts, revocation cutoffs), over 12 subjects.
std::vector<Bytes> workload(int n) {
  std::vector<Bytes> out;
  std::mt19937 rng(42);
  for (int i = 0; i < n; ++i) {
    const auto subject = "user-" + std::to_string(rng() % 12);
    const std::int64_t t = 1'767'225'600'000'000 + i * 1'000'000LL;
    ledger::EventBuilder b(nullptr, {subject, subject, "req-" + std::to_string(i), t, {}, {}});
    auto& f = b.fbb();
    Result<Bytes> bytes = ledger::Errc::invalid_argument;
    switch (rng() % 4) {
      case 0:
        bytes = b.finish(schema::CreateCheckIn(f, f.CreateString("s" + std::to_string(i))));
        break;
      case 1:
        bytes = b.finish(schema::CreateRoleGranted(f, f.CreateString("premium"), rng() % 2 == 0));
        break;
      case 2:
        bytes = b.finish(schema::CreateAccountLocked(f, f.CreateString("too many failures"),
                                                     t + 1'800'000'000LL, false));
        break;
      default:
        bytes = b.finish(schema::CreateLoggedOut(f, f.CreateString("sess"), true));
        break;
    }
    if (!bytes) throw std::runtime_error("event build failed");
    out.push_back(std::move(bytes).value());
  }
  return out;
}

void append_all(ledger::Log& log, const std::vector<Bytes>& events) {
  for (const auto& e : events) {
    const auto* env = schemas::envelope_of(e.data());
    const auto p = ledger::partition_for(env->subject()->string_view(), log.partition_count());
    const ByteView v(e);
    auto r = log.append(p, std::span<const ByteView>(&v, 1));
    ASSERT_TRUE(r) << r.error().message();
  }
}

std::string caught_up_digest(const std::string& path, ledger::Log& log) {
  auto store = ProjectionStore::open(path, log.partition_count(), default_projections()).value();
  const auto applied = store->catch_up(log, 64);  // small batches: many reads
  EXPECT_TRUE(applied) << applied.error().message();
  EXPECT_EQ(store->lag(log), 0u);
  return store->digest().value();
}

TEST(KafkaProjections, TwoNodesReadingKafkaAgreeWithEachOtherAndWithTheEmbeddedLog) {
  const char* brokers = std::getenv("SECHEX_KAFKA_BROKERS");
  if (brokers == nullptr || *brokers == '\0') GTEST_SKIP() << "SECHEX_KAFKA_BROKERS is not set";
  testing::TempDir dir;
  const auto events = workload(150);

  ledger::LogOptions lo;
  lo.path = dir.sub("embedded");
  lo.partitions = 3;
  lo.create_if_missing = true;
  auto embedded = ledger::LogStore::open(lo).value();
  append_all(*embedded, events);

  ledger::KafkaLogOptions ko;
  ko.brokers = brokers;
  ko.topic = "proj-" + std::to_string(std::random_device{}());
  ko.partitions = 3;
  ko.transactional_id_prefix = ko.topic + "-";
  auto writer = ledger::KafkaLog::open(ko);
  ASSERT_TRUE(writer) << writer.error().message();
  append_all(*writer.value(), events);

  // Two readers, as two nodes would have, each with its own projection store.
  auto ro = ko;
  ro.read_only = true;
  ro.create_if_missing = false;
  auto node_a = ledger::KafkaLog::open(ro).value();
  auto node_b = ledger::KafkaLog::open(ro).value();
  const auto from_embedded = caught_up_digest(dir.sub("p-embedded"), *embedded);
  const auto from_a = caught_up_digest(dir.sub("p-a"), *node_a);
  const auto from_b = caught_up_digest(dir.sub("p-b"), *node_b);
  EXPECT_EQ(from_a, from_b);
  EXPECT_EQ(from_a, from_embedded);

  // And it moves together: one more event, caught up again from where each store stopped.
  const auto more = workload(151);
  append_all(*writer.value(), {more.back()});
  append_all(*embedded, {more.back()});
  EXPECT_NE(caught_up_digest(dir.sub("p-a"), *node_a), from_a);
  EXPECT_EQ(caught_up_digest(dir.sub("p-a"), *node_a),
            caught_up_digest(dir.sub("p-embedded"), *embedded));
}

}  // namespace
}  // namespace sechex::projections
