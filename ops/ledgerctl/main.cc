// ledgerctl: offline verification, export and maintenance of a Sechex ledger.
//
// Exit codes (every command): 0 success; 1 verification found tampering or inconsistency;
// 2 the command could not run (bad flags, missing or wrong keys, missing or locked store,
// data written by a newer version). Read-only commands open the store as a RocksDB secondary
// instance and work while ledgerd is running on the same data directory.
//
// With --log kafka the log is a Kafka topic (kafka_log.h) and the data keys live in its
// <topic>.keys topic (kafka_keys.h); the KEK and the checkpoint keys still come from the data
// directory. Readers are read-only KafkaLogs, which never create producers and so never fence
// a running ledgerd; `demo` writes as the partitions' transactional writer and does fence it.
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "api/crypto/jose.h"
#include "api/crypto/token_settings.h"
#include "compliance.h"
#include "demo.h"
#include "device.h"
#include "ledger/data_dir.h"
#include "ledger/export.h"
#include "ledger/kafka_keys.h"
#include "ledger/kafka_log.h"
#include "ledger/time_format.h"
#include "ledger/utf8.h"
#include "ledger/verify.h"
#include "projections/store.h"
#include "replay.h"
#include "schemas/events.h"

namespace po = boost::program_options;
using namespace sechex;
using namespace sechex::ledger;

namespace {

constexpr int kOk = 0;
constexpr int kTampered = 1;
constexpr int kCannotRun = 2;

struct Common {
  DataDir dir;
  std::string log_kind = "embedded";  // or "kafka"
  std::string kafka_brokers;
  std::string topic = "ledger.events";
  std::optional<std::string> transactional_id_prefix;  // else default_transactional_id_prefix
  std::vector<std::string> kafka_config;               // KEY=VALUE librdkafka settings
  std::string kek_file;
  std::string trusted_keys;
  std::string signing_key;
  std::string key_name = kDefaultKeyName;
};

// Thrown only inside main's command dispatch to end a command with a message and exit code.
struct Exit {
  int code;
  std::string message;
};

[[noreturn]] void fail(const std::string& what, std::error_code ec = {}) {
  throw Exit{kCannotRun, ec ? what + ": " + ec.message() : what};
}

std::string describe_open_error(std::error_code ec, const DataDir& dir) {
  if (ec == Errc::store_missing) {
    return "no ledger at " + dir.log_path() + " (run `ledgerctl init --data-dir " + dir.root +
           "` or start ledgerd first)";
  }
  if (ec == Errc::store_locked) {
    return "the ledger at " + dir.log_path() +
           " is open for writing by another process (stop ledgerd to run this command)";
  }
  if (ec == Errc::unsupported_version) {
    return "the ledger at " + dir.log_path() + " was written by a newer version; upgrade ledgerctl";
  }
  return "cannot open the ledger at " + dir.log_path() + ": " + ec.message();
}

std::unique_ptr<LogStore> open_read_only(const Common& c) {
  LogOptions o;
  o.path = c.dir.log_path();
  o.mode = LogOptions::Mode::read_only;
  auto store = LogStore::open(o);
  if (!store) fail(describe_open_error(store.error(), c.dir));
  return std::move(store).value();
}

bool kafka_mode(const Common& c) { return c.log_kind == "kafka"; }

KafkaLogOptions kafka_options(const Common& c) {
  KafkaLogOptions o;
  o.brokers = c.kafka_brokers;
  o.topic = c.topic;
  for (const auto& kv : c.kafka_config) {
    auto setting = parse_kafka_setting(kv);
    if (!setting) fail("--kafka-config wants KEY=VALUE, not " + kv);
    o.client_config.push_back(std::move(*setting));
  }
  return o;
}

std::unique_ptr<KafkaLog> open_kafka_read_only(const Common& c) {
  auto o = kafka_options(c);
  o.read_only = true;
  o.create_if_missing = false;
  auto log = KafkaLog::open(o);
  if (!log) {
    fail(log.error() == Errc::store_missing
             ? "no ledger in Kafka topic " + c.topic + " at " + c.kafka_brokers
             : "cannot open the Kafka log at " + c.kafka_brokers,
         log.error());
  }
  return std::move(log).value();
}

// The log of a read-only command: the embedded store as a secondary instance or a read-only
// Kafka log; both work beside a running ledgerd.
std::unique_ptr<Log> open_log_read_only(const Common& c) {
  if (kafka_mode(c)) return open_kafka_read_only(c);
  return open_read_only(c);
}

// Ends the command for a failed read of `log`, with Kafka's own words when it has them.
[[noreturn]] void fail_read(const Log& log, const std::string& what, std::error_code ec) {
  const auto* kafka = dynamic_cast<const KafkaLog*>(&log);
  const auto detail = kafka != nullptr ? kafka->last_error() : std::string();
  fail(detail.empty() ? what : what + " (kafka: " + detail + ")", ec);
}

Kek load_kek_or_fail(const Common& c) {
  auto kek = load_kek(c.dir, c.kek_file);
  if (kek) return std::move(kek).value();
  const auto path = c.kek_file.empty() ? c.dir.kek_file() : c.kek_file;
  if (kek.error() == Errc::key_missing) {
    fail("key-encryption key not found: set SECHEX_KEK or create " + path);
  }
  fail("key-encryption key in " + path +
       " is unusable (must be base64 of 32 bytes and readable only by its owner)");
}

// The data keys of `log` for a reader: the embedded store's own, or a read-only copy of the
// Kafka keys topic (which never writes, not even the KEK check of a ledger that has none yet).
std::unique_ptr<KeyStore> open_keys_or_fail(Log& log, const Common& c) {
  auto kek = load_kek_or_fail(c);
  auto* kafka = dynamic_cast<KafkaLog*>(&log);
  auto keys =
      kafka != nullptr
          ? KeyStore::open(std::make_unique<KafkaKeys>(*kafka, /*read_only=*/true), std::move(kek))
          : KeyStore::open(dynamic_cast<LogStore&>(log), std::move(kek));
  if (!keys && keys.error() == Errc::key_invalid) {
    fail("the key-encryption key does not match this ledger (wrong KEK file or SECHEX_KEK)");
  }
  if (!keys && kafka != nullptr) {
    fail_read(log, "cannot read the data keys in Kafka topic " + c.topic + ".keys", keys.error());
  }
  if (!keys) fail("cannot open the key store", keys.error());
  return std::move(keys).value();
}

std::unique_ptr<CheckpointSigner> load_signer_or_fail(const Common& c) {
  const auto key_path = c.signing_key.empty() ? c.dir.signing_key() : c.signing_key;
  auto signer = CheckpointSigner::load(key_path, c.key_name);
  if (!signer) {
    fail(signer.error() == Errc::key_missing
             ? "checkpoint signing key not found at " + key_path
             : "checkpoint signing key at " + key_path + " is not an Ed25519 PEM private key");
  }
  return std::make_unique<CheckpointSigner>(std::move(signer).value());
}

struct Writer {
  std::unique_ptr<CheckpointSigner> signer;
  std::unique_ptr<LogStore> log;
};

Writer open_read_write(const Common& c) {
  Writer w;
  w.signer = load_signer_or_fail(c);
  LogOptions o;
  o.path = c.dir.log_path();
  o.signer = w.signer.get();
  Fault fault;
  auto log = LogStore::open(o, &fault);
  if (!log && log.error() == Errc::chain_broken) {
    throw Exit{kTampered, "refusing to write: the chain is broken at partition " +
                              std::to_string(fault.position.partition.value) + " seq " +
                              std::to_string(fault.position.seq.value) + ": " + fault.reason +
                              " (" + fault.detail + ")"};
  }
  if (!log) fail(describe_open_error(log.error(), c.dir));
  w.log = std::move(log).value();
  return w;
}

struct KafkaWriter {
  std::unique_ptr<CheckpointSigner> signer;  // declared first: must outlive the log
  std::unique_ptr<KafkaLog> log;
};

// The Kafka log opened for writing, creating its topics (with `partitions` partitions) when
// missing. Opening creates no producer; each partition's first append does, and that fences
// whoever wrote the partition under the same transactional id before (a running ledgerd).
// With `partitions` 0 the topics must exist.
KafkaWriter open_kafka_writer(const Common& c, std::uint32_t partitions) {
  KafkaWriter w;
  w.signer = load_signer_or_fail(c);
  auto o = kafka_options(c);
  o.partitions = partitions;
  o.create_if_missing = partitions > 0;
  o.transactional_id_prefix =
      c.transactional_id_prefix.value_or(default_transactional_id_prefix(c.topic));
  o.signer = w.signer.get();
  auto log = KafkaLog::open(o);
  if (!log) fail("cannot open the Kafka log " + c.topic + " at " + c.kafka_brokers, log.error());
  w.log = std::move(log).value();
  return w;
}

std::optional<std::int64_t> parse_time_flag(const po::variables_map& vm, const char* name) {
  if (!vm.count(name)) return std::nullopt;
  const auto text = vm[name].as<std::string>();
  const auto t = parse_rfc3339(text);
  if (!t) fail(std::string("--") + name + ": '" + text + "' is not an RFC 3339 time");
  return t;
}

po::variables_map parse(const std::vector<std::string>& args, const po::options_description& d) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(d).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    fail(std::string(e.what()) + " (see --help)");
  }
  return vm;
}

