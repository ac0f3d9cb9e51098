#include "replay.h"

#include <boost/program_options.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <stdexcept>

#include "ledger/time_format.h"
#include "ledger/utf8.h"
#include "projections/access.h"
#include "projections/sessions.h"
#include "projections/store.h"
#include "projections/users.h"
#include "schemas/events.h"

namespace sechex::ops {
namespace {

namespace po = boost::program_options;
namespace proj = sechex::projections;
using nlohmann::json;

// Applies partition `p` up to its cut at `at`; returns the number of records applied.
Result<std::uint64_t> replay_partition(const ledger::Log& log, proj::ProjectionStore& store,
                                       ledger::Partition p, std::int64_t at) {
  std::uint64_t applied = 0;
  ledger::Seq next{0};
  for (;;) {
    SECHEX_TRY(auto batch, log.read_range(p, next, ledger::Seq{UINT64_MAX}, 4096));
    if (batch.empty()) return applied;
    std::size_t cut = 0;
    for (; cut < batch.size(); ++cut) {
      const auto& ev = batch[cut].event;
      const auto check = schemas::check_envelope(ev.data(), ev.size());
      if (check == schemas::CheckResult::newer_version) {
        return make_error_code(ledger::Errc::unsupported_version);
      }
      // An event of a type this build does not know still has a readable envelope and time;
      // the store skips its body as it does everywhere else.
      if (check == schemas::CheckResult::malformed) {
        return make_error_code(ledger::Errc::corruption);
      }
      if (schemas::envelope_of(ev.data())->time_micros() > at) break;
    }
    SECHEX_TRYV(store.apply(p, std::span<const ledger::Record>(batch.data(), cut)));
    applied += cut;
    if (cut < batch.size()) return applied;
    next = ledger::Seq{batch.back().position.seq.value + 1};
  }
}

json session_json(const std::string& id, const proj::SessionRow& s) {
  json out{{"session_id", id},
           {"user", s.user},
           {"family", s.family},
           {"created_at", format_rfc3339(s.created_at)},
           {"last_seen", format_rfc3339(s.last_seen)},
           {"idle_expires_at", format_rfc3339(s.idle_expires_at)},
           {"remember_me", s.remember_me}};
  out["absolute_expires_at"] =
      s.absolute_expires_at > 0 ? json(format_rfc3339(s.absolute_expires_at)) : json(nullptr);
  return out;
}

}  // namespace

Result<nlohmann::json> replay_at(const ledger::Log& log, const ReplayOptions& opts) {
  SECHEX_TRY(auto store, proj::ProjectionStore::open(opts.scratch_dir, log.partition_count(),
                                                     proj::default_projections()));
  std::uint32_t first = 0, last = log.partition_count();
  if (opts.subject) {
    first = ledger::partition_for(*opts.subject, log.partition_count()).value;
    last = first + 1;
  }
  std::uint64_t applied = 0;
  for (auto p = first; p < last; ++p) {
    SECHEX_TRY(auto n, replay_partition(log, *store, ledger::Partition{p}, opts.at_micros));
    applied += n;
  }
  const auto at = time_from_micros(opts.at_micros);
  json out{
      {"at", format_rfc3339(at)},   {"subject", opts.subject ? json(*opts.subject) : json(nullptr)},
      {"records_applied", applied}, {"sessions", json::array()},
      {"locked", json::array()},    {"roles", json::array()}};

  std::vector<std::pair<std::string, proj::SessionRow>> sessions;
  if (opts.subject) {
    SECHEX_TRY(sessions, proj::active_sessions(*store, *opts.subject, at));
  } else {
    SECHEX_TRY(sessions, proj::all_active_sessions(*store, at));
  }
  for (const auto& [id, value] : sessions) out["sessions"].push_back(session_json(id, value));

  SECHEX_TRY(auto locks, proj::locks_in_force(*store, opts.subject, at));
  for (const auto& lock : locks) {
    json j{{"user", lock.subject},
           {"locked_until", lock.locked_until.empty() ? json(nullptr) : json(lock.locked_until)},
           {"needs_admin_unlock", lock.needs_admin_unlock},
           {"reason", lock.reason},
           {"since", lock.since}};
    if (!lock.kept_until.empty()) j["kept_until"] = lock.kept_until;
    out["locked"].push_back(std::move(j));
  }

  SECHEX_TRY(auto users, proj::user_rows(*store, opts.subject ? *opts.subject : ""));
  for (const auto& u : users) {
    if (opts.subject && u.id != *opts.subject) continue;  // the scan was by prefix
    if (u.roles.empty() && !opts.subject) continue;       // everyone holding a role, or the subject
    out["roles"].push_back({{"user", u.id}, {"status", u.status}, {"roles", u.roles}});
  }
  return out;
}

int cmd_replay(const std::vector<std::string>& args,
               const std::function<std::unique_ptr<ledger::Log>()>& open_log) {
  po::options_description d("ledgerctl replay");
  d.add_options()("at", po::value<std::string>()->required(), "RFC 3339 instant")(
      "subject", po::value<std::string>(), "only this user")(
      "scratch-dir", po::value<std::string>(),
      "where to rebuild (default: the system temporary directory); removed afterwards");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(d).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw std::runtime_error(std::string(e.what()) + " (see --help)");
  }
  const auto text = vm["at"].as<std::string>();
  const auto at = parse_rfc3339(text);
  if (!at) throw std::runtime_error("--at: '" + text + "' is not an RFC 3339 time");
  auto log = open_log();

  namespace fs = std::filesystem;
  const fs::path parent = vm.count("scratch-dir") ? fs::path(vm["scratch-dir"].as<std::string>())
                                                  : fs::temp_directory_path();
  std::string tmpl = (parent / "ledgerctl-replay-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("cannot create a scratch directory in " + parent.string());
  }
  // Removed however the replay ends: it holds a copy of (non-PII) projection state.
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } cleanup{tmpl};

  ReplayOptions o;
  o.at_micros = *at;
  if (vm.count("subject")) o.subject = vm["subject"].as<std::string>();
  o.scratch_dir = tmpl + "/projections";
  auto result = replay_at(*log, o);
  if (!result) {
    if (result.error() == ledger::Errc::unsupported_version) {
      throw std::runtime_error("the log holds events of a newer schema version; upgrade ledgerctl");
    }
    if (result.error() == ledger::Errc::pruned) {
      // Replay rebuilds from seq 0: a cut partition has no such history left to rebuild.
      std::string cuts;
      for (std::uint32_t i = 0; i < log->partition_count(); ++i) {
        const auto cut = log->retention_cut(ledger::Partition{i});
        if (cut.below.value == 0) continue;
        cuts += "\n  partition " + std::to_string(i) + " pruned below seq " +
                std::to_string(cut.below.value) + " (events before " +
                format_rfc3339(cut.before_micros) + ")";
      }
      throw std::runtime_error(
          "cannot replay: retention removed the payloads replay would start from (replay an "
          "archive made before the cut instead):" +
          cuts);
    }
    throw std::runtime_error(
        "replay failed: " + result.error().message() +
        (result.error() == ledger::Errc::corruption ? " (run `ledgerctl verify`)" : ""));
  }
  std::cout << ledger::json_text(result.value(), 2) << "\n";
  return 0;
}

}  // namespace sechex::ops
