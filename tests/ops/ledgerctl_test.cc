// ledgerctl end to end: the real binary on a real data directory. Covers the issue's "done
// when" (demo then verify exits 0; an `ldb` rewrite of one record makes verify exit 1 naming
// it) and the bad-input contract (clear message, exit 2, nothing written).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "ledger/data_dir.h"
#include "ledger/event_builder.h"
#include "ledger/export.h"
#include "ledger/time_format.h"
#include "ledger/verify.h"
#include "projections/store.h"
#include "support/export_checks.h"
#include "support/process.h"
#include "support/test_util.h"

namespace sechex::ops {
namespace {

using ledger::DataDir;
using testing::TempDir;

using testing::run;
using testing::RunResult;
using testing::slurp;

class Ledgerctl : public ::testing::Test {
 protected:
  RunResult ctl(std::vector<std::string> args,
                const std::vector<std::string>& env = {"SECHEX_KEK="}) {
    args.insert(args.begin(), {SECHEX_LEDGERCTL, "--data-dir", dir_.path()});
    return run(args, env);
  }
  void init_and_demo(int events) {
    auto r = ctl({"init", "--partitions", "4"});
    ASSERT_EQ(r.code, 0) << r.err;
    r = ctl({"demo", "--events", std::to_string(events), "--seed", "7"});
    ASSERT_EQ(r.code, 0) << r.err << r.out;
  }
  std::uint64_t record_count() {
    ledger::LogOptions o;
    o.path = DataDir{dir_.path()}.log_path();
    o.mode = ledger::LogOptions::Mode::read_only;
    auto log = ledger::LogStore::open(o).value();
    std::uint64_t n = 0;
    for (std::uint32_t p = 0; p < log->partition_count(); ++p) {
      n += log->head(ledger::Partition{p}).next.value;
    }
    return n;
  }
  TempDir dir_;
};

TEST_F(Ledgerctl, DemoThenVerifyExitsZero) {
  init_and_demo(3000);
  const auto r = ctl({"verify"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("verified: 3000 records"), std::string::npos) << r.out;
  EXPECT_EQ(record_count(), 3000u);
}

std::string hex(const std::string& bytes) { return ledger::to_hex(ledger::as_bytes(bytes)); }

TEST_F(Ledgerctl, LdbRewriteOfOneRecordMakesVerifyExitOneNamingIt) {
  init_and_demo(400);
  const auto log_path = DataDir{dir_.path()}.log_path();
  const auto key = "0x" + hex(ledger::encode_log_key(ledger::Partition{2}, ledger::Seq{17}));
  auto got = run({"/usr/bin/ldb", "--db=" + log_path, "--column_family=log", "get", key,
                  "--key_hex", "--value_hex"});
  ASSERT_EQ(got.code, 0) << got.err << got.out;
  std::string value_hex = got.out.substr(0, got.out.find_first_of("\r\n"));
  ASSERT_GT(value_hex.size(), 200u) << got.out;
  // Flip one hex digit near the end of the event bytes: an in-place rewrite of the value.
  auto& c = value_hex[value_hex.size() - 20];
  c = c == '0' ? '1' : '0';
  const auto put = run({"/usr/bin/ldb", "--db=" + log_path, "--column_family=log", "put", key,
                        value_hex, "--key_hex", "--value_hex"});
  ASSERT_EQ(put.code, 0) << put.err << put.out;
  const auto r = ctl({"verify"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("partition 2 seq 17"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("event_altered"), std::string::npos) << r.out;
}

TEST_F(Ledgerctl, BadFlagsAndCommandsExitTwoWithAMessage) {
  init_and_demo(10);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"verify", "--no-such-flag"},
        {"frobnicate"},
        {"export", "--format", "xml"},
        {"export", "--from", "yesterday"},
        {"export", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"},
        {"demo", "--events", "many"},
        {"tail", "--partition", "99"},
        {"erase"}}) {
    const auto r = ctl(args);
    EXPECT_EQ(r.code, 2) << args[0] << " " << (args.size() > 1 ? args[1] : "");
    EXPECT_NE(r.err.find("ledgerctl: "), std::string::npos) << r.err;
  }
  EXPECT_EQ(record_count(), 10u);
  EXPECT_EQ(ctl({}).code, 2);
  EXPECT_EQ(ctl({"--help"}).code, 0);
}

TEST_F(Ledgerctl, MissingStoreExitsTwo) {
  const auto r = ctl({"verify"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no ledger at"), std::string::npos) << r.err;
}

TEST_F(Ledgerctl, MissingOrWrongKeysExitTwoAndWriteNothing) {
  init_and_demo(20);
  const DataDir dd{dir_.path()};
  // Wrong KEK from the environment: refused before anything is written.
  const auto wrong = ledger::crypto::base64_encode(ledger::Bytes(32, 9));
  auto r = ctl({"demo", "--events", "5"}, {"SECHEX_KEK=" + wrong});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("does not match"), std::string::npos) << r.err;
  r = ctl({"export"}, {"SECHEX_KEK=" + wrong});
  EXPECT_EQ(r.code, 2) << r.err;
  // Missing KEK file.
  std::filesystem::rename(dd.kek_file(), dd.kek_file() + ".away");
  r = ctl({"demo", "--events", "5"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("key-encryption key not found"), std::string::npos) << r.err;
  std::filesystem::rename(dd.kek_file() + ".away", dd.kek_file());
  // Missing signing key.
  std::filesystem::rename(dd.signing_key(), dd.signing_key() + ".away");
  r = ctl({"demo", "--events", "5"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("signing key not found"), std::string::npos) << r.err;
  // Missing trusted keys for verify.
  r = ctl({"verify", "--trusted-keys", dir_.sub("nope.txt")});
  r = run({SECHEX_LEDGERCTL, "--data-dir", dir_.path(), "--trusted-keys", dir_.sub("nope.txt"),
           "verify"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no trusted checkpoint keys"), std::string::npos) << r.err;
  EXPECT_EQ(record_count(), 20u);
}

TEST_F(Ledgerctl, CorruptStoreFilesExitTwo) {
  init_and_demo(10);
  const auto current = DataDir{dir_.path()}.log_path() + "/CURRENT";
  {
    std::ofstream out(current, std::ios::trunc);
    out << "garbage\n";
  }
  for (const char* cmd : {"verify", "export", "tail", "checkpoints", "demo"}) {
    const auto r = ctl({cmd});
    EXPECT_EQ(r.code, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("ledgerctl: "), std::string::npos);
  }
}

TEST_F(Ledgerctl, ExportAfterErasureShowsTheSubjectErasedAndOthersIntact) {
  init_and_demo(600);
  auto r = ctl({"erase", "--subject", "user-3", "--reason", "gdpr_request"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = ctl({"verify"});
  EXPECT_EQ(r.code, 0) << r.out;

  r = ctl({"export", "--subject", "user-3"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int erased = 0, total = 0;
  bool saw_erasure_event = false;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    ++total;
    EXPECT_EQ(j["subject"], "user-3");
    EXPECT_EQ(line.find("user3@example.com"), std::string::npos);
    if (j["erased"].get<bool>()) ++erased;
    if (j["type"] == "SubjectErased") saw_erasure_event = true;
  }
  EXPECT_GT(total, 1);
  EXPECT_EQ(erased, total - 1);  // every event but SubjectErased itself had sealed fields
  EXPECT_TRUE(saw_erasure_event);

  r = ctl({"export", "--subject", "user-4"});
  ASSERT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("198.51.100."), std::string::npos);  // ip opened
  EXPECT_EQ(r.out.find("[erased]"), std::string::npos);
}

TEST_F(Ledgerctl, ExportsCsvAndFiltersByTime) {
  init_and_demo(300);
  auto all = ctl({"export", "--format", "csv"});
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_EQ(all.out.substr(0, all.out.find('\n')), ledger::csv_header());
  const auto all_lines = std::count(all.out.begin(), all.out.end(), '\n');
  EXPECT_GE(all_lines, 301);  // header + records (quoted JSON may add none: no raw newlines)
  // The demo spreads events over the last 100 days; the last 10 days hold about a tenth.
  const auto now = SystemClock::instance().now_micros();
  auto recent = ctl({"export", "--from", format_rfc3339(now - 10LL * 86'400'000'000), "--output",
                     dir_.sub("recent.jsonl")});
  ASSERT_EQ(recent.code, 0) << recent.err;
  const auto text = slurp(dir_.sub("recent.jsonl"));
  const auto n = std::count(text.begin(), text.end(), '\n');
  EXPECT_GT(n, 10);
  EXPECT_LT(n, 80);
  EXPECT_FALSE(std::filesystem::exists(dir_.sub("recent.jsonl.partial")));
}

TEST_F(Ledgerctl, ReadOnlyCommandsWorkWhileAWriterHoldsTheStore) {
  init_and_demo(200);
  const DataDir dd{dir_.path()};
  const auto signer = ledger::CheckpointSigner::load(dd.signing_key(), "sechex-ledger").value();
  ledger::LogOptions o;
  o.path = dd.log_path();
  o.signer = &signer;
  auto writer = ledger::LogStore::open(o);
  ASSERT_TRUE(writer) << writer.error().message();
  testing::append_n(*writer.value(), "live-subject", 5);
  for (const char* cmd : {"verify", "export", "tail", "checkpoints"}) {
    const auto r = ctl({cmd});
    EXPECT_EQ(r.code, 0) << cmd << ": " << r.err;
  }
  const auto v = ctl({"verify"});
  EXPECT_NE(v.out.find("verified: 205 records"), std::string::npos) << v.out;
  const auto busy = ctl({"demo", "--events", "1"});
  EXPECT_EQ(busy.code, 2);
  EXPECT_NE(busy.err.find("open for writing by another process"), std::string::npos) << busy.err;
}

TEST_F(Ledgerctl, EventFromANewerSchemaMakesVerifyAndExportExitTwo) {
  init_and_demo(10);
  {
    // A correctly chained record whose event says schema_version 2, as a newer ledgerd would
    // write it.
    const DataDir dd{dir_.path()};
    testing::RawDb db(dd.log_path());
    flatbuffers::FlatBufferBuilder fbb;
    const std::array<std::uint8_t, 16> id{};
    const schema::EventId eid(flatbuffers::span<const std::uint8_t, 16>(id.data(), 16));
    const std::string subject = testing::subject_in(0, 4);
    auto env = schema::CreateEnvelope(fbb, 2, &eid, 0, fbb.CreateString(subject), 0, 0, 0,
                                      schema::Event::CheckIn, schema::CreateCheckIn(fbb).Union());
    schema::FinishEnvelopeBuffer(fbb, env);
    const ledger::Bytes ev(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
    const std::string head_key = "head/" + std::string(4, '\0');
    const auto hv = db.get(db.meta(), head_key);
    const auto next = static_cast<std::uint64_t>(static_cast<unsigned char>(hv[7]));
    ledger::Hash prev{};
    std::copy(hv.begin() + 8, hv.end(), prev.begin());
    const auto h = ledger::chain_hash(ledger::Partition{0}, ledger::Seq{next}, prev, ev);
    db.put(db.log(), ledger::encode_log_key(ledger::Partition{0}, ledger::Seq{next}),
           ledger::encode_record(ledger::Partition{0}, ledger::Seq{next}, h, ev));
    std::string nhv(8, '\0');
    nhv[7] = static_cast<char>(next + 1);
    nhv.append(reinterpret_cast<const char*>(h.data()), 32);
    db.put(db.meta(), head_key, nhv);
  }
  auto r = ctl({"verify"});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("unsupported_schema_version"), std::string::npos) << r.out;
  r = ctl({"export"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("newer schema version"), std::string::npos) << r.err;
}

TEST_F(Ledgerctl, RebuildProjectionsIsRepeatableAndRefusesWhileInUse) {
  init_and_demo(500);
  auto first = ctl({"rebuild-projections"});
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_NE(first.out.find("from 500 records"), std::string::npos) << first.out;
  const auto digest = first.out.substr(first.out.find("digest ") + 7, 64);
  auto second = ctl({"rebuild-projections"});
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_NE(second.out.find("digest " + digest), std::string::npos) << second.out;
  {
    // A running ledgerd holds the projections: the rebuild must not swap them underneath it.
    auto held = projections::ProjectionStore::open(DataDir{dir_.path()}.projections_path(), 4,
                                                   projections::default_projections());
    ASSERT_TRUE(held);
    const auto busy = ctl({"rebuild-projections"});
    EXPECT_EQ(busy.code, 2);
    EXPECT_NE(busy.err.find("in use"), std::string::npos) << busy.err;
  }
}

// Issue 16: `projections snapshot` copies the projections while they are in use (a running
// ledgerd holds them, as here), never over an existing directory; the copy opens in place of
// the live store with its state and positions.
TEST_F(Ledgerctl, ProjectionsSnapshotCopiesTheStoreWhileInUseAndRefusesAnExistingTarget) {
  init_and_demo(500);
  ASSERT_EQ(ctl({"rebuild-projections"}).code, 0);
  const auto copy = dir_.sub("projections-copy");
  std::string live_digest;
  {
    auto held = projections::ProjectionStore::open(DataDir{dir_.path()}.projections_path(), 4,
                                                   projections::default_projections());
    ASSERT_TRUE(held);
    live_digest = held.value()->digest().value();
    const auto made = ctl({"projections", "snapshot", "--to", copy});
    ASSERT_EQ(made.code, 0) << made.err;
    EXPECT_NE(made.out.find("positions:"), std::string::npos) << made.out;
    const auto again = ctl({"projections", "snapshot", "--to", copy});
    EXPECT_EQ(again.code, 2);
    EXPECT_NE(again.err.find("exists"), std::string::npos) << again.err;
    EXPECT_EQ(ctl({"projections", "copy"}).code, 2) << "an unknown subcommand";
  }
  auto opened = projections::ProjectionStore::open(copy, 4, projections::default_projections());
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(opened.value()->digest().value(), live_digest);
  std::uint64_t applied = 0;
  for (std::uint32_t p = 0; p < 4; ++p)
    applied += opened.value()->position(ledger::Partition{p}).value;
  EXPECT_EQ(applied, 500u) << "the copy holds the positions of what it holds";
}

TEST_F(Ledgerctl, TailAndCheckpointsPrintTheLatest) {
  init_and_demo(100);
  auto r = ctl({"tail", "-n", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 8);  // 2 per partition
  r = ctl({"checkpoints"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\xE2\x80\x94 sechex-ledger "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sechex-ledger/"), std::string::npos);
}

// Issue 16: an auditor gets one record with a proof and checks it with only the public key;
// a proof altered in any field, or checked against another key, is refused with exit 1.
TEST_F(Ledgerctl, ProveThenVerifyProofOfflineAndForgeriesExitOne) {
  init_and_demo(600);
  const auto proof_file = dir_.sub("proof.json");
  auto r = ctl({"prove", "--partition", "1", "--seq", "7", "-o", proof_file});
  ASSERT_EQ(r.code, 0) << r.err;
  // Offline: a directory with nothing but the verifier key file.
  TempDir auditor;
  const auto keys = auditor.sub("ledger.pub");
  std::filesystem::copy_file(DataDir{dir_.path()}.verifier_keys(), keys);
  auto offline = [&](const std::string& file) {
    return run({SECHEX_LEDGERCTL, "--data-dir", auditor.sub("none"), "verify-proof", file,
                "--trusted-keys", keys},
               {"SECHEX_KEK="});
  };
  r = offline(proof_file);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("verified: record (1, 7) is in the tree of"), std::string::npos) << r.out;
  const auto proof = nlohmann::json::parse(slurp(proof_file));
  auto write = [&](const nlohmann::json& j) {
    const auto f = auditor.sub("forged.json");
    std::ofstream(f, std::ios::trunc) << j.dump();
    return f;
  };
  auto forged = proof;
  forged["seq"] = 8;
  r = offline(write(forged));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("INVALID: record_mismatch"), std::string::npos) << r.out;
  forged = proof;
  auto& first = forged["proof"][0];
  first = std::string(first.get<std::string>()[0] == '0' ? "1" : "0") +
          first.get<std::string>().substr(1);
  r = offline(write(forged));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("INVALID: proof_invalid"), std::string::npos) << r.out;
  forged = proof;
  forged["checkpoint"] = std::string(forged["checkpoint"]).replace(0, 1, "X");
  r = offline(write(forged));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("INVALID: checkpoint_bad_signature"), std::string::npos) << r.out;
  // The API's envelope is accepted as is.
  r = offline(write(nlohmann::json{{"data", proof}, {"error", nullptr}}));
  EXPECT_EQ(r.code, 0) << r.out;
  // Another key: the checkpoint is not trusted.
  const auto other = auditor.sub("other.pub");
  std::ofstream(other) << testing::make_signer("other").verifier_key() << "\n";
  r = run({SECHEX_LEDGERCTL, "verify-proof", proof_file, "--trusted-keys", other}, {"SECHEX_KEK="});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("checkpoint_unknown_key"), std::string::npos) << r.out;
  // Not a proof, or no file: exit 2 with a message.
  EXPECT_EQ(offline(write(nlohmann::json{{"hello", 1}})).code, 2);
  EXPECT_EQ(offline(auditor.sub("missing.json")).code, 2);
  // A consistency proof between the first and the latest checkpoint of the partition.
  ledger::LogOptions o;
  o.path = DataDir{dir_.path()}.log_path();
  o.mode = ledger::LogOptions::Mode::read_only;
  std::uint64_t latest = 0;
  {
    auto log = ledger::LogStore::open(o).value();
    latest =
        ledger::parse_checkpoint_body(*log->latest_checkpoint(ledger::Partition{1}).value())->size;
  }
  r = ctl({"prove", "--partition", "1", "--from", std::to_string(latest), "--to",
           std::to_string(latest), "-o", dir_.sub("c.json")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(offline(dir_.sub("c.json")).code, 0);
  r = ctl({"prove", "--partition", "1", "--from", "3", "--to", std::to_string(latest)});
  EXPECT_EQ(r.code, 2) << "no signed checkpoint at size 3";
  EXPECT_NE(r.err.find("no signed checkpoint"), std::string::npos) << r.err;
  r = ctl({"prove", "--partition", "1", "--seq", "100000"});
  EXPECT_EQ(r.code, 2);
}

// Issue 16 retention by hand: a dry run changes nothing; a run prunes the events older than the
// window (demo spreads its events over 100 days), verify stays green and names the cut, and
// export, replay and proofs below the cut say "pruned" instead of leaving gaps.
TEST_F(Ledgerctl, RetentionRunPrunesOldPayloadsAndVerifyStaysGreen) {
  init_and_demo(2000);
  const auto before = ctl({"export", "--format", "jsonl"});
  ASSERT_EQ(before.code, 0);
  const auto all = std::count(before.out.begin(), before.out.end(), '\n');
  auto r = ctl({"retention", "run", "--days", "90", "--dry-run"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("would be pruned; nothing changed"), std::string::npos) << r.out;
  EXPECT_EQ(ctl({"export", "--format", "jsonl"}).out, before.out);

  r = ctl({"retention", "run", "--days", "90"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("chained steps"), std::string::npos) << r.out;
  r = ctl({"verify"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("pruned below seq"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verified: "), std::string::npos);

  r = ctl({"export", "--format", "jsonl"});
  ASSERT_EQ(r.code, 0) << r.err;
  testing::expect_export_after_retention(r.out, r.err, all, 90);
  EXPECT_NE(r.out.find("RetentionApplied"), std::string::npos);

  r = ctl({"replay", "--at", format_rfc3339(SystemClock::instance().now_micros())});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("cannot replay: retention removed"), std::string::npos) << r.err;
  r = ctl({"prove", "--partition", "0", "--seq", "0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("removed by retention"), std::string::npos) << r.err;
  // Running again finds nothing more to prune.
  r = ctl({"retention", "run", "--days", "90"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("pruned 0 records"), std::string::npos) << r.out;
  EXPECT_EQ(ctl({"verify"}).code, 0);
  EXPECT_EQ(ctl({"retention", "run", "--days", "0"}).code, 2);
  EXPECT_EQ(ctl({"retention", "go"}).code, 2);
}

// Issue 16 archives: written beside a data directory, verified on a "machine" with only the
// public key; after the ledger is pruned the archive still verifies, and its checkpoint is
// consistent with the pruned ledger's later checkpoint. Tampering with the file exits 1.
TEST_F(Ledgerctl, ArchiveVerifiesOfflineBeforeAndAfterPruningAndTamperingExitsOne) {
  init_and_demo(1200);
  const auto now = SystemClock::instance().now_micros();
  const auto archive = dir_.sub("old.jsonl");
  auto r = ctl({"archive", "--from", format_rfc3339(now - 120LL * 86'400'000'000), "--to",
                format_rfc3339(now - 80LL * 86'400'000'000), "--partition", "2", "-o", archive});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("archived "), std::string::npos) << r.err;
  TempDir auditor;
  const auto key = auditor.sub("ledger.pub");
  std::filesystem::copy_file(DataDir{dir_.path()}.verifier_keys(), key);
  auto offline = [&](const std::string& file) {
    return run({SECHEX_LEDGERCTL, "--data-dir", auditor.sub("none"), "verify", "--archive", file,
                "--trusted-key", key},
               {"SECHEX_KEK="});
  };
  r = offline(archive);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("verified archive: "), std::string::npos) << r.out;
  const auto text = slurp(archive);
  EXPECT_EQ(text.find("\"email\""), std::string::npos) << "sealed fields stay sealed";

  // Prune (ledgerd stopped), with an archive of what goes written first.
  r = ctl({"retention", "run", "--days", "90", "--archive-dir", dir_.sub("retained")});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("archived what goes to "), std::string::npos) << r.out;
  EXPECT_EQ(offline(archive).code, 0) << "the archive outlives the payloads it holds";
  for (const auto& f : std::filesystem::directory_iterator(dir_.sub("retained"))) {
    EXPECT_EQ(offline(f.path().string()).code, 0) << f.path();
  }
  // The archive's checkpoint and the pruned ledger's latest one are consistent.
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);
  std::getline(lines, line);
  const auto section = nlohmann::json::parse(line);
  const auto archived_size = section["proof"]["treeSize"].get<std::uint64_t>();
  ledger::LogOptions o;
  o.path = DataDir{dir_.path()}.log_path();
  o.mode = ledger::LogOptions::Mode::read_only;
  std::uint64_t latest = 0;
  {
    auto log = ledger::LogStore::open(o).value();
    latest =
        ledger::parse_checkpoint_body(*log->latest_checkpoint(ledger::Partition{2}).value())->size;
    EXPECT_GT(log->retention_cut(ledger::Partition{2}).below.value, 0u);
  }
  r = ctl({"prove", "--partition", "2", "--from", std::to_string(archived_size), "--to",
           std::to_string(latest), "-o", dir_.sub("c.json")});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto consistency = nlohmann::json::parse(slurp(dir_.sub("c.json")));
  EXPECT_EQ(consistency["fromCheckpoint"], section["checkpoint"]);
  EXPECT_EQ(run({SECHEX_LEDGERCTL, "verify-proof", dir_.sub("c.json"), "--trusted-keys", key},
                {"SECHEX_KEK="})
                .code,
            0);

  // Tampering: one record's byte, a dropped record line, another key; not an archive at all.
  auto tampered = [&](std::string t) {
    const auto f = auditor.sub("t.jsonl");
    std::ofstream(f, std::ios::trunc) << t;
    return offline(f);
  };
  std::vector<std::string> all;
  std::istringstream again(text);
  for (std::string l; std::getline(again, l);) all.push_back(l);
  ASSERT_GT(all.size(), 5u);
  auto join = [](const std::vector<std::string>& ls) {
    std::string out;
    for (const auto& l : ls) out += l + "\n";
    return out;
  };
  auto altered = all;
  auto rec = nlohmann::json::parse(altered[4]);
  ledger::Bytes bytes;
  ASSERT_TRUE(ledger::crypto::base64_decode(rec["record"].get<std::string>(), bytes));
  bytes[bytes.size() - 3] ^= 0x01;
  rec["record"] = ledger::crypto::base64_encode(bytes);
  altered[4] = rec.dump();
  r = tampered(join(altered));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("TAMPERED: partition 2"), std::string::npos) << r.out;
  auto dropped = all;
  dropped.erase(dropped.begin() + 3);
  EXPECT_EQ(tampered(join(dropped)).code, 1);
  auto cut_short = all;
  cut_short.pop_back();
  EXPECT_EQ(tampered(join(cut_short)).code, 1);
  const auto other = auditor.sub("other.pub");
  std::ofstream(other) << testing::make_signer("other").verifier_key() << "\n";
  r = run({SECHEX_LEDGERCTL, "verify", "--archive", archive, "--trusted-key", other},
          {"SECHEX_KEK="});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("checkpoint_unknown_key"), std::string::npos) << r.out;
  EXPECT_EQ(tampered("hello\n").code, 2);
  EXPECT_EQ(offline(auditor.sub("missing")).code, 2);
  // Bad arguments.
  EXPECT_EQ(ctl({"archive", "--from", "yesterday", "-o", dir_.sub("x")}).code, 2);
  EXPECT_EQ(ctl({"archive", "--partition", "2"}).code, 2);
}

// "Who had access when": `ledgerctl replay --at T` shows the sessions valid, users locked and
// roles held at T, from the log alone, while a writer holds the store.
class LedgerctlReplay : public Ledgerctl {
 protected:
  static constexpr std::int64_t kHour = 3'600'000'000;
  const std::int64_t t0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
  template <typename F>
  void emit(const std::string& subject, std::int64_t at, F&& body) {
    ledger::EventBuilder b(nullptr, {subject, subject, "r", at, {}, {}});
    auto& f = b.fbb();
    const auto bytes = b.finish(body(f)).value();
    const ledger::ByteView v(bytes);
    ASSERT_TRUE(writer_->append(ledger::partition_for(subject, writer_->partition_count()),
                                std::span<const ledger::ByteView>(&v, 1)));
  }
  void write_history() {
    auto r = ctl({"init", "--partitions", "4"});
    ASSERT_EQ(r.code, 0) << r.err;
    const DataDir dd{dir_.path()};
    signer_ = std::make_unique<ledger::CheckpointSigner>(
        ledger::CheckpointSigner::load(dd.signing_key(), "sechex-ledger").value());
    ledger::LogOptions o;
    o.path = dd.log_path();
    o.signer = signer_.get();
    writer_ = ledger::LogStore::open(o).value();
    auto reg = [](flatbuffers::FlatBufferBuilder& f) {
      return schema::CreateUserRegistered(f, 0, f.CreateVector(std::vector<std::uint8_t>{1}), 0,
                                          f.CreateString("v1"));
    };
    auto role = [](const char* name, bool granted) {
      return [=](flatbuffers::FlatBufferBuilder& f) {
        return schema::CreateRoleGranted(f, f.CreateString(name), granted);
      };
    };
    auto start = [](const char* sid) {
      return [=](flatbuffers::FlatBufferBuilder& f) {
        return schema::CreateSessionStarted(f, f.CreateString(sid), f.CreateString("fam"));
      };
    };
    emit("alice", t0, reg);
    emit("bob", t0, reg);
    emit("alice", t0 + 1 * kHour, role("admin", true));
    emit("bob", t0 + 1 * kHour, role("premium", true));
    emit("alice", t0 + 2 * kHour, start("s-alice"));
    emit("bob", t0 + 2 * kHour, start("s-bob"));
    emit("alice", t0 + 3 * kHour, [&](flatbuffers::FlatBufferBuilder& f) {
      return schema::CreateAccountLocked(f, f.CreateString("5 failures"),
                                         t0 + 3 * kHour + 1'800'000'000);
    });
    emit("alice", t0 + 5 * kHour, [](flatbuffers::FlatBufferBuilder& f) {
      return schema::CreateSessionRevoked(f, f.CreateString("s-alice"), f.CreateString("admin"));
    });
    emit("alice", t0 + 6 * kHour, role("admin", false));
    emit("alice", t0 + 10 * kHour, [](flatbuffers::FlatBufferBuilder& f) {
      return schema::CreateCheckIn(f, f.CreateString("s"));
    });
    // Decided after the 10 h record although its clock says 4 h (a clock step back).
    emit("alice", t0 + 4 * kHour, role("auditor", true));
  }
  nlohmann::json replay(std::int64_t at, const std::string& subject = "") {
    std::vector<std::string> args{"replay", "--at", format_rfc3339(at)};
    if (!subject.empty()) args.insert(args.end(), {"--subject", subject});
    const auto r = ctl(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json();
  }
  static std::vector<std::string> session_ids(const nlohmann::json& j) {
    std::vector<std::string> out;
    for (const auto& s : j["sessions"]) out.push_back(s["session_id"]);
    return out;
  }
  std::unique_ptr<ledger::CheckpointSigner> signer_;
  std::unique_ptr<ledger::LogStore> writer_;
};

TEST_F(LedgerctlReplay, ShowsSessionsLocksAndRolesAsTheyWereAtTheInstant) {
  write_history();
  // 02:30: both sessions valid, nobody locked, alice is an admin.
  auto j = replay(t0 + 5 * kHour / 2);
  EXPECT_EQ(session_ids(j), (std::vector<std::string>{"s-alice", "s-bob"}));
  EXPECT_TRUE(j["locked"].empty());
  ASSERT_EQ(j["roles"].size(), 2u);
  EXPECT_EQ(j["roles"][0]["user"], "alice");
  EXPECT_EQ(j["roles"][0]["roles"], nlohmann::json::array({"admin"}));
  // 03:10: alice is locked (until 03:30), her session still valid.
  j = replay(t0 + 3 * kHour + 600'000'000, "alice");
  ASSERT_EQ(j["locked"].size(), 1u);
  EXPECT_EQ(j["locked"][0]["user"], "alice");
  EXPECT_EQ(j["locked"][0]["needs_admin_unlock"], false);
  ASSERT_TRUE(j["locked"][0]["locked_until"].is_string()) << j;
  EXPECT_EQ(parse_rfc3339(j["locked"][0]["locked_until"].get<std::string>()), t0 + 7 * kHour / 2)
      << "the timed lock ends at 03:30";
  EXPECT_EQ(session_ids(j), (std::vector<std::string>{"s-alice"}));
  EXPECT_EQ(j["subject"], "alice");
  // 05:30: the timed lock is over and the session revoked; the role is still held.
  j = replay(t0 + 11 * kHour / 2, "alice");
  EXPECT_TRUE(j["locked"].empty());
  EXPECT_TRUE(j["sessions"].empty());
  EXPECT_EQ(j["roles"][0]["roles"], nlohmann::json::array({"admin"}));
  // 07:00: admin revoked. The "auditor" grant stamped 04:00 was decided after the 10:00
  // record, so it is not part of the state at 07:00; by 11:00 it is.
  j = replay(t0 + 7 * kHour, "alice");
  EXPECT_EQ(j["roles"][0]["roles"], nlohmann::json::array());
  j = replay(t0 + 11 * kHour, "alice");
  EXPECT_EQ(j["roles"][0]["roles"], nlohmann::json::array({"auditor"}));
  // Before anything happened: nothing at all.
  j = replay(t0 - 1);
  EXPECT_EQ(j["records_applied"], 0);
  EXPECT_TRUE(j["sessions"].empty());
  EXPECT_TRUE(j["roles"].empty());
}

TEST_F(LedgerctlReplay, SubjectFilterShowsOnlyThatSubject) {
  write_history();
  const auto j = replay(t0 + 5 * kHour / 2, "bob");
  EXPECT_EQ(session_ids(j), (std::vector<std::string>{"s-bob"}));
  ASSERT_EQ(j["roles"].size(), 1u);
  EXPECT_EQ(j["roles"][0]["user"], "bob");
  EXPECT_EQ(j["roles"][0]["roles"], nlohmann::json::array({"premium"}));
}

TEST_F(LedgerctlReplay, BadOrMissingTimeExitsTwoAndNoScratchIsLeft) {
  write_history();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"replay"}, {"replay", "--at", "yesterday"}}) {
    const auto r = ctl(args);
    EXPECT_EQ(r.code, 2) << args.size();
    EXPECT_NE(r.err.find("ledgerctl: "), std::string::npos) << r.err;
  }
  const auto scratch = dir_.sub("scratch");
  std::filesystem::create_directories(scratch);
  const auto r = ctl({"replay", "--at", format_rfc3339(t0 + kHour), "--scratch-dir", scratch});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(scratch)) << "the rebuilt projections are removed";
}

}  // namespace
}  // namespace sechex::ops
