// `ledgerctl replay`: "who had access when". Rebuilds the projections in a scratch directory
// from the log as it stood at an instant and reports the sessions valid, the users locked and
// the roles held at that instant.
//
// Which records count: for each partition, in seq order, every record up to (not including)
// the first one whose envelope time is after T. Seq order is the order the partition's single
// writer decided in, so a record after a later-than-T record reflects a state that did not
// exist yet at T, even if its own time (a clock step, an ingested event) is earlier. With a
// subject only its partition is replayed (all of a subject's events live there).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ledger/log.h"

namespace sechex::ops {

struct ReplayOptions {
  std::int64_t at_micros = 0;
  std::optional<std::string> subject;
  std::string scratch_dir;  // an empty directory for the rebuilt projections
};

// The state at `at_micros` as JSON: {"at", "subject", "records_applied", "sessions": [...],
// "locked": [...], "roles": [...]}, each list in key order. A lock is {"user", "locked_until"
// (RFC 3339; null while only an admin lifts it), "needs_admin_unlock", "reason", "since",
// "kept_until" (an unknown address's admin lock only)}; a stored lock that does not decode is
// listed as needing an admin (it fails closed, as the API treats it). Errc::unsupported_version for
// a record written by a newer schema, Errc::corruption for an undecodable one.
Result<nlohmann::json> replay_at(const ledger::Log& log, const ReplayOptions& opts);

// The command: parses `args`, opens the log with `open_log` (read-only: the embedded store as a
// secondary instance or a read-only Kafka log, so it works while ledgerd runs), prints the JSON
// on stdout. Throws std::runtime_error with a message on bad input
// (ledgerctl exits 2).
int cmd_replay(const std::vector<std::string>& args,
               const std::function<std::unique_ptr<ledger::Log>()>& open_log);

}  // namespace sechex::ops