int cmd_init(const Common& c, const std::vector<std::string>& args) {
  po::options_description d("ledgerctl init");
  d.add_options()("partitions", po::value<std::uint32_t>()->default_value(8),
                  "partitions for a new ledger (fixed once created)");
  const auto vm = parse(args, d);
  const auto parts = vm["partitions"].as<std::uint32_t>();
  if (parts == 0 || parts > 4096) fail("--partitions must be between 1 and 4096");
  std::string log;
  // A Kafka ledger's topics are created by whoever writes first (ledgerd, demo), not here.
  const auto r = init_data_dir(c.dir, parts, c.key_name, &log, /*embedded_log=*/!kafka_mode(c));
  std::cout << log;
  if (!r) {
    if (r.error() == Errc::store_locked) fail(describe_open_error(r.error(), c.dir));
    fail("init failed", r.error());
  }
  if (log.empty()) {
    std::cout << "data directory " << c.dir.root
              << (kafka_mode(c) ? " already has its keys\n" : " is already initialised\n");
  }
  return kOk;
}

int cmd_verify(const Common& c, const std::vector<std::string>& args) {
  po::options_description d("ledgerctl verify");
  d.add_options()("threads", po::value<unsigned>()->default_value(2), "verification threads")(
      "quiet,q", "print only the verdict")(
      "archive", po::value<std::string>(),
      "verify this archive file instead of a data directory (offline)")(
      "trusted-key", po::value<std::string>(), "with --archive: the verifier key file");
  const auto vm = parse(args, d);
  if (vm.count("archive")) {
    const auto keys = vm.count("trusted-key")   ? vm["trusted-key"].as<std::string>()
                      : !c.trusted_keys.empty() ? c.trusted_keys
                                                : c.dir.verifier_keys();
    return ops::verify_archive_file(vm["archive"].as<std::string>(), keys);
  }
  auto log = open_log_read_only(c);  // "no ledger here" is the more useful first complaint
  const auto keys_path = c.trusted_keys.empty() ? c.dir.verifier_keys() : c.trusted_keys;
  auto trusted = TrustedKeys::load_file(keys_path);
  if (!trusted) {
    fail(trusted.error() == Errc::key_missing
             ? "no trusted checkpoint keys in " + keys_path + " (pass --trusted-keys FILE)"
             : "trusted key file " + keys_path + " has a malformed line");
  }
  VerifyOptions vo;
  vo.trusted = &trusted.value();
  vo.threads = std::max(1u, vm["threads"].as<unsigned>());
  const auto t0 = std::chrono::steady_clock::now();
  // The embedded store gets the full storage-level checks; the Kafka log the interface walk.
  const auto* embedded = dynamic_cast<const LogStore*>(log.get());
  const auto report = embedded != nullptr ? verify_log(*embedded, vo) : verify_chain(*log, vo);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (report.outcome == VerifyReport::Outcome::verified) {
    if (!vm.count("quiet")) {
      for (const auto& p : report.partitions) {
        std::cout << "partition " << p.partition.value << ": " << p.records << " records, "
                  << p.checkpoints << " checkpoints, head " << to_hex(p.head);
        // Pruning is not tampering: say where it cut, apart from the verdict.
        if (p.cut.below.value > 0) {
          std::cout << ", pruned below seq " << p.cut.below.value << " (events before "
                    << format_rfc3339(p.cut.before_micros) << "; their hashes still checked)";
        }
        std::cout << "\n";
      }
    }
    std::printf("verified: %llu records, %llu signed checkpoints, %u partitions in %.3f s\n",
                static_cast<unsigned long long>(report.records),
                static_cast<unsigned long long>(report.checkpoints), log->partition_count(), secs);
    return kOk;
  }
  const auto& f = *report.fault;
  const bool tampered = report.outcome == VerifyReport::Outcome::tampered;
  std::cout << (tampered ? "TAMPERED" : "CANNOT VERIFY") << ": partition "
            << f.position.partition.value << " seq " << f.position.seq.value << ": " << f.reason
            << ": " << f.detail << "\n";
  return tampered ? kTampered : kCannotRun;
}

