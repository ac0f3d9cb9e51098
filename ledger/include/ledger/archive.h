// Archives an auditor verifies offline: one self-contained file holding a run of records per
// partition, the signed checkpoint covering them and the Merkle proof tying them to it, checked
// on a machine with no data directory and only the ledger's verifier key.
//
// Format (JSON Lines, UTF-8; one JSON object per line, so writer and verifier stream):
//   {"format": "sechex-archive/v1", "ledgerId", "from", "to" (RFC 3339 or null), "created",
//    "keyIds": ["<name>+<8 hex>", ...]}                       the header, once
//   {"partition", "firstSeq", "prevHash", "count", "checkpoint", "proof"}
//                                                             a partition section, then its
//   {"record": "<base64 of the stored record bytes>"}         `count` record lines
// `prevHash` is hash[firstSeq-1] (zeros for seq 0). The records link from it, each through its
// stored hash (record.h), and `proof` is an inclusion proof (proof.h) of the section's last
// record against `checkpoint`, so every record of the section is vouched for by the signature.
// Sealed fields stay sealed: records are the stored bytes.
//
// Thread-safety: free functions over a thread-safe Log; the streams are the caller's.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "ledger/checkpoint.h"
#include "ledger/log.h"
#include "ledger/verify.h"

namespace sechex::ledger {

inline constexpr std::string_view kArchiveFormat = "sechex-archive/v1";

struct ArchiveRange {
  Partition partition;
  Seq from;
  Seq below;
};

// Per partition (or one), the records from the first whose time is >= from_micros to the last
// whose time is < to_micros (everything between them, so the run is contiguous), starting no
// lower than the retention cut and ending at the latest signed checkpoint with a Merkle root
// (records not yet signed cannot be vouched for; `unsigned_tail` counts those left out).
struct ArchivePlan {
  std::vector<ArchiveRange> ranges;
  std::uint64_t unsigned_tail = 0;
};
Result<ArchivePlan> plan_archive(const Log& log, std::int64_t from_micros, std::int64_t to_micros,
                                 std::optional<Partition> only = std::nullopt);

struct ArchiveSummary {
  std::uint64_t records = 0;
  std::uint32_t partitions = 0;
};
// Writes the archive of `ranges` to `out`. Errc::not_found when no signed checkpoint with a
// root covers a range; storage errors pass through. `from`/`to` are recorded in the header.
Result<ArchiveSummary> write_archive(const Log& log, const std::vector<ArchiveRange>& ranges,
                                     std::optional<std::int64_t> from_micros,
                                     std::optional<std::int64_t> to_micros, std::ostream& out);

// Writes the archive of `ranges` to `dir`/`name` durably (a temporary name, fsync, rename; no
// partial file is left on failure), for `ledgerctl archive` and retention's "archive before
// pruning". Returns the path.
Result<std::string> write_archive_file(const Log& log, const std::vector<ArchiveRange>& ranges,
                                       const std::string& dir, const std::string& name,
                                       std::optional<std::int64_t> from_micros = std::nullopt,
                                       std::optional<std::int64_t> to_micros = std::nullopt);

// Verifies an archive read from `in` with `trusted` keys. The report uses verify.h's outcomes
// and fault reasons (plus archive_malformed, and proof_* / checkpoint_* from proof.h's check),
// with `records` and `partitions` counting what was checked.
VerifyReport verify_archive(std::istream& in, const TrustedKeys& trusted);

}  // namespace sechex::ledger
