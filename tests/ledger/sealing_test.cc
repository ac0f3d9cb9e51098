// Sealing of personal data, the KEK, the lookup-key check, and crypto-shredding (ARCHITECTURE.md
// "Personal data is sealed"; spec 004 FR-036 right to deletion, secure storage; spec 000 NFR
// AES-256 at rest).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <optional>

#include "ledger/data_dir.h"
#include "ledger/event_builder.h"
#include "ledger/export.h"
#include "ledger/key_store.h"
#include "ledger/verify.h"
#include "support/test_util.h"

namespace sechex::ledger {
namespace {

using testing::TempDir;

template <typename Container>
std::string to_string(const Container& c) {
  return std::string(c.begin(), c.end());
}

Kek test_kek(char fill = 'k') {
  const std::string raw(32, fill);
  return Kek::from_base64(crypto::base64_encode(as_bytes(raw))).value();
}

struct Fixture {
  TempDir dir;
  std::unique_ptr<LogStore> log;
  std::unique_ptr<KeyStore> keys;
  Fixture() {
    LogOptions o;
    o.path = dir.sub("log");
    o.create_if_missing = true;
    o.partitions = 4;
    log = LogStore::open(o).value();
    keys = KeyStore::open(*log, test_kek()).value();
  }
  // A registration with a sealed email and sealed source, appended through the real path.
  Record register_user(const std::string& subject, const std::string& email) {
    EventBuilder b(keys.get(), {subject, subject, "r1", 1'767'225'600'000'000,
                                std::string("203.0.113.7"), std::string("UA/1.0")});
    const auto sealed = b.seal("email", email).value();
    const auto body = schema::CreateUserRegistered(b.fbb(), sealed);
    const auto bytes = b.finish(body).value();
    const ByteView v(bytes);
    const auto p = partition_for(subject, log->partition_count());
    const auto r = log->append(p, std::span<const ByteView>(&v, 1)).value();
    return log->read_range(p, r.first, Seq{r.first.value + 1}).value().at(0);
  }
};

TEST(Sealing, PiiIsNotStoredInPlaintextAndOpensWithTheSubjectsKey) {
  Fixture f;
  const auto rec = f.register_user("u-1", "alice@example.com");
  const std::string raw(rec.event.begin(), rec.event.end());
  EXPECT_EQ(raw.find("alice@example.com"), std::string::npos);
  EXPECT_EQ(raw.find("203.0.113.7"), std::string::npos);
  const auto j = record_to_json(rec, f.keys.get()).value();
  EXPECT_EQ(j["event"]["email"], "alice@example.com");
  EXPECT_EQ(j["source"]["ip"], "203.0.113.7");
  EXPECT_EQ(j["source"]["user_agent"], "UA/1.0");
  EXPECT_FALSE(j["erased"].get<bool>());
  EXPECT_FALSE(j["event"].contains("email_sealed"));
}

// Exports (ledgerctl, audit, GDPR) open personal data but never credentials: a mailed code or
// reset token, a password hash, a secret's server share.
TEST(Sealing, ExportsRedactSealedCredentialsButOpenPersonalData) {
  Fixture f;
  EventBuilder b(f.keys.get(),
                 {"u-1", "u-1", "r1", 1'767'225'600'000'000, std::nullopt, std::nullopt});
  const auto to = b.seal("to", "alice@example.com").value();
  const auto secret = b.seal("secret", "12345678").value();
  auto& fbb = b.fbb();
  const auto bytes =
      b.finish(schema::CreateMailQueued(fbb, fbb.CreateString("m1"), fbb.CreateString("otp_code"),
                                        to, secret, fbb.CreateString("en")))
          .value();
  const ByteView v(bytes);
  const auto p = partition_for("u-1", 4);
  const auto r = f.log->append(p, std::span<const ByteView>(&v, 1)).value();
  const auto rec = f.log->read_range(p, r.first, Seq{r.first.value + 1}).value().at(0);
  const auto j = record_to_json(rec, f.keys.get()).value();
  EXPECT_EQ(j["event"]["to"], "alice@example.com");
  EXPECT_EQ(j["event"]["secret"], kRedactedValue);
  EXPECT_EQ(j.dump().find("12345678"), std::string::npos);
}

// Issue 12: a client chooses its User-Agent bytes. The builder stores text fields as well-formed
// UTF-8 (ill-formed bytes as U+FFFD, the agent cut at 512 bytes on a character boundary), and
// refuses a subject that is not UTF-8 rather than change whose key it names.
TEST(Sealing, TheBuilderStoresHeaderTextAsValidUtf8AndRefusesABadSubject) {
  Fixture f;
  std::string long_agent;
  for (int i = 0; i < 300; ++i) long_agent += "\xC3\xA9";  // 600 bytes, é after é
  EventBuilder b(f.keys.get(), {"u-1", "actor\xFF", "r\xC0\x80", 1'767'225'600'000'000,
                                std::nullopt, "a" + long_agent});
  const auto bytes = b.finish(schema::CreateAccountUnlocked(b.fbb(), true)).value();
  const ByteView v(bytes);
  const auto p = partition_for("u-1", f.log->partition_count());
  const auto r = f.log->append(p, std::span<const ByteView>(&v, 1)).value();
  const auto rec = f.log->read_range(p, r.first, Seq{r.first.value + 1}).value().at(0);
  const auto j = record_to_json(rec, f.keys.get()).value();
  EXPECT_EQ(j["actor"], "actor\xEF\xBF\xBD");
  EXPECT_EQ(j["request_id"], "r\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(j["source"]["user_agent"], "a" + long_agent.substr(0, 510));  // 511 bytes, whole
  EXPECT_FALSE(j.contains("invalid_utf8"));  // nothing left to repair at render time

  EventBuilder bad(f.keys.get(), {"u-\xFF", "a", "r", 1, std::nullopt, std::nullopt});
  const auto refused = bad.finish(schema::CreateAccountUnlocked(bad.fbb(), true));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), Errc::invalid_argument);
}

// Records written before that (or by another producer) may hold any bytes, in the clear or
// sealed: they render with U+FFFD in place and `invalid_utf8` naming the repaired strings, and
// a record that is no event at all is marked by render_record instead of failing its reader.
TEST(Sealing, StoredTextThatIsNotUtf8RendersMarkedInsteadOfFailing) {
  Fixture f;
  EventBuilder b(f.keys.get(),
                 {"u-1", "u-1", "r1", 1'767'225'600'000'000, std::nullopt, std::nullopt});
  // What the pre-fix server stored: a header's bytes, sealed as they came, and a string.
  auto& fbb = b.fbb();
  const auto device = b.seal("device", "\xED\xA0\x80 agent").value();
  const auto bytes =
      b.finish(schema::CreateSessionStarted(fbb, fbb.CreateString("s\xFF"), fbb.CreateString("fam"),
                                            0, false, 0, 0, device))
          .value();
  const ByteView v(bytes);
  const auto p = partition_for("u-1", f.log->partition_count());
  const auto r = f.log->append(p, std::span<const ByteView>(&v, 1)).value();
  const auto rec = f.log->read_range(p, r.first, Seq{r.first.value + 1}).value().at(0);
  const auto j = record_to_json(rec, f.keys.get()).value();
  EXPECT_NO_THROW((void)j.dump());
  EXPECT_EQ(j["event"]["session_id"], "s\xEF\xBF\xBD");
  EXPECT_EQ(j["event"]["device"], "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD agent");
  EXPECT_EQ(j["invalid_utf8"], (nlohmann::json{"/event/device", "/event/session_id"}));
  EXPECT_NO_THROW((void)json_to_csv_row(j));

  Record junk = rec;
  junk.event = {0xFF, 0x00, 0x12};
  const auto marked = render_record(junk, f.keys.get());
  EXPECT_EQ(marked["unrenderable"], "not_an_event");
  EXPECT_EQ(marked["seq"], rec.position.seq.value);
  EXPECT_EQ(marked["hash"], to_hex(rec.hash));
  EXPECT_NO_THROW((void)json_to_csv_row(marked));
}

TEST(Sealing, CiphertextIsBoundToSubjectFieldAndEvent) {
  Fixture f;
  Bytes id(16, 7), other_id(16, 8);
  const auto sealed = f.keys->seal("u-1", id, "email", as_bytes(std::string("a@b.c"))).value();
  EXPECT_TRUE(f.keys->open_field("u-1", id, "email", sealed));
  EXPECT_EQ(f.keys->open_field("u-1", other_id, "email", sealed).error(),
            Errc::authentication_failed);
  EXPECT_EQ(f.keys->open_field("u-1", id, "ip", sealed).error(), Errc::authentication_failed);
  f.keys->seal("u-2", id, "x", as_bytes(std::string("y"))).value();  // give u-2 a key
  EXPECT_EQ(f.keys->open_field("u-2", id, "email", sealed).error(), Errc::authentication_failed);
  auto tampered = sealed;
  tampered.back() ^= 1;
  EXPECT_EQ(f.keys->open_field("u-1", id, "email", tampered).error(), Errc::authentication_failed);
  EXPECT_EQ(f.keys->open_field("nobody", id, "email", sealed).error(), Errc::not_found);
}

TEST(Sealing, ErasureShredsOneSubjectKeepsOthersAndTheChainVerifies) {
  Fixture f;
  const auto alice = f.register_user("u-alice", "alice@example.com");
  const auto bob = f.register_user("u-bob", "bob@example.com");
  const auto erased = f.keys->erase("u-alice", "admin:1", "gdpr_request", 1'767'225'700'000'000);
  ASSERT_TRUE(erased) << erased.error().message();

  // The history still verifies: erasure removed a key, not a record.
  EXPECT_EQ(verify_log(*f.log, {}).outcome, VerifyReport::Outcome::verified);

  const auto ja = record_to_json(alice, f.keys.get()).value();
  EXPECT_EQ(ja["event"]["email"], kErasedValue);
  EXPECT_EQ(ja["source"]["ip"], kErasedValue);
  EXPECT_TRUE(ja["erased"].get<bool>());
  const auto jb = record_to_json(bob, f.keys.get()).value();
  EXPECT_EQ(jb["event"]["email"], "bob@example.com");

  // The SubjectErased event is in alice's partition, right after her registration.
  const auto p = partition_for("u-alice", 4);
  const auto recs = f.log->read_range(p, erased.value().first, Seq{UINT64_MAX}).value();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(schemas::envelope_of(recs[0].event.data())->event_type(), schema::Event::SubjectErased);
  // No new data can be sealed for an erased subject.
  EXPECT_EQ(f.keys->seal("u-alice", Bytes(16, 1), "email", as_bytes(std::string("x"))).error(),
            Errc::erased);
  EXPECT_TRUE(f.keys->is_erased("u-alice").value());
  EXPECT_FALSE(f.keys->is_erased("u-bob").value());
}

TEST(Sealing, ErasureSurvivesReopenAndNewKeyStores) {
  TempDir dir;
  Record alice;
  {
    LogOptions o;
    o.path = dir.sub("log");
    o.create_if_missing = true;
    o.partitions = 2;
    auto log = LogStore::open(o).value();
    auto keys = KeyStore::open(*log, test_kek()).value();
    EventBuilder b(keys.get(), {"u-a", "u-a", "", 0, std::string("10.0.0.1"), {}});
    const auto bytes = b.finish(schema::CreateCheckIn(b.fbb())).value();
    const ByteView v(bytes);
    const auto r = log->append(partition_for("u-a", 2), std::span<const ByteView>(&v, 1)).value();
    alice = log->read_range(partition_for("u-a", 2), r.first, Seq{1}).value().at(0);
    ASSERT_TRUE(keys->erase("u-a", "t", "test", 1));
  }
  LogOptions o;
  o.path = dir.sub("log");
  o.mode = LogOptions::Mode::read_only;
  auto log = LogStore::open(o).value();
  auto keys = KeyStore::open(*log, test_kek()).value();
  EXPECT_EQ(record_to_json(alice, keys.get()).value()["source"]["ip"], kErasedValue);
}

TEST(Kek, WrongKekIsRefusedAtOpen) {
  Fixture f;
  f.register_user("u-1", "a@example.com");
  EXPECT_EQ(KeyStore::open(*f.log, test_kek('z')).error(), Errc::key_invalid);
}

// The lookup-hash key's check (KeyStore::check_lookup_key), embedded: meta "lookup_key_check".
std::unique_ptr<LogStore> open_log(const TempDir& dir, bool read_only = false) {
  LogOptions o;
  o.path = dir.sub("log");
  o.create_if_missing = !read_only;
  o.partitions = 2;
  if (read_only) o.mode = LogOptions::Mode::read_only;
  return LogStore::open(o).value();
}

std::optional<std::string> stored_lookup_check(const LogStore& log) {
  std::string v;
  const auto s = log.raw_db()->Get(rocksdb::ReadOptions(), log.cf_meta(), "lookup_key_check", &v);
  if (s.IsNotFound()) return std::nullopt;
  EXPECT_TRUE(s.ok()) << s.ToString();
  return v;
}

TEST(LookupKey, FirstStartStoresACheckThatRevealsNothingAndTheSameKeyPassesAfterReopen) {
  TempDir dir;
  const auto key = test_kek('l');
  {
    auto log = open_log(dir);
    auto keys = KeyStore::open(*log, test_kek()).value();
    EXPECT_FALSE(stored_lookup_check(*log)) << "KeyStore::open alone stores no lookup check";
    ASSERT_TRUE(keys->check_lookup_key(key));
    const auto check = stored_lookup_check(*log);
    ASSERT_TRUE(check);
    // HMAC-SHA-256(key, label): 32 bytes, neither the key nor a plain hash of it.
    const std::string label = "sechex lookup-key check v1";
    EXPECT_EQ(*check, to_string(crypto::hmac_sha256(key.bytes(), as_bytes(label)).value()));
    const std::string raw(key.bytes().begin(), key.bytes().end());
    EXPECT_EQ(check->find(raw), std::string::npos);
    EXPECT_NE(*check, to_string(crypto::sha256(key.bytes())));
    EXPECT_TRUE(keys->check_lookup_key(key)) << "the same key again, same process";
  }
  auto log = open_log(dir);
  auto keys = KeyStore::open(*log, test_kek()).value();
  EXPECT_TRUE(keys->check_lookup_key(test_kek('l')));
}

TEST(LookupKey, AnotherKeyIsRefusedAndDoesNotReplaceTheFirst) {
  TempDir dir;
  std::optional<std::string> first;
  {
    auto log = open_log(dir);
    auto keys = KeyStore::open(*log, test_kek()).value();
    ASSERT_TRUE(keys->check_lookup_key(test_kek('l')));
    first = stored_lookup_check(*log);
    const auto other = keys->check_lookup_key(test_kek('m'));
    ASSERT_FALSE(other);
    EXPECT_EQ(other.error(), Errc::key_invalid);
  }
  // A new process (lost key file regenerated) is refused too; the first check stays.
  auto log = open_log(dir);
  auto keys = KeyStore::open(*log, test_kek()).value();
  const auto other = keys->check_lookup_key(test_kek('m'));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error(), Errc::key_invalid);
  EXPECT_EQ(stored_lookup_check(*log), first);
  EXPECT_TRUE(keys->check_lookup_key(test_kek('l')));
}

TEST(LookupKey, AReaderWritesNoCheckButComparesWithAStoredOne) {
  TempDir dir;
  {
    auto log = open_log(dir);
    ASSERT_TRUE(KeyStore::open(*log, test_kek()));  // a ledger from before the lookup check
  }
  {
    auto log = open_log(dir, /*read_only=*/true);
    auto keys = KeyStore::open(*log, test_kek()).value();
    EXPECT_TRUE(keys->check_lookup_key(test_kek('l'))) << "nothing stored: nothing to compare";
    EXPECT_FALSE(stored_lookup_check(*log));
  }
  {
    auto log = open_log(dir);
    EXPECT_FALSE(stored_lookup_check(*log)) << "the reader wrote nothing";
    auto keys = KeyStore::open(*log, test_kek()).value();
    ASSERT_TRUE(keys->check_lookup_key(test_kek('l')));  // first writer stores it now
  }
  auto log = open_log(dir, /*read_only=*/true);
  auto keys = KeyStore::open(*log, test_kek()).value();
  EXPECT_TRUE(keys->check_lookup_key(test_kek('l')));
  const auto other = keys->check_lookup_key(test_kek('m'));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error(), Errc::key_invalid);
}

TEST(LookupKey, ItsCheckAndTheKekCheckAreIndependent) {
  // Same 32 bytes as KEK and lookup key: both checks pass; a wrong KEK is still refused.
  TempDir dir;
  {
    auto log = open_log(dir);
    auto keys = KeyStore::open(*log, test_kek('k')).value();
    ASSERT_TRUE(keys->check_lookup_key(test_kek('k')));
  }
  auto log = open_log(dir);
  EXPECT_EQ(KeyStore::open(*log, test_kek('l')).error(), Errc::key_invalid);
  auto keys = KeyStore::open(*log, test_kek('k')).value();
  EXPECT_TRUE(keys->check_lookup_key(test_kek('k')));
}

TEST(Kek, FileMustBeBase64Of32BytesAndPrivate) {
  TempDir dir;
  const auto path = dir.sub("kek");
  EXPECT_EQ(Kek::from_file(path).error(), Errc::key_missing);
  ASSERT_TRUE(Kek::generate_file(path));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(Kek::from_file(path));
  EXPECT_FALSE(Kek::generate_file(path)) << "must never overwrite an existing KEK";
  ::chmod(path.c_str(), 0644);
  EXPECT_EQ(Kek::from_file(path).error(), Errc::key_invalid);

  const auto bad = dir.sub("bad");
  {
    std::ofstream out(bad);
    out << "c2hvcnQ=\n";  // "short"
  }
  ::chmod(bad.c_str(), 0600);
  EXPECT_EQ(Kek::from_file(bad).error(), Errc::key_invalid);
  EXPECT_EQ(Kek::from_base64("not base64!").error(), Errc::key_invalid);
}

// The secrets ledgerd is given by file (SMTP password, webhook secret, OIDC client secret) are
// read by one function: only from a regular file its owner alone may read, first line, with
// trailing CR and blanks dropped; each refusal names the file and what to do.
TEST(SecretFile, OnlyAnOwnerReadableFileGivesItsFirstLineAndEachRefusalSaysWhy) {
  testing::TempDir dir;
  const auto path = dir.sub("secret");
  const auto write = [&](const std::string& text, mode_t mode) {
    std::ofstream(path, std::ios::trunc) << text;
    ::chmod(path.c_str(), mode);
  };
  write("s3cret \r\nsecond line\n", 0600);
  const auto ok = read_secret_file(path);
  ASSERT_TRUE(ok) << ok.error;
  EXPECT_EQ(ok.secret, "s3cret");
  write("s3cret\n", 0640);
  EXPECT_EQ(read_secret_file(path).error, path + " is readable by group or others (chmod 600 it)");
  write("\n", 0600);
  EXPECT_EQ(read_secret_file(path).error, path + " holds no secret on its first line");
  EXPECT_EQ(read_secret_file(dir.sub("missing")).error, "cannot read " + dir.sub("missing"));
  EXPECT_EQ(read_secret_file(dir.path()).error, "cannot read " + dir.path())
      << "a directory is no secret file";
}

TEST(Kek, EnvironmentVariableIsAccepted) {
  ::setenv("SECHEX_TEST_KEK", crypto::base64_encode(Bytes(32, 3)).c_str(), 1);
  EXPECT_TRUE(Kek::from_env("SECHEX_TEST_KEK"));
  ::unsetenv("SECHEX_TEST_KEK");
  EXPECT_EQ(Kek::from_env("SECHEX_TEST_KEK").error(), Errc::key_missing);
}

}  // namespace
}  // namespace sechex::ledger