int cmd_export(const Common& c, const std::vector<std::string>& args) {
  po::options_description d("ledgerctl export");
  d.add_options()("format", po::value<std::string>()->default_value("jsonl"), "jsonl or csv")(
      "subject", po::value<std::string>(), "only this subject's events")(
      "from", po::value<std::string>(), "RFC 3339 time, inclusive")("to", po::value<std::string>(),
                                                                    "RFC 3339 time, exclusive")(
      "output,o", po::value<std::string>(), "write here instead of stdout");
  const auto vm = parse(args, d);
  const auto format = vm["format"].as<std::string>();
  if (format != "jsonl" && format != "csv") fail("--format must be jsonl or csv");
  const auto from = parse_time_flag(vm, "from").value_or(INT64_MIN);
  const auto to = parse_time_flag(vm, "to").value_or(INT64_MAX);
  if (from >= to) fail("--from must be before --to");
  auto log = open_log_read_only(c);
  auto keys = open_keys_or_fail(*log, c);

  std::ofstream file;
  std::ostream* out = &std::cout;
  std::string tmp_path;
  if (vm.count("output")) {
    // Written to a temporary name and renamed, so a failed export leaves no partial file.
    tmp_path = vm["output"].as<std::string>() + ".partial";
    file.open(tmp_path, std::ios::trunc);
    if (!file) fail("cannot write " + tmp_path);
    out = &file;
  }
  if (format == "csv") *out << csv_header() << "\n";
  std::uint32_t first = 0, last = log->partition_count();
  std::optional<std::string> subject;
  if (vm.count("subject")) {
    subject = vm["subject"].as<std::string>();
    first = partition_for(*subject, log->partition_count()).value;
    last = first + 1;
  }
  std::uint64_t count = 0;
  for (auto p = first; p < last; ++p) {
    // Records below a retention cut have no payload left: start at the cut and say so, so the
    // export has no silent gap.
    const auto cut = log->retention_cut(Partition{p});
    Seq next = cut.below;
    if (cut.below.value > 0)
      std::cerr << ops::describe_cut(Partition{p}, cut) << ": not exported\n";
    for (;;) {
      auto batch = log->read_range(Partition{p}, next, Seq{UINT64_MAX}, 4096);
      if (!batch) fail_read(*log, "cannot read partition " + std::to_string(p), batch.error());
      if (batch.value().empty()) break;
      next = Seq{batch.value().back().position.seq.value + 1};
      for (const auto& rec : batch.value()) {
        auto rendered = record_to_json(rec, keys.get());
        if (!rendered) {
          fail("cannot render partition " + std::to_string(p) + " seq " +
               std::to_string(rec.position.seq.value) +
               (rendered.error() == Errc::unsupported_version
                    ? ": written by a newer schema version; upgrade ledgerctl"
                    : ": not a valid event (run `ledgerctl verify`)"));
        }
        const auto& j = rendered.value();
        if (subject && j["subject"] != *subject) continue;
        const auto t = parse_rfc3339(j["time"].get<std::string>()).value_or(0);
        if (t < from || t >= to) continue;
        if (format == "jsonl") {
          *out << json_text(j) << "\n";
        } else {
          *out << json_to_csv_row(j) << "\n";
        }
        ++count;
      }
    }
  }
  out->flush();
  if (!*out) fail("write failed");
  if (!tmp_path.empty()) {
    file.close();
    const auto final_path = vm["output"].as<std::string>();
    if (std::rename(tmp_path.c_str(), final_path.c_str()) != 0)
      fail("cannot rename to " + final_path);
  }
  std::cerr << "exported " << count << " events\n";
  return kOk;
}

