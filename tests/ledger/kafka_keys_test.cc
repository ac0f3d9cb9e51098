// The key store on Kafka (KafkaKeys, ARCHITECTURE.md "Kafka mode": data keys in a compacted
// topic; spec 004 FR-036 right to deletion) against a real broker (ctest label `kafka`):
// keys shared between nodes, erasure atomic with its SubjectErased record and seen by other
// nodes, the KEK and lookup-key checks, and a new writer seeing its predecessor's keys.
#include "ledger/kafka_keys.h"

#include <gtest/gtest.h>

#include <thread>

#include "ledger/crypto.h"
#include "ledger/event_builder.h"
#include "ledger/export.h"
#include "ledger/verify.h"
#include "support/test_util.h"

namespace sechex::ledger {
namespace {

using namespace std::chrono_literals;

const char* brokers() { return std::getenv("SECHEX_KAFKA_BROKERS"); }

#define REQUIRE_BROKER()                                                                 \
  if (brokers() == nullptr)                                                              \
  GTEST_SKIP() << "SECHEX_KAFKA_BROKERS is unset: run under ops/kafka/with-broker (see " \
                  "ops/kafka/README.md), e.g. ops/kafka/with-broker -- ctest -L kafka"

Kek test_kek(char fill = 'k') {
  const std::string raw(32, fill);
  return Kek::from_base64(crypto::base64_encode(as_bytes(raw))).value();
}

std::string unique(const std::string& name) {
  return name + "-" + to_hex(crypto::random_bytes(4).value());
}

// One ledgerd-like process: a KafkaLog and a KeyStore over it.
struct Node {
  std::unique_ptr<KafkaLog> log;
  std::unique_ptr<KeyStore> keys;
  KafkaKeys* backend = nullptr;

  static Node open(const std::string& topic, bool read_only = false, char kek = 'k',
                   std::chrono::milliseconds staleness = 1s) {
    KafkaLogOptions o;
    o.brokers = brokers();
    o.topic = topic;
    o.partitions = 2;
    o.transactional_id_prefix = topic + "-";
    o.read_only = read_only;
    o.request_timeout = 20s;
    o.transaction_timeout = 30s;
    o.message_timeout = 20s;
    Node n;
    auto log = KafkaLog::open(o);
    EXPECT_TRUE(log) << log.error().message();
    if (!log) return n;
    n.log = std::move(log).value();
    auto backend = std::make_unique<KafkaKeys>(*n.log, read_only, staleness);
    n.backend = backend.get();
    auto keys = KeyStore::open(std::move(backend), test_kek(kek));
    EXPECT_TRUE(keys) << keys.error().message() << " " << n.log->last_error();
    if (keys) n.keys = std::move(keys).value();
    return n;
  }

