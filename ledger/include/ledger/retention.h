// Retention (ARCHITECTURE.md "Retention"; design card: 90-day windows) over any log that can
// prune (Log::prune: the embedded store, the Kafka log): which records may go, and going through
// with it step by step, each step chained before its payloads are removed.
//
// What a run removes, per partition: the longest run of records from the current cut whose
// envelope times are all before `before_micros`, never past the partition's latest signed
// checkpoint (so every pruned record stays under a signature) nor past `limit(p)` (ledgerd and
// ledgerctl pass what the projections have applied, so no projection ever needs a payload that
// is gone). Events are kept in log order: one recent event stops the cut there, so an event is
// never removed while an older-looking one after it is kept ahead of it — "keep >= N days" holds
// for every record.
//
// Each step is chained into the partition it prunes (under retention_subject(p)), so whoever
// writes that partition runs it: in Kafka mode each node prunes the partitions it owns.
//
// Crash safety: each step is chained first (a RetentionApplied event, whose apply removes the
// audit entries), then pruned (Log::prune). A crash between the two leaves the payloads in
// place and the next run prunes them, chaining the step again (removing audit entries twice is
// harmless). The stored cut only ever moves with the payloads, so verify never mistakes an
// interrupted run for tampering.
//
// Thread-safety: plan_retention only reads; run_retention may run while appends go on (one run
// at a time: Log::prune serialises).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/archive.h"
#include "ledger/log.h"

namespace sechex::ledger {

// The subjects retention steps are chained under: kRetentionSubject, or for a partition it does
// not map to, kRetentionSubject + ":" + n with the smallest n that maps there. A
// RetentionApplied of any other subject removes nothing from the projections.
inline constexpr std::string_view kRetentionSubject = "system:retention";
std::string retention_subject(Partition partition, std::uint32_t partitions);
bool is_retention_subject(std::string_view subject);
// The most records one step covers: applying it looks each one up in the audit index.
inline constexpr std::uint64_t kMaxRetentionStep = 16384;

struct RetentionOptions {
  std::int64_t before_micros = 0;  // records with an earlier envelope time go
  std::uint32_t window_days = 0;   // recorded in the events
  std::string run_id;              // ties the steps of one run together
  std::string actor = "system";    // who ran it ("system" for ledgerd's job, else the operator)
  // The highest cut allowed per partition (none when empty beyond the latest checkpoint).
  std::function<Seq(Partition)> limit;
  // When set, called once with the whole plan before anything is chained or pruned (to write
  // an archive of what is about to go); an error stops the run with nothing pruned.
  std::function<Result<void>(const std::vector<struct RetentionStep>&)> before;
};

struct RetentionStep {
  Partition partition;
  Seq from;
  Seq below;
};

struct RetentionReport {
  std::vector<RetentionStep> steps;  // planned (dry run) or done
  std::uint64_t records = 0;         // records pruned (or that would be)
  std::uint64_t bytes_freed = 0;     // payload bytes removed (0 for a dry run)
};

Result<std::vector<RetentionStep>> plan_retention(const Log& log, const RetentionOptions& options);

// The steps of a plan as contiguous ranges, one per partition (for archiving them first).
std::vector<ArchiveRange> archive_ranges(const std::vector<RetentionStep>& steps);

// The RetentionApplied envelope for one step, timed `now_micros`, under the subject of the
// step's partition (it goes into that partition).
Result<Bytes> retention_event(const RetentionStep& step, const RetentionOptions& options,
                              std::uint32_t partitions, std::int64_t now_micros);

// Plans, then for each step calls `chain(step)` (which must durably append retention_event(...)
// to the log, through the command path in ledgerd) and prunes. Stops at the first error,
// reporting what was done before it in the error-free steps (the error is returned).
using ChainStep = std::function<Result<void>(const RetentionStep&)>;
Result<RetentionReport> run_retention(Log& log, const RetentionOptions& options,
                                      const ChainStep& chain);

}  // namespace sechex::ledger