// [first, last) partitions selected by an optional --partition flag.
std::pair<std::uint32_t, std::uint32_t> partition_range(const po::variables_map& vm,
                                                        const Log& log) {
  if (!vm.count("partition")) return {0, log.partition_count()};
  const auto p = vm["partition"].as<std::uint32_t>();
  if (p >= log.partition_count()) {
    fail("--partition must be below " + std::to_string(log.partition_count()));
  }
  return {p, p + 1};
}

void print_summary(const Record& r) {
  const bool ok =
      schemas::check_envelope(r.event.data(), r.event.size()) == schemas::CheckResult::ok;
  const auto* env = ok ? schemas::envelope_of(r.event.data()) : nullptr;
  std::cout << r.position.partition.value << "/" << r.position.seq.value << " "
            << (ok ? format_rfc3339(env->time_micros()) : "-") << " "
            << (ok ? schemas::event_type_name(env->event_type()) : "(undecodable)") << " "
            << (ok ? env->subject()->str() : "-") << " " << to_hex(r.hash).substr(0, 16) << "\n";
}

// Log::head cannot fail (a Kafka log reports an unreadable tail as an empty partition), so the
// Kafka tail is read with recover_head to tell "empty" from "unreachable".
Head head_or_fail(const Log& log, Partition p) {
  const auto* kafka = dynamic_cast<const KafkaLog*>(&log);
  if (kafka == nullptr) return log.head(p);
  auto h = kafka->recover_head(p);
  if (!h) fail_read(log, "cannot read the tail of partition " + std::to_string(p.value), h.error());
  return h.value();
}

int cmd_tail(const Common& c, const std::vector<std::string>& args) {
  po::options_description d("ledgerctl tail");
  d.add_options()("partition,p", po::value<std::uint32_t>(), "only this partition")(
      "lines,n", po::value<std::uint64_t>()->default_value(10), "records per partition")(
      "follow,f", "keep printing new records until interrupted");
  const auto vm = parse(args, d);
  auto log = open_log_read_only(c);
  const auto [first, last] = partition_range(vm, *log);
  const auto n = vm["lines"].as<std::uint64_t>();
  std::vector<Seq> next(log->partition_count());
  for (auto p = first; p < last; ++p) {
    const auto h = head_or_fail(*log, Partition{p});
    const Seq from{h.next.value > n ? h.next.value - n : 0};
    auto recs = log->read_range(Partition{p}, from, h.next);
    if (!recs) fail_read(*log, "cannot read", recs.error());
    for (const auto& r : recs.value()) print_summary(r);
    next[p] = h.next;
  }
  std::cout.flush();
  while (vm.count("follow")) {
    for (auto p = first; p < last; ++p) {
      auto recs = log->wait_for(Partition{p}, next[p],
                                std::chrono::milliseconds(last - first == 1 ? 1000 : 50));
      if (!recs) fail_read(*log, "cannot read", recs.error());
      for (const auto& r : recs.value()) {
        print_summary(r);
        next[p] = Seq{r.position.seq.value + 1};
      }
    }
    std::cout.flush();
  }
  return kOk;
}

int cmd_checkpoints(const Common& c, const std::vector<std::string>& args) {
  po::options_description d("ledgerctl checkpoints");
  d.add_options()("partition,p", po::value<std::uint32_t>(), "only this partition")(
      "all", "every checkpoint, not only the latest");
  const auto vm = parse(args, d);
  auto log = open_log_read_only(c);
  const auto [first, last] = partition_range(vm, *log);
  const auto* embedded = dynamic_cast<const LogStore*>(log.get());
  const auto* kafka = dynamic_cast<const KafkaLog*>(log.get());
  for (auto p = first; p < last; ++p) {
    if (vm.count("all")) {
      auto notes = embedded != nullptr ? embedded->checkpoints(Partition{p})
                                       : kafka->checkpoints(Partition{p});
      if (!notes) fail("cannot read checkpoints", notes.error());
      for (const auto& n : notes.value()) std::cout << n << "\n";
      continue;
    }
    auto note = log->latest_checkpoint(Partition{p});
    if (!note) fail_read(*log, "cannot read checkpoints", note.error());
    if (note.value()) std::cout << *note.value() << "\n";
  }
  return kOk;
}

// `demo --log kafka`: like ledgerd in Kafka mode, creates the data directory's missing keys (but
// no embedded ledger) and the topics, then appends as each partition's writer.
int demo_kafka(const Common& c, const po::variables_map& vm, const ops::DemoOptions& o) {
  const auto parts = vm.count("partitions") ? vm["partitions"].as<std::uint32_t>() : 8u;
  if (parts == 0 || parts > 4096) fail("--partitions must be between 1 and 4096");
  // Keys named on the command line are the operator's to manage: create only the defaults.
  if (c.signing_key.empty() && c.kek_file.empty()) {
    std::string created;
    const auto r = init_data_dir(c.dir, parts, c.key_name, &created, /*embedded_log=*/false);
    std::cerr << created;
    if (!r) fail("cannot create the keys in " + c.dir.keys_dir(), r.error());
  }
  auto kek = load_kek_or_fail(c);  // before any append: bad keys write nothing
  auto w = open_kafka_writer(c, parts);
  auto keys = KeyStore::open(std::make_unique<KafkaKeys>(*w.log), std::move(kek));
  if (!keys && keys.error() == Errc::key_invalid) {
    fail("the key-encryption key does not match this ledger (wrong KEK file or SECHEX_KEK)");
  }
  if (!keys) fail_read(*w.log, "cannot open the data keys in Kafka", keys.error());
  const auto t0 = std::chrono::steady_clock::now();
  auto n = ops::run_demo(*w.log, *keys.value(), o, std::cerr);
  if (!n) {
    fail_read(*w.log,
              n.error() == Errc::writer_failed
                  ? "demo stopped: another writer (a running ledgerd?) took over a partition"
                  : "demo failed",
              n.error());
  }
  auto cps = w.log->checkpoint_due(/*force=*/true);
  if (!cps) fail_read(*w.log, "checkpointing failed", cps.error());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %llu events to Kafka topic %s (%u partitions) in %.2f s (%.0f events/s)\n",
              static_cast<unsigned long long>(n.value()), c.topic.c_str(), w.log->partition_count(),
              secs, n.value() / secs);
  return kOk;
}