  // A registration with a sealed email, appended through the real path.
  Record register_user(const std::string& subject, const std::string& email) {
    EventBuilder b(keys.get(), {subject, subject, "r1", 1'767'225'600'000'000, {}, {}});
    const auto sealed = b.seal("email", email).value();
    const auto body = schema::CreateUserRegistered(b.fbb(), sealed);
    const auto bytes = b.finish(body).value();
    const ByteView v(bytes);
    const auto p = partition_for(subject, log->partition_count());
    const auto r = log->append(p, std::span<const ByteView>(&v, 1)).value();
    return Record{{p, r.first}, r.head, bytes};
  }
};

TEST(KafkaKeys, ASealedFieldOpensOnAnotherNodeAndIsNotPlaintextInTheTopic) {
  REQUIRE_BROKER();
  const auto topic = unique("keys");
  auto a = Node::open(topic);
  ASSERT_TRUE(a.keys);
  const auto rec = a.register_user("u-1", "alice@example.com");
  const std::string raw(rec.event.begin(), rec.event.end());
  EXPECT_EQ(raw.find("alice@example.com"), std::string::npos);

  auto reader = Node::open(topic, /*read_only=*/true);
  ASSERT_TRUE(reader.keys);
  const auto stored = reader.log->read_range(rec.position.partition, rec.position.seq,
                                             Seq{rec.position.seq.value + 1});
  ASSERT_TRUE(stored);
  ASSERT_EQ(stored.value().size(), 1u);
  const auto j = record_to_json(stored.value()[0], reader.keys.get()).value();
  EXPECT_EQ(j["event"]["email"], "alice@example.com");
  EXPECT_FALSE(j["erased"].get<bool>());
}

TEST(KafkaKeys, ErasureTombstonesTheKeyWithItsEventAndOtherNodesSeeIt) {
  REQUIRE_BROKER();
  const auto topic = unique("keys");
  auto a = Node::open(topic);
  ASSERT_TRUE(a.keys);
  const auto rec = a.register_user("u-erase", "bob@example.com");
  const auto other = a.register_user("u-keep", "carol@example.com");
  // A reader that has the key cached before the erasure.
  auto reader = Node::open(topic, /*read_only=*/true, 'k', /*staleness=*/200ms);
  ASSERT_TRUE(reader.keys);
  ASSERT_TRUE(record_to_json(rec, reader.keys.get()));
  EXPECT_EQ(record_to_json(rec, reader.keys.get()).value()["event"]["email"], "bob@example.com");

  const auto erased = a.keys->erase("u-erase", "admin", "gdpr request", 1'767'225'700'000'000);
  ASSERT_TRUE(erased) << erased.error().message() << " " << a.log->last_error();
  EXPECT_TRUE(a.keys->is_erased("u-erase").value());
  EXPECT_EQ(a.keys->seal("u-erase", Bytes(16, 1), "email", as_bytes(std::string("x"))).error(),
            Errc::erased);

  // The topic holds a tombstone for the DEK and the erased marker, committed with the record.
  std::vector<std::pair<std::string, bool>> seen;
  ASSERT_TRUE(a.log->read_keys(0, [&](std::string_view k, const std::string* v) {
    seen.emplace_back(std::string(k), v != nullptr);
  }));
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen[seen.size() - 2], (std::pair<std::string, bool>{"dek/u-erase", false}));
  EXPECT_EQ(seen.back(), (std::pair<std::string, bool>{"erased/u-erase", true}));
  const auto p = partition_for("u-erase", a.log->partition_count());
  const auto last = a.log->read_range(p, erased.value().first, Seq{erased.value().first.value + 1});
  ASSERT_TRUE(last);
  ASSERT_EQ(last.value().size(), 1u);
  EXPECT_EQ(schemas::envelope_of(last.value()[0].event.data())->event_type(),
            schema::Event::SubjectErased);

  // The reader drops its cached key once its periodic refresh (ledgerd's follower thread)
  // has run after the staleness bound; others stay readable.
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(reader.backend->refresh_if_stale());
  const auto after = record_to_json(rec, reader.keys.get());
  ASSERT_TRUE(after);
  EXPECT_TRUE(after.value()["erased"].get<bool>());
  EXPECT_FALSE(after.value()["event"].contains("email") &&
               after.value()["event"]["email"] == "bob@example.com");
  EXPECT_EQ(record_to_json(other, reader.keys.get()).value()["event"]["email"],
            "carol@example.com");
  EXPECT_TRUE(reader.keys->is_erased("u-erase").value());

  // A node opened later learns it from the topic, and the chain still verifies.
  auto late = Node::open(topic, /*read_only=*/true);
  ASSERT_TRUE(late.keys);
  EXPECT_TRUE(late.keys->is_erased("u-erase").value());
  EXPECT_FALSE(late.keys->is_erased("u-keep").value());
  const auto report = verify_chain(*late.log, {});
  EXPECT_EQ(report.outcome, VerifyReport::Outcome::verified);
  EXPECT_EQ(report.records, 3u);
}

TEST(KafkaKeys, AWrongKekIsRefusedAtOpen) {
  REQUIRE_BROKER();
  const auto topic = unique("keys");
  auto a = Node::open(topic);
  ASSERT_TRUE(a.keys);
  KafkaLogOptions o;
  o.brokers = brokers();
  o.topic = topic;
  o.transactional_id_prefix = topic + "-";
  auto log = KafkaLog::open(o).value();
  auto wrong = KeyStore::open(std::make_unique<KafkaKeys>(*log), test_kek('z'));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error(), Errc::key_invalid);
}

// The lookup-hash key's check (KeyStore::check_lookup_key): the first "lookup_key_check" record
// of <topic>.meta, shared by every node.
TEST(KafkaKeys, TheLookupKeyCheckIsStoredOnceAndAnotherNodesDifferentKeyIsRefused) {
  REQUIRE_BROKER();
  const auto topic = unique("keys");
  auto a = Node::open(topic);
  ASSERT_TRUE(a.keys);
  EXPECT_FALSE(a.log->meta_first("lookup_key_check", nullptr).value())
      << "KeyStore::open alone stores no lookup check";
  ASSERT_TRUE(a.keys->check_lookup_key(test_kek('l')));
  const auto first = a.log->meta_first("lookup_key_check", nullptr).value();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->size(), 32u);
  const std::string raw(32, 'l');
  EXPECT_EQ(first->find(raw), std::string::npos) << "the check must not be the key";
  EXPECT_TRUE(a.keys->check_lookup_key(test_kek('l'))) << "same key again";

