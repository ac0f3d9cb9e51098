#include "compliance.h"

#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "ledger/archive.h"
#include "ledger/checkpoint.h"
#include "ledger/crypto.h"
#include "ledger/proof.h"
#include "ledger/retention.h"
#include "ledger/time_format.h"
#include "projections/store.h"

namespace sechex::ops {
namespace {

namespace po = boost::program_options;
using nlohmann::json;

constexpr int kOk = 0;
constexpr int kInvalid = 1;
constexpr int kCannotRun = 2;
constexpr std::int64_t kDayMicros = 86'400'000'000;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

po::variables_map parse(const std::vector<std::string>& args, const po::options_description& d,
                        const po::positional_options_description* positional = nullptr) {
  po::variables_map vm;
  try {
    po::command_line_parser parser(args);
    parser.options(d);
    if (positional != nullptr) parser.positional(*positional);
    po::store(parser.run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    fail(std::string(e.what()) + " (see --help)");
  }
  return vm;
}

void write_output(const po::variables_map& vm, const std::string& text) {
  if (!vm.count("output")) {
    std::cout << text << "\n";
    return;
  }
  const auto path = vm["output"].as<std::string>();
  std::ofstream out(path, std::ios::trunc);
  out << text << "\n";
  if (!out.flush()) fail("cannot write " + path);
}

std::string why_no_proof(std::error_code ec, ledger::Partition p, const ledger::Log& log) {
  using ledger::Errc;
  if (ec == Errc::pruned) {
    return "the record's payload was removed by retention (" +
           describe_cut(p, log.retention_cut(p)) + "); proofs made before the cut stay valid";
  }
  if (ec == Errc::not_found) {
    return "no signed checkpoint with a Merkle root covers it (past the tree, no checkpoint at "
           "that size, or signed before the tree existed)";
  }
  if (ec == Errc::not_supported) return "this log keeps no Merkle tree";
  if (ec == Errc::invalid_argument) return "bad partition or sizes";
  return ec.message();
}

}  // namespace

std::string describe_cut(ledger::Partition p, const ledger::RetentionCut& cut) {
  return "partition " + std::to_string(p.value) + " pruned below seq " +
         std::to_string(cut.below.value) + " (events before " + format_rfc3339(cut.before_micros) +
         ")";
}

int cmd_prove(const std::vector<std::string>& args,
              const std::function<std::unique_ptr<ledger::Log>()>& open_log) {
  po::options_description d("ledgerctl prove");
  d.add_options()("partition", po::value<std::uint32_t>(), "the record's partition")(
      "seq", po::value<std::uint64_t>(), "inclusion: the record's seq")(
      "size", po::value<std::uint64_t>(), "inclusion: a checkpoint's size (default: the latest)")(
      "from", po::value<std::uint64_t>(), "consistency: the older checkpoint's size")(
      "to", po::value<std::uint64_t>(), "consistency: the newer checkpoint's size")(
      "output,o", po::value<std::string>(), "write the proof here instead of stdout");
  const auto vm = parse(args, d);
  if (!vm.count("partition")) fail("prove needs --partition P and --seq S (or --from A --to B)");
  const bool inclusion = vm.count("seq") != 0;
  if (inclusion == (vm.count("from") != 0 || vm.count("to") != 0)) {
    fail("prove needs either --seq S (inclusion) or --from A --to B (consistency)");
  }
  if (!inclusion && (!vm.count("from") || !vm.count("to")))
    fail("consistency needs --from and --to");
  auto log = open_log();
  const ledger::Partition p{vm["partition"].as<std::uint32_t>()};
  if (p.value >= log->partition_count()) {
    fail("--partition must be below " + std::to_string(log->partition_count()));
  }
  if (inclusion) {
    std::optional<std::uint64_t> size;
    if (vm.count("size")) size = vm["size"].as<std::uint64_t>();
    const auto proof =
        ledger::prove_inclusion(*log, p, ledger::Seq{vm["seq"].as<std::uint64_t>()}, size);
    if (!proof) fail("no inclusion proof: " + why_no_proof(proof.error(), p, *log));
    write_output(vm, ledger::to_json(proof.value()).dump(2));
    return kOk;
  }
  const auto proof = ledger::prove_consistency(*log, p, vm["from"].as<std::uint64_t>(),
                                               vm["to"].as<std::uint64_t>());
  if (!proof) fail("no consistency proof: " + why_no_proof(proof.error(), p, *log));
  write_output(vm, ledger::to_json(proof.value()).dump(2));
  return kOk;
}

int cmd_archive(const std::vector<std::string>& args,
                const std::function<std::unique_ptr<ledger::Log>()>& open_log) {
  po::options_description d("ledgerctl archive");
  d.add_options()("from", po::value<std::string>(), "RFC 3339 time, inclusive")(
      "to", po::value<std::string>(), "RFC 3339 time, exclusive")(
      "partition", po::value<std::uint32_t>(), "only this partition")(
      "output,o", po::value<std::string>(), "the archive file to write");
  const auto vm = parse(args, d);
  if (!vm.count("output")) fail("archive needs -o FILE");
  auto time_flag = [&](const char* name) -> std::optional<std::int64_t> {
    if (!vm.count(name)) return std::nullopt;
    const auto t = parse_rfc3339(vm[name].as<std::string>());
    if (!t) fail(std::string("--") + name + ": not an RFC 3339 time");
    return t;
  };
  const auto from = time_flag("from");
  const auto to = time_flag("to");
  if (from && to && *from >= *to) fail("--from must be before --to");
  auto log = open_log();
  std::optional<ledger::Partition> only;
  if (vm.count("partition")) {
    only = ledger::Partition{vm["partition"].as<std::uint32_t>()};
    if (only->value >= log->partition_count()) {
      fail("--partition must be below " + std::to_string(log->partition_count()));
    }
  }
  auto plan = ledger::plan_archive(*log, from.value_or(INT64_MIN), to.value_or(INT64_MAX), only);
  if (!plan) fail("cannot read the log: " + plan.error().message());
  if (plan.value().ranges.empty()) fail("no signed records in that window: nothing to archive");
  const std::filesystem::path out_path(vm["output"].as<std::string>());
  const auto dir = out_path.has_parent_path() ? out_path.parent_path().string() : ".";
  const auto written = ledger::write_archive_file(*log, plan.value().ranges, dir,
                                                  out_path.filename().string(), from, to);
  if (!written) fail("archive failed: " + written.error().message());
  std::uint64_t records = 0;
  for (const auto& r : plan.value().ranges) records += r.below.value - r.from.value;
  std::cerr << "archived " << records << " records of " << plan.value().ranges.size()
            << " partitions to " << written.value() << "\n";
  if (plan.value().unsigned_tail > 0) {
    std::cerr << plan.value().unsigned_tail
              << " records in the window are not yet under a signed checkpoint and were left "
                 "out; archive again after the next checkpoint to include them\n";
  }
  for (std::uint32_t i = 0; i < log->partition_count(); ++i) {
    const auto cut = log->retention_cut(ledger::Partition{i});
    if (cut.below.value > 0 && from.value_or(INT64_MIN) < cut.before_micros &&
        (!only || only->value == i)) {
      std::cerr << describe_cut(ledger::Partition{i}, cut) << ": earlier records are gone\n";
    }
  }
  return kOk;
}

int verify_archive_file(const std::string& path, const std::string& trusted_keys) {
  auto keys = ledger::TrustedKeys::load_file(trusted_keys);
  if (!keys) {
    fail(keys.error() == ledger::Errc::key_missing
             ? "no trusted checkpoint keys in " + trusted_keys + " (pass --trusted-key FILE)"
             : "trusted key file " + trusted_keys + " has a malformed line");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read " + path);
  const auto report = ledger::verify_archive(in, keys.value());
  if (report.outcome == ledger::VerifyReport::Outcome::verified) {
    for (const auto& p : report.partitions) {
      std::cout << "partition " << p.partition.value << ": " << p.records
                << " records linked under a signed checkpoint, head " << ledger::to_hex(p.head)
                << "\n";
    }
    std::cout << "verified archive: " << report.records << " records, " << report.partitions.size()
              << " partitions\n";
    return kOk;
  }
  const auto& f = *report.fault;
  const bool tampered = report.outcome == ledger::VerifyReport::Outcome::tampered;
  std::cout << (tampered ? "TAMPERED" : "CANNOT VERIFY") << ": partition "
            << f.position.partition.value << " seq " << f.position.seq.value << ": " << f.reason
            << ": " << f.detail << "\n";
  return tampered ? kInvalid : kCannotRun;
}

int cmd_verify_proof(const std::vector<std::string>& args, const std::string& trusted_keys) {
  po::options_description d("ledgerctl verify-proof");
  d.add_options()("proof", po::value<std::string>(), "the proof file (JSON)");
  po::positional_options_description pos;
  pos.add("proof", 1);
  const auto vm = parse(args, d, &pos);
  if (!vm.count("proof")) fail("usage: ledgerctl verify-proof FILE [--trusted-keys KEYS]");
  const auto path = vm["proof"].as<std::string>();
  std::ifstream in(path);
  if (!in) fail("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  auto j = json::parse(text.str(), nullptr, false);
  if (j.is_discarded()) fail(path + " is not JSON");
  if (j.is_object() && j.contains("data") && j["data"].is_object()) j = j["data"];
  auto keys = ledger::TrustedKeys::load_file(trusted_keys);
  if (!keys) {
    fail(keys.error() == ledger::Errc::key_missing
             ? "no trusted checkpoint keys in " + trusted_keys + " (pass --trusted-keys FILE)"
             : "trusted key file " + trusted_keys + " has a malformed line");
  }
  ledger::ProofCheck check;
  if (j.is_object() && j.contains("seq")) {
    const auto proof = ledger::inclusion_from_json(j);
    if (!proof) fail(path + " is not a well-formed inclusion proof");
    check = ledger::check_inclusion(*proof, keys.value());
  } else if (j.is_object() && j.contains("from")) {
    const auto proof = ledger::consistency_from_json(j);
    if (!proof) fail(path + " is not a well-formed consistency proof");
    check = ledger::check_consistency(*proof, keys.value());
  } else {
    fail(path + " is neither an inclusion proof (seq) nor a consistency proof (from, to)");
  }
  if (check.ok) {
    std::cout << "verified: " << check.detail << "\n";
    return kOk;
  }
  std::cout << "INVALID: " << check.reason << ": " << check.detail << "\n";
  return kInvalid;
}

int cmd_retention(const std::vector<std::string>& args, const RetentionAccess& access) {
  po::options_description d("ledgerctl retention run");
  d.add_options()("days", po::value<std::uint32_t>()->default_value(90),
                  "keep events of the last N days")("dry-run", "only say what would go")(
      "archive-dir", po::value<std::string>(),
      "first write an archive of what goes here (verify it with `ledgerctl verify --archive`)");
  if (args.empty() || args[0] != "run")
    fail("usage: ledgerctl retention run [--days N] [--dry-run]");
  const auto vm = parse({args.begin() + 1, args.end()}, d);
  const auto days = vm["days"].as<std::uint32_t>();
  if (days == 0) fail("--days must be at least 1 (ledgerd --retention-days 0 disables the job)");
  auto log = access.open_writer();
  // Holding the projections proves no ledgerd is running, and bounds the cut by what they
  // applied (they catch up first, so that is the head).
  auto projections = projections::ProjectionStore::open(
      access.projections_path, log->partition_count(), projections::default_projections());
  if (!projections && projections.error() == ledger::Errc::store_locked) {
    fail("the projections at " + access.projections_path + " are in use (stop ledgerd first)");
  }
  if (!projections) fail("cannot open the projections at " + access.projections_path);
  auto& store = *projections.value();
  if (auto r = store.catch_up(*log); !r)
    fail("cannot bring the projections up to date: " + r.error().message());

  const auto now = SystemClock::instance().now_micros();
  ledger::RetentionOptions ro;
  ro.before_micros = now - static_cast<std::int64_t>(days) * kDayMicros;
  ro.window_days = days;
  auto id = ledger::crypto::random_bytes(8);
  if (!id) fail("no randomness");
  ro.run_id = ledger::to_hex(id.value());
  const char* user = std::getenv("USER");
  ro.actor = std::string("operator:") + (user != nullptr && *user != '\0' ? user : "ledgerctl");
  ro.limit = [&](ledger::Partition p) { return store.position(p); };

  std::cout << "retention: keeping events since " << format_rfc3339(ro.before_micros) << " ("
            << days << " days)\n";
  if (vm.count("dry-run")) {
    auto plan = ledger::plan_retention(*log, ro);
    if (!plan) fail("cannot plan: " + plan.error().message());
    std::uint64_t records = 0;
    for (const auto& s : plan.value()) records += s.below.value - s.from.value;
    for (const auto& s : plan.value()) {
      std::cout << "would prune partition " << s.partition.value << " seq " << s.from.value << ".."
                << s.below.value - 1 << "\n";
    }
    std::cout << "dry run: " << records << " records would be pruned; nothing changed\n";
    return kOk;
  }
  if (vm.count("archive-dir")) {
    const auto dir = vm["archive-dir"].as<std::string>();
    ro.before = [&, dir](const std::vector<ledger::RetentionStep>& steps) -> Result<void> {
      SECHEX_TRY(auto path, ledger::write_archive_file(*log, ledger::archive_ranges(steps), dir,
                                                       "retention-" + ro.run_id + ".jsonl"));
      std::cout << "archived what goes to " << path << "\n";
      return boost::outcome_v2::success();
    };
  }
  auto report =
      ledger::run_retention(*log, ro, [&](const ledger::RetentionStep& step) -> Result<void> {
        SECHEX_TRY(auto event, ledger::retention_event(step, ro, log->partition_count(),
                                                       SystemClock::instance().now_micros()));
        const ledger::ByteView view(event);
        SECHEX_TRY(auto appended,
                   log->append(step.partition, std::span<const ledger::ByteView>(&view, 1)));
        (void)appended;
        // The audit entries go now, not when ledgerd next starts.
        SECHEX_TRY(auto applied, store.catch_up(*log));
        (void)applied;
        return boost::outcome_v2::success();
      });
  if (!report) fail("retention stopped: " + report.error().message());
  for (const auto& s : report.value().steps) {
    std::cout << "pruned partition " << s.partition.value << " seq " << s.from.value << ".."
              << s.below.value - 1 << "\n";
  }
  if (auto r = log->checkpoint_due(true); !r)
    fail("cannot sign a checkpoint: " + r.error().message());
  std::cout << "retention run " << ro.run_id << ": pruned " << report.value().records
            << " records (" << report.value().bytes_freed << " payload bytes) in "
            << report.value().steps.size() << " chained steps\n";
  return kOk;
}

}  // namespace sechex::ops