int cmd_demo(const Common& c, const std::vector<std::string>& args) {
  po::options_description d("ledgerctl demo");
  d.add_options()("events", po::value<std::uint64_t>()->default_value(1000), "events to write")(
      "subjects", po::value<std::uint32_t>()->default_value(0), "distinct subjects (0 = auto)")(
      "batch", po::value<std::uint32_t>()->default_value(256), "events per append")(
      "seed", po::value<std::uint64_t>()->default_value(0), "random seed (0 = random)")(
      "partitions", po::value<std::uint32_t>(),
      "--log kafka: partitions of the topic if demo creates it (default 8)");
  const auto vm = parse(args, d);
  ops::DemoOptions o;
  o.events = vm["events"].as<std::uint64_t>();
  o.subjects = vm["subjects"].as<std::uint32_t>();
  o.batch = vm["batch"].as<std::uint32_t>();
  o.seed = vm["seed"].as<std::uint64_t>();
  if (o.batch == 0) fail("--batch must be at least 1");
  if (kafka_mode(c)) return demo_kafka(c, vm, o);
  if (vm.count("partitions")) {
    fail(
        "--partitions is for --log kafka (an embedded ledger has the partitions given to "
        "`ledgerctl init --partitions`)");
  }
  auto kek = load_kek_or_fail(c);  // before opening for writing: bad keys write nothing
  auto w = open_read_write(c);
  auto keys = KeyStore::open(*w.log, std::move(kek));
  if (!keys) fail("the key-encryption key does not match this ledger", keys.error());
  const auto t0 = std::chrono::steady_clock::now();
  auto n = ops::run_demo(*w.log, *keys.value(), o, std::cerr);
  if (!n) fail("demo failed", n.error());
  auto cps = w.log->checkpoint_due(/*force=*/true);
  if (!cps) fail("checkpointing failed", cps.error());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %llu events in %.2f s (%.0f events/s)\n",
              static_cast<unsigned long long>(n.value()), secs, n.value() / secs);
  return kOk;
}

int cmd_erase(const Common& c, const std::vector<std::string>& args) {
  po::options_description d("ledgerctl erase");
  d.add_options()("subject", po::value<std::string>()->required(), "subject to crypto-shred")(
      "reason", po::value<std::string>()->default_value("gdpr_erasure"), "recorded reason")(
      "actor", po::value<std::string>()->default_value("ledgerctl"), "who asked");
  const auto vm = parse(args, d);
  auto kek = load_kek_or_fail(c);
  auto w = open_read_write(c);
  auto keys = KeyStore::open(*w.log, std::move(kek));
  if (!keys) fail("the key-encryption key does not match this ledger", keys.error());
  const auto subject = vm["subject"].as<std::string>();
  auto r =
      keys.value()->erase(subject, vm["actor"].as<std::string>(), vm["reason"].as<std::string>(),
                          SystemClock::instance().now_micros());
  if (!r) fail("erasure failed", r.error());
  std::cout << "erased " << subject << ": SubjectErased at seq " << r.value().first.value << "\n";
  return kOk;
}

int cmd_rebuild_projections(const Common& c, const std::vector<std::string>& args) {
  po::options_description d("ledgerctl rebuild-projections");
  const auto vm = parse(args, d);
  (void)vm;
  namespace fs = std::filesystem;
  const auto live = c.dir.projections_path();
  const auto fresh = live + ".rebuild";
  auto log = open_read_only(c);
  {
    // Holding the live store's lock proves no ledgerd is using it while we swap it out.
    auto current = projections::ProjectionStore::open(live, log->partition_count(),
                                                      projections::default_projections());
    if (!current && current.error() == Errc::store_locked) {
      fail("the projections at " + live + " are in use (stop ledgerd first)");
    }
    std::error_code ec;
    fs::remove_all(fresh, ec);
    auto rebuilt = projections::ProjectionStore::open(fresh, log->partition_count(),
                                                      projections::default_projections());
    if (!rebuilt) fail("cannot create " + fresh, rebuilt.error());
    const auto t0 = std::chrono::steady_clock::now();
    auto n = rebuilt.value()->catch_up(*log, 4096);
    if (!n && n.error() == Errc::pruned) {
      fail(
          "cannot rebuild: retention removed the oldest payloads the rebuild would need; the "
          "live projections (derived before the cut) stay as they are");
    }
    if (!n) fail("rebuild failed", n.error());
    auto digest = rebuilt.value()->digest();
    if (!digest) fail("cannot digest the rebuilt projections", digest.error());
    std::printf("rebuilt projections from %llu records in %.2f s; digest %s\n",
                static_cast<unsigned long long>(n.value()),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                digest.value().c_str());
  }
  // Swap: the old state is removed only once the new one is complete on disk.
  std::error_code ec;
  const auto old = live + ".old";
  fs::remove_all(old, ec);
  if (fs::exists(live)) fs::rename(live, old, ec);
  if (ec) fail("cannot move " + live + " aside: " + ec.message());
  fs::rename(fresh, live, ec);
  if (ec) fail("cannot move the rebuilt projections into place: " + ec.message());
  fs::remove_all(old, ec);
  return kOk;
}