  // Another node (another process, another data dir) with the same key passes...
  auto b = Node::open(topic);
  ASSERT_TRUE(b.keys);
  EXPECT_TRUE(b.keys->check_lookup_key(test_kek('l')));
  // ...one with a different key is refused, and its key never replaces the first check.
  auto c = Node::open(topic);
  ASSERT_TRUE(c.keys);
  const auto refused = c.keys->check_lookup_key(test_kek('m'));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), Errc::key_invalid);
  EXPECT_EQ(c.log->meta_first("lookup_key_check", nullptr).value(), first);
  EXPECT_TRUE(Node::open(topic).keys->check_lookup_key(test_kek('l')));
}

TEST(KafkaKeys, AReaderWritesNoLookupKeyCheckButComparesWithAStoredOne) {
  REQUIRE_BROKER();
  const auto topic = unique("keys");
  auto a = Node::open(topic);  // the ledger and its KEK check, no lookup check yet
  ASSERT_TRUE(a.keys);
  {
    auto reader = Node::open(topic, /*read_only=*/true);
    ASSERT_TRUE(reader.keys);
    EXPECT_TRUE(reader.keys->check_lookup_key(test_kek('m'))) << "nothing to compare with";
  }
  EXPECT_FALSE(a.log->meta_first("lookup_key_check", nullptr).value()) << "the reader wrote one";
  // The first writer to check stores it, so the reader's key was not the ledger's.
  ASSERT_TRUE(a.keys->check_lookup_key(test_kek('l')));
  auto reader = Node::open(topic, /*read_only=*/true);
  ASSERT_TRUE(reader.keys);
  EXPECT_TRUE(reader.keys->check_lookup_key(test_kek('l')));
  const auto refused = reader.keys->check_lookup_key(test_kek('m'));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), Errc::key_invalid);
}

TEST(KafkaKeys, ANewWriterOfAPartitionUsesItsPredecessorsKeyInsteadOfMakingASecond) {
  REQUIRE_BROKER();
  const auto topic = unique("keys");
  auto a = Node::open(topic);
  ASSERT_TRUE(a.keys);
  // b is up to date (and caches that "u-move" has no key) before a creates it.
  auto b = Node::open(topic);
  ASSERT_TRUE(b.keys);
  EXPECT_EQ(b.keys->open_field("u-move", Bytes(16, 0), "email", Bytes(40, 0)).error(),
            Errc::not_found);
  const auto rec = a.register_user("u-move", "dave@example.com");
  // b takes the partition over (fencing a) and seals for the same subject.
  const auto p = partition_for("u-move", b.log->partition_count());
  ASSERT_TRUE(b.log->claim(p));
  const auto second = b.register_user("u-move", "dave2@example.com");
  auto reader = Node::open(topic, /*read_only=*/true);
  ASSERT_TRUE(reader.keys);
  // One key for the subject: both records open.
  EXPECT_EQ(record_to_json(rec, reader.keys.get()).value()["event"]["email"], "dave@example.com");
  EXPECT_EQ(record_to_json(second, reader.keys.get()).value()["event"]["email"],
            "dave2@example.com");
  int dek_records = 0;
  ASSERT_TRUE(reader.log->read_keys(0, [&](std::string_view k, const std::string*) {
    dek_records += k == "dek/u-move" ? 1 : 0;
  }));
  EXPECT_EQ(dek_records, 1);
  // a was fenced: it can no longer create keys or append in that partition.
  const auto same_partition = testing::subject_in(p.value, 2, 7);
  EXPECT_EQ(a.keys->seal(same_partition, Bytes(16, 1), "email", as_bytes(std::string("x"))).error(),
            Errc::writer_failed);
}

}  // namespace
}  // namespace sechex::ledger
