// The command path of ARCHITECTURE.md: for one partition at a time, bring the projections up to
// the log's head, decide (a pure function of the projections, the command and the clock), append
// the events it returns, and apply them to the projections before the next command of that
// partition decides. "5 failures -> lock" therefore cannot be bypassed by parallel requests, and
// the chain order is the decision order.
//
// Ownership (ownership.h): run() refuses a partition this node does not own with
// OwnershipErrc::not_owner before deciding, so no route can append to (and so create a writer
// for) a partition another node writes, even one that forgot to check. Reads and sync() are not
// restricted: every node projects every partition.
//
// Lifecycle: constructed over an open Log and ProjectionStore, which must outlive it; the
// ownership is fixed at construction.
//
// Thread-safety: all methods may be called concurrently. Each partition has one mutex, held from
// the first projection read to the last apply of a command; commands of different partitions run
// in parallel (their appends share group commits). Callers are blocking-pool threads, never io
// threads: run() waits for an fsync.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "api/app/ownership.h"
#include "ledger/log.h"
#include "ledger/result.h"
#include "projections/store.h"

namespace sechex::api {

class CommandPath {
 public:
  // Owns every partition of `log`.
  CommandPath(ledger::Log& log, projections::ProjectionStore& projections);
  // `ownership` must be resolved against log.partition_count(); partitions beyond its count are
  // treated as not owned.
  CommandPath(ledger::Log& log, projections::ProjectionStore& projections,
              PartitionOwnership ownership);

  // Decides with the partition held, appends what was decided and applies it. `decide` returns
  // the envelopes to append (possibly none: a refusal that records nothing); its error is
  // returned unchanged and nothing is appended. On success, the appended records with their
  // positions and hashes. An append error means nothing of this command was stored.
  // OwnershipErrc::not_owner (without calling `decide`) for a partition this node does not own.
  //
  // If applying after a successful append fails, the records are durable (and returned), the
  // projections lag, and the next command of the partition (or sync()) applies them first.
  using Decide = std::function<Result<std::vector<ledger::Bytes>>()>;
  Result<std::vector<ledger::Record>> run(ledger::Partition partition, const Decide& decide);
  // The same with the append done by `append` instead of Log::append (e.g. KafkaLog's
  // append_consumed, which commits input offsets with the records). It must append exactly the
  // given events to `partition`, atomically.
  using Append =
      std::function<Result<ledger::AppendResult>(std::span<const ledger::ByteView> events)>;
  Result<std::vector<ledger::Record>> run(ledger::Partition partition, const Decide& decide,
                                          const Append& append);

  // For an append made by other means than an event list (KeyStore::erase writes SubjectErased
  // with the key's destruction in one durable write): holds the partition, claims it, applies
  // what the log holds, runs `action`, then applies what it appended before the partition's
  // next command decides. OwnershipErrc::not_owner as for run().
  Result<void> run_locked(ledger::Partition partition, const std::function<Result<void>()>& action);

  // Applies whatever the log holds beyond the projections' position for one partition, or for
  // all of them (start-up catch-up). Returns the number of records applied.
  Result<std::uint64_t> sync(ledger::Partition partition);
  Result<std::uint64_t> sync_all();
  // The same for a follower of a partition another node writes: it reads the log without
  // holding the partition, so a slow read (a Kafka leader moving) never stalls this node's
  // commands, and applies under the partition only if no command moved the projections
  // meanwhile (it then reads again from the new position).
  Result<std::uint64_t> follow(ledger::Partition partition);

  // Errors from applying after a durable append (see run()), for metrics and alerts.
  std::uint64_t apply_failures() const;

  // Called with the records of every successful run() (events this node chained, each once in
  // the cluster), under the partition's lock: it must be quick and must not call back. Set it
  // before the first command (it is not synchronised with run()).
  using Observer = std::function<void(std::span<const ledger::Record>)>;
  void set_observer(Observer observer) { observer_ = std::move(observer); }

  ledger::Partition partition_for(std::string_view subject) const;
  const PartitionOwnership& ownership() const { return ownership_; }
  ledger::Log& log() { return log_; }
  projections::ProjectionStore& projections() { return projections_; }

 private:
  // `claimed`: log_.claim(partition) succeeded, so head() is cheap and final.
  Result<std::uint64_t> sync_locked(ledger::Partition partition, bool claimed);

  ledger::Log& log_;
  projections::ProjectionStore& projections_;
  const PartitionOwnership ownership_;
  std::vector<std::unique_ptr<std::mutex>> locks_;
  std::atomic<std::uint64_t> apply_failures_{0};
  Observer observer_;
};

}  // namespace sechex::api