// A copy of this node's projections another node is seeded with (README "Retention and proofs
// on Kafka"): made from the store's latest write while ledgerd runs (ProjectionStore::copy).
int cmd_projections(const Common& c, const std::vector<std::string>& args) {
  if (args.empty() || args.front() != "snapshot") {
    fail("usage: ledgerctl projections snapshot --to DIR");
  }
  po::options_description d("ledgerctl projections snapshot");
  std::string to;
  d.add_options()("to", po::value<std::string>(&to)->required(),
                  "where to write the copy (must not exist)");
  const auto vm = parse(std::vector<std::string>(args.begin() + 1, args.end()), d);
  (void)vm;
  const auto live = c.dir.projections_path();
  if (!std::filesystem::exists(live)) fail("no projections at " + live);
  if (std::filesystem::exists(to)) fail(to + " exists: give a new directory");
  const auto t0 = std::chrono::steady_clock::now();
  auto copied = projections::ProjectionStore::copy(live, to, to + ".scratch");
  if (!copied) fail("cannot copy the projections at " + live, copied.error());
  std::printf("copied %llu entries of %s into %s in %.2f s; positions:",
              static_cast<unsigned long long>(copied.value().entries), live.c_str(), to.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  for (const auto& [partition, next] : copied.value().positions) {
    std::printf(" %u=%llu", partition, static_cast<unsigned long long>(next));
  }
  std::printf("\nseed a node with it: stop it, then replace its <data-dir>/projections with %s\n",
              to.c_str());
  return kOk;
}

// ledgerd and ledgerctl must agree on the token settings; ledgerd reads the same
// SECHEX_TOKEN_ISSUER / SECHEX_TOKEN_AUDIENCE variables.
api::TokenSettings token_settings(const po::variables_map& vm) {
  api::TokenSettings t;
  if (const char* v = std::getenv("SECHEX_TOKEN_ISSUER"); v != nullptr && *v != '\0') t.issuer = v;
  if (const char* v = std::getenv("SECHEX_TOKEN_AUDIENCE"); v != nullptr && *v != '\0') {
    t.audience = v;
  }
  if (vm.count("issuer")) t.issuer = vm["issuer"].as<std::string>();
  if (vm.count("audience")) t.audience = vm["audience"].as<std::string>();
  return t;
}

std::unique_ptr<api::jose::KeyRing> open_key_ring(const Common& c, const api::TokenSettings& t) {
  auto ring = api::jose::KeyRing::load_or_create(api::jwt_keys_dir(c.dir.root),
                                                 SystemClock::instance(), t.ring_options());
  if (!ring) fail("token signing keys in " + api::jwt_keys_dir(c.dir.root), ring.error());
  return std::move(ring).value();
}

int cmd_keys(const Common& c, const std::vector<std::string>& args) {
  po::options_description d("ledgerctl keys rotate");
  d.add_options()("kind", po::value<std::string>(), "checkpoint or jwt")(
      "immediately", "jwt: drop the previous keys at once (key compromise)")(
      "issuer", po::value<std::string>(), "token issuer")("audience", po::value<std::string>(),
                                                          "token audience");
  if (args.empty() || args[0] != "rotate")
    fail("usage: ledgerctl keys rotate --kind checkpoint|jwt");
  const auto vm = parse({args.begin() + 1, args.end()}, d);
  const auto kind = vm.count("kind") ? vm["kind"].as<std::string>() : "";
  if (kind == "checkpoint") {
    auto r = rotate_signing_key(c.dir, c.key_name);
    if (!r) fail("rotation failed", r.error());
    std::cout << "new checkpoint key: " << r.value() << "\n";
    return kOk;
  }
  if (kind != "jwt") fail("usage: ledgerctl keys rotate --kind checkpoint|jwt");
  auto ring = open_key_ring(c, token_settings(vm));
  const auto previous = ring->current_kid();
  if (auto r = ring->rotate(vm.count("immediately") ? api::jose::Retire::immediately
                                                    : api::jose::Retire::after_token_ttl);
      !r) {
    fail("token key rotation failed", r.error());
  }
  std::cout << "new token signing key: " << ring->current_kid() << "\n";
  std::cerr << (vm.count("immediately")
                    ? "previous keys were dropped: their tokens are refused from now on\n"
                    : "key " + previous + " keeps verifying until its tokens have expired\n")
            << "a running ledgerd picks the change up within 2 seconds\n";
  return kOk;
}

int cmd_tokens(const Common& c, const std::vector<std::string>& args) {
  po::options_description d("ledgerctl tokens issue");
  d.add_options()("role", po::value<std::string>(), "admin or service")(
      "ttl", po::value<std::int64_t>()->default_value(3600), "lifetime in seconds")(
      "subject", po::value<std::string>()->default_value("operator"),
      "the token's sub (recorded as the actor of what it does)")(
      "issuer", po::value<std::string>(), "token issuer (default: ledgerd's)")(
      "audience", po::value<std::string>(), "token audience (default: ledgerd's)");
  if (args.empty() || args[0] != "issue") {
    fail("usage: ledgerctl tokens issue --role admin|service --ttl SECONDS");
  }
  const auto vm = parse({args.begin() + 1, args.end()}, d);
  const auto role = vm.count("role") ? vm["role"].as<std::string>() : "";
  if (role != "admin" && role != "service") fail("--role must be admin or service");
  const auto settings = token_settings(vm);
  const auto ttl = vm["ttl"].as<std::int64_t>();
  if (ttl <= 0 || ttl > settings.max_ttl.count()) {
    fail("--ttl must be 1.." + std::to_string(settings.max_ttl.count()) + " seconds");
  }
  auto ring = open_key_ring(c, settings);
  const api::jose::TokenIssuer issuer(*ring, SystemClock::instance(), settings.issuer_config());
  const auto sid = crypto::random_bytes(16);
  if (!sid) fail("no randomness", sid.error());
  // Its own session id, and marked as an operator's: never accepted as a user (api/auth.h).
  auto token =
      issuer.issue({vm["subject"].as<std::string>(), "cli-" + to_hex(sid.value()), {role}, true},
                   std::chrono::seconds(ttl));
  if (!token) fail("cannot issue the token", token.error());
  std::cerr << "issued a token with role " << role << " for " << token.value().claims.sub
            << " (key " << token.value().kid << ", expires "
            << format_rfc3339(token.value().claims.exp * 1'000'000) << ")\n";
  std::cout << token.value().token << "\n";
  return kOk;
}

const char* const kUsage =
    R"(usage: ledgerctl [--data-dir DIR] [--log kafka --kafka-brokers B [--topic T]] COMMAND [options]

commands:
  init          create the data directory, keys and ledger if missing
                (--log kafka: the keys only; the topics are created by their first writer)
  verify        re-walk every hash link and check every checkpoint signature
                (exit 0 verified, 1 tampered, 2 could not run)
  export        --format jsonl|csv [--subject S] [--from T] [--to T] [-o FILE]
  tail          [-p PARTITION] [-n N] [-f]
  checkpoints   [-p PARTITION] [--all]: the latest signed checkpoint of each partition; --all
                every one (Kafka: those of ledgers written before the Merkle tree were
                compacted to the latest)
  prove         --partition P --seq S [--size N] | --partition P --from A --to B [-o FILE]:
                a Merkle inclusion proof of one record, or a consistency proof between two
                signed checkpoints (RFC 9162), as JSON
  archive       --from T1 --to T2 [--partition P] -o FILE: a self-contained archive (records,
                the signed checkpoint and the proof tying them) an auditor verifies offline
  verify --archive FILE [--trusted-key K]: check an archive with no data directory
  verify-proof  FILE [--trusted-keys K]: check a proof offline with only the verifier keys
                (exit 0 valid, 1 invalid or forged, 2 could not run)
  retention run [--days N] [--dry-run] [--archive-dir D]: remove event payloads older than N days (default 90;
                ledgerd stopped; ledgerd --retention-days runs it on a schedule); verification
                stays green and reports the cut (--log kafka: as every partition's writer,
                like demo, so with every ledgerd of the cluster stopped; records below the
                cut are deleted from the topic)
  demo          --events N: write realistic synthetic events of every type
                (--log kafka [--partitions P]: creates the topics when missing, with P
                partitions (default 8), and the data directory's missing keys; appends as
                the partitions' writer, which fences a running ledgerd's writers: use it on a
                fresh topic or with ledgerd stopped)
  erase         --subject S: crypto-shred a subject (GDPR erasure; embedded log only)
  keys rotate   --kind checkpoint (ledgerd stopped) | --kind jwt [--immediately]:
                start signing checkpoints or access tokens with a new key
  tokens issue  --role admin|service [--ttl SECONDS] [--subject NAME]: print a signed
                access token (alone on stdout) for operators and applications
  rebuild-projections
                rebuild every read model from the log (ledgerd stopped; embedded log only);
                prints a digest
  projections snapshot --to DIR: a consistent copy of this data directory's projections as
                of their latest write, made while ledgerd runs (either log); seeds a node whose
                projections start below a retention cut, which cannot rebuild them
  replay        --at T [--subject S] [--scratch-dir D]: who had access at T, as JSON
                (sessions valid, users locked, roles held). Replays each partition in seq
                order up to, not including, its first record whose event time is after T
                (a record decided after that one reflects a later state even if its own time
                is earlier); with --subject only that subject's partition. Works while
                ledgerd runs.
  device new    --key FILE: a software device for trying exclusive mode (development; ledgerd
                needs --allow-self-attestation); prints the key's thumbprint
  device attest --key FILE --challenge C --origin URL [--rp-id ID] [--name N]: prints the
                body of POST /v1/secure/exclusive/start (packed self attestation, UP and UV)
  device proof  --key FILE --token T --url URL [--method M] [--jti J]: prints a DPoP proof

With --log kafka the ledger is the Kafka topic T (default ledger.events) and its data keys are
in T.keys; the key-encryption key (--kek-file, SECHEX_KEK or <data-dir>/keys/kek) and the
checkpoint keys still come from the data directory. Every command but demo only reads the
cluster (no producers, committed records only) and works beside a running ledgerd.

)";

}  // namespace

