#include "api/app/commands.h"

namespace sechex::api {

namespace {
constexpr std::size_t kApplyBatch = 1024;
}

CommandPath::CommandPath(ledger::Log& log, projections::ProjectionStore& projections)
    : CommandPath(log, projections, PartitionOwnership::all(log.partition_count())) {}

CommandPath::CommandPath(ledger::Log& log, projections::ProjectionStore& projections,
                         PartitionOwnership ownership)
    : log_(log), projections_(projections), ownership_(std::move(ownership)) {
  for (std::uint32_t p = 0; p < log.partition_count(); ++p) {
    locks_.push_back(std::make_unique<std::mutex>());
  }
}

ledger::Partition CommandPath::partition_for(std::string_view subject) const {
  return ledger::partition_for(subject, log_.partition_count());
}

Result<std::uint64_t> CommandPath::sync_locked(ledger::Partition p, bool claimed) {
  std::uint64_t applied = 0;
  for (;;) {
    const auto from = projections_.position(p);
    // Usually the projections are at the head already (this process wrote the last records):
    // no read of the log. Once claimed, head() is this process's own state, in memory.
    if (claimed && log_.head(p).next == from) return applied;
    SECHEX_TRY(auto records, log_.read_range(p, from, ledger::Seq{UINT64_MAX}, kApplyBatch));
    if (records.empty()) return applied;
    SECHEX_TRYV(projections_.apply(p, records));
    applied += records.size();
  }
}

Result<std::uint64_t> CommandPath::sync(ledger::Partition p) {
  if (p.value >= locks_.size()) return ledger::Errc::invalid_argument;
  std::lock_guard lock(*locks_[p.value]);
  return sync_locked(p, /*claimed=*/false);
}

Result<std::uint64_t> CommandPath::follow(ledger::Partition p) {
  if (p.value >= locks_.size()) return ledger::Errc::invalid_argument;
  std::uint64_t applied = 0;
  for (;;) {
    const auto from = projections_.position(p);
    SECHEX_TRY(auto records, log_.read_range(p, from, ledger::Seq{UINT64_MAX}, kApplyBatch));
    if (records.empty()) return applied;
    std::lock_guard lock(*locks_[p.value]);
    if (projections_.position(p) != from) continue;
    SECHEX_TRYV(projections_.apply(p, records));
    applied += records.size();
  }
}

Result<std::uint64_t> CommandPath::sync_all() {
  std::uint64_t applied = 0;
  for (std::uint32_t i = 0; i < locks_.size(); ++i) {
    SECHEX_TRY(const auto n, sync(ledger::Partition{i}));
    applied += n;
  }
  return applied;
}

Result<std::vector<ledger::Record>> CommandPath::run(ledger::Partition p, const Decide& decide) {
  return run(p, decide,
             [&](std::span<const ledger::ByteView> views) { return log_.append(p, views); });
}

Result<std::vector<ledger::Record>> CommandPath::run(ledger::Partition p, const Decide& decide,
                                                     const Append& append) {
  if (p.value >= locks_.size()) return ledger::Errc::invalid_argument;
  // The second line of defence behind the routes' own checks: appending would create this
  // node's writer for the partition and fence its owner's.
  if (!ownership_.owns(p)) return OwnershipErrc::not_owner;
  std::lock_guard lock(*locks_[p.value]);
  // Become the partition's only writer before reading state: with Kafka, another node's
  // appends after our read would make the decision stale.
  SECHEX_TRYV(log_.claim(p));
  // Decide on current state: records appended earlier (e.g. before a failed apply, or while
  // start-up catch-up is still running elsewhere) are applied first.
  SECHEX_TRYV(sync_locked(p, /*claimed=*/true));
  SECHEX_TRY(auto events, decide());
  if (events.empty()) return std::vector<ledger::Record>{};
  std::vector<ledger::ByteView> views;
  views.reserve(events.size());
  for (const auto& e : events) views.emplace_back(e);
  SECHEX_TRY(auto appended, append(views));
  // The records as stored, from what the append computed: no read-back.
  std::vector<ledger::Record> records;
  records.reserve(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    records.push_back(ledger::Record{
        {p, ledger::Seq{appended.first.value + i}}, appended.hashes.at(i), std::move(events[i])});
  }
  if (projections_.position(p) == appended.first) {
    if (auto r = projections_.apply(p, records); !r) ++apply_failures_;
  } else if (auto r = sync_locked(p, /*claimed=*/true); !r) {
    ++apply_failures_;
  }
  if (observer_) observer_(records);
  return records;
}

Result<void> CommandPath::run_locked(ledger::Partition p,
                                     const std::function<Result<void>()>& action) {
  if (p.value >= locks_.size()) return ledger::Errc::invalid_argument;
  if (!ownership_.owns(p)) return OwnershipErrc::not_owner;
  std::lock_guard lock(*locks_[p.value]);
  SECHEX_TRYV(log_.claim(p));
  SECHEX_TRYV(sync_locked(p, /*claimed=*/true));
  SECHEX_TRYV(action());
  // The action's records are durable whatever happens next; a failed apply is caught up by the
  // partition's next command, as in run().
  if (auto r = sync_locked(p, /*claimed=*/true); !r) ++apply_failures_;
  return boost::outcome_v2::success();
}

std::uint64_t CommandPath::apply_failures() const { return apply_failures_.load(); }

}  // namespace sechex::api
