// Full verification of a log: every link of every partition, every checkpoint signature, and
// the stored heads. Used by `ledgerctl verify` and, for the tail since the last checkpoint, by
// LogStore::open.
//
// Fault reasons (stable identifiers; tests and operators match on them):
//   missing_record              a seq is absent: the next stored record has a higher seq
//   record_malformed            the value is too short to be a record
//   record_from_other_partition the record's header names another partition (copied/spliced)
//   records_swapped             this record and the next carry each other's seq
//   record_out_of_place         the record's header names another seq of this partition
//   event_altered               the event bytes no longer hash to the stored hash (the next
//                               record still links to the stored hash)
//   stored_hash_altered         the stored hash was changed (the next record links to the hash
//                               recomputed from the event, not to the stored one)
//   hash_mismatch               the stored hash differs and the cause cannot be narrowed down
//   event_malformed             the event bytes hash correctly but are not a valid Envelope
//   event_in_wrong_partition    the event's subject belongs to another partition
//   truncated                   the head or a checkpoint covers records that are gone
//   head_mismatch               the stored head disagrees with the last record's hash
//   checkpoint_malformed        a stored checkpoint is not a well-formed signed note
//   checkpoint_wrong_origin     a checkpoint names another ledger or partition
//   checkpoint_unknown_key      a checkpoint is signed only by keys the verifier does not trust
//   checkpoint_bad_signature    a checkpoint's signature by a trusted key does not verify
//   checkpoint_mismatch         a checkpoint's hash differs from the chain at its size
//   checkpoint_root_mismatch    a checkpoint's Merkle root differs from the tree of the records
//   tree_node_altered           a stored Merkle node differs from the one the records give
//   tree_node_missing           a stored Merkle node is absent
//   not_pruned                  a record below the retention cut still holds its payload
//   pruned_above_cut            a record at or above the retention cut lost its payload (no
//                               retention run removed it)
//   pruned_hash_mismatch        a pruned record's kept hashes no longer fit the chain
// Reasons that mean "could not run" rather than "tampered":
//   unsupported_schema_version  an event was written by a newer schema; upgrade ledgerctl
//   unsupported_record_format   a record was written by a newer ledger format
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "ledger/checkpoint.h"
#include "ledger/log_store.h"

namespace sechex::ledger {

struct VerifyOptions {
  // Keys checkpoints must be signed by. When null, signatures are not checked (the report
  // says so); `ledgerctl verify` always passes keys.
  const TrustedKeys* trusted = nullptr;
  // Worker threads; partitions are independent chains and are verified in parallel.
  unsigned threads = 2;
};

struct PartitionSummary {
  Partition partition;
  std::uint64_t records = 0;
  std::uint64_t checkpoints = 0;
  Hash head{};
  RetentionCut cut;  // records below cut.below were pruned (their hashes were still checked)
  bool tree_checked = false;
};

struct VerifyReport {
  enum class Outcome { verified, tampered, cannot_run } outcome = Outcome::verified;
  std::optional<Fault> fault;  // set unless verified
  std::vector<PartitionSummary> partitions;
  std::uint64_t records = 0;
  std::uint64_t checkpoints = 0;
  bool signatures_checked = false;
};

VerifyReport verify_log(const LogStore& log, const VerifyOptions& options);

// The same checks through the Log interface, for logs without direct storage access (the Kafka
// log): every link from seq 0, seq contiguity, envelopes and their partitions, the head the log
// reports, and each partition's latest signed checkpoint (signature, origin, size within the
// chain, hash at its size, and the Merkle root at its size when it commits to one:
// checkpoint_root_mismatch). Finer tamper classes that need raw storage (records_swapped,
// stored_hash_altered, ...) are reported as hash_mismatch or missing_record here. A tail cut
// after the latest checkpoint is found only if the log's reported head still counts the cut
// records (the embedded store's head entry is checked by verify_log alone).
VerifyReport verify_chain(const Log& log, const VerifyOptions& options);

// Walks partition `p` of `log` from `from` (whose predecessor hash is `prev`) to its end and
// returns the first fault. `on_hash(seq, hash, leaf)` is called for every record that links,
// with its RFC 6962 leaf hash. Pruned stubs are checked against the partition's retention cut
// and linked through their kept event digest.
// Errors are only storage failures.
struct WalkResult {
  std::optional<Fault> fault;
  std::uint64_t next = 0;  // seq after the last record that linked
  Hash head{};             // hash of that record (or `prev`)
  bool cannot_run = false;
};
WalkResult walk_partition(const LogStore& log, Partition p, Seq from, const Hash& prev,
                          const std::function<void(Seq, const Hash&, const Hash&)>& on_hash = {});

bool is_cannot_run_reason(std::string_view reason);

}  // namespace sechex::ledger