int main(int argc, char** argv) {
  Common c;
  po::options_description global("global options");
  global.add_options()("help,h", "show help")(
      "data-dir", po::value<std::string>(&c.dir.root)->default_value("./data"), "data directory")(
      "kek-file", po::value<std::string>(&c.kek_file), "key-encryption key file (or SECHEX_KEK)")(
      "trusted-keys", po::value<std::string>(&c.trusted_keys),
      "checkpoint verifier keys (default <data-dir>/keys/checkpoint-verifiers.txt)")(
      "signing-key", po::value<std::string>(&c.signing_key), "checkpoint signing key PEM")(
      "key-name", po::value<std::string>(&c.key_name)->default_value(kDefaultKeyName),
      "checkpoint key name")("log", po::value<std::string>(&c.log_kind)->default_value("embedded"),
                             "embedded (RocksDB in --data-dir) or kafka (the topic --topic at "
                             "--kafka-brokers; every command but erase and rebuild-projections)")(
      "kafka-brokers", po::value<std::string>(&c.kafka_brokers),
      "HOST:PORT[,...] with --log kafka")(
      "topic", po::value<std::string>(&c.topic)->default_value("ledger.events"),
      "Kafka topic of the ledger")(
      "kafka-config", po::value<std::vector<std::string>>(&c.kafka_config),
      "KEY=VALUE, repeatable: a librdkafka setting (security.protocol, sasl.*, ssl.*), as ledgerd")(
      "kafka-transactional-id-prefix", po::value<std::string>(),
      "demo --log kafka writes with transactional.id PREFIX + ledger-<partition>; default, as "
      "ledgerd's: empty for topic ledger.events, else \"<topic>.\"")(
      "command", po::value<std::string>(), "command")("args", po::value<std::vector<std::string>>(),
                                                      "command arguments");
  po::positional_options_description pos;
  pos.add("command", 1).add("args", -1);
  try {
    po::variables_map vm;
    // No prefix guessing: a command's own `--to` must never be taken for the global `--topic`.
    po::parsed_options parsed =
        po::command_line_parser(argc, argv)
            .options(global)
            .positional(pos)
            .style(po::command_line_style::default_style & ~po::command_line_style::allow_guessing)
            .allow_unregistered()
            .run();
    po::store(parsed, vm);
    po::notify(vm);
    if (vm.count("kafka-transactional-id-prefix")) {
      c.transactional_id_prefix = vm["kafka-transactional-id-prefix"].as<std::string>();
    }
    if (!vm.count("command")) {
      std::cerr << kUsage << global;
      return vm.count("help") ? kOk : kCannotRun;
    }
    const auto command = vm["command"].as<std::string>();
    if (c.log_kind != "embedded" && c.log_kind != "kafka") fail("--log must be embedded or kafka");
    auto rest = po::collect_unrecognized(parsed.options, po::include_positional);
    rest.erase(rest.begin());  // the command itself
    if (vm.count("help")) rest.push_back("--help");
    if (std::find(rest.begin(), rest.end(), "--help") != rest.end() ||
        std::find(rest.begin(), rest.end(), "-h") != rest.end()) {
      std::cerr << kUsage << global;
      return kOk;
    }
    if (!kafka_mode(c) &&
        (!c.kafka_brokers.empty() || c.transactional_id_prefix || !c.kafka_config.empty())) {
      fail("--kafka-brokers, --kafka-config and --kafka-transactional-id-prefix need --log kafka");
    }
    if (kafka_mode(c) && c.kafka_brokers.empty()) {
      fail("--log kafka needs --kafka-brokers HOST:PORT");
    }
    if (kafka_mode(c) && (command == "erase" || command == "rebuild-projections")) {
      fail("`" + command + "` works on the embedded log only so far");
    }
    if (command == "init") return cmd_init(c, rest);
    if (command == "verify") return cmd_verify(c, rest);
    if (command == "export") return cmd_export(c, rest);
    if (command == "tail") return cmd_tail(c, rest);
    if (command == "checkpoints") return cmd_checkpoints(c, rest);
    if (command == "demo") return cmd_demo(c, rest);
    if (command == "erase") return cmd_erase(c, rest);
    if (command == "keys") return cmd_keys(c, rest);
    if (command == "tokens") return cmd_tokens(c, rest);
    if (command == "rebuild-projections") return cmd_rebuild_projections(c, rest);
    if (command == "projections") return cmd_projections(c, rest);
    if (command == "replay") return ops::cmd_replay(rest, [&] { return open_log_read_only(c); });
    if (command == "device") return ops::cmd_device(rest);
    if (command == "archive") return ops::cmd_archive(rest, [&] { return open_log_read_only(c); });
    if (command == "prove") return ops::cmd_prove(rest, [&] { return open_log_read_only(c); });
    if (command == "verify-proof") {
      return ops::cmd_verify_proof(rest,
                                   c.trusted_keys.empty() ? c.dir.verifier_keys() : c.trusted_keys);
    }
    if (command == "retention") {
      // Their signers outlive the log the command opens.
      Writer writer;
      KafkaWriter kafka_writer;
      ops::RetentionAccess access;
      access.projections_path = c.dir.projections_path();
      access.open_writer = [&]() -> std::unique_ptr<Log> {
        if (kafka_mode(c)) {
          kafka_writer = open_kafka_writer(c, 0);
          return std::move(kafka_writer.log);
        }
        writer = open_read_write(c);
        return std::move(writer.log);
      };
      return ops::cmd_retention(rest, access);
    }
    std::cerr << "ledgerctl: unknown command '" << command << "'\n\n" << kUsage << global;
    return kCannotRun;
  } catch (const Exit& e) {
    std::cerr << "ledgerctl: " << e.message << "\n";
    return e.code;
  } catch (const po::error& e) {
    std::cerr << "ledgerctl: " << e.what() << " (see --help)\n";
    return kCannotRun;
  } catch (const std::exception& e) {
    std::cerr << "ledgerctl: " << e.what() << "\n";
    return kCannotRun;
  }
}
