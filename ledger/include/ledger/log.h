// Log: what the ledger's users (the command path, projections, the API, ledgerctl) need from a
// hash-chained, append-only log, whatever holds it: LogStore (embedded RocksDB, the default) or
// the Kafka log (one machine is not enough).
//
// Every implementation keeps the same guarantees: per partition, records seq = 0, 1, 2, ... with
// no gaps, each hash linking to the previous one (record.h); append() returns only after its
// records are durable, and a failed append stored none of them; readers never see a record that
// was not acknowledged (or that is not about to be).
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/record.h"
#include "ledger/result.h"
#include "ledger/types.h"

namespace sechex::ledger {

struct Head {
  Seq next;     // number of records in the partition (= seq of the next append)
  Hash hash{};  // hash of the last record, or the anchor (zeros) when empty
};

struct AppendResult {
  Seq first;
  Seq last;
  Hash head{};
  std::vector<Hash> hashes;  // of each appended record, seq first..last
};

// Where retention cut a partition: records below `below` are stubs (record.h) whose payload
// is gone; every pruned record's envelope time was before `before_micros`.
struct RetentionCut {
  Seq below{0};
  std::int64_t before_micros = 0;
};

// What one prune() call removed.
struct PruneResult {
  std::uint64_t pruned = 0;       // records whose payloads went by this call
  std::uint64_t bytes_freed = 0;  // payload bytes no longer stored
};

// Counters for metrics; read with relaxed loads.
struct LogStats {
  std::uint64_t appends = 0;
  std::uint64_t events = 0;
  std::uint64_t commit_groups = 0;
  std::uint64_t checkpoints = 0;
};

// The partition a subject's events go to: first 4 bytes of SHA-256(subject), big-endian,
// mod partitions. Stable across builds and languages.
Partition partition_for(std::string_view subject, std::uint32_t partitions);

class Log {
 public:
  virtual ~Log() = default;

  virtual std::uint32_t partition_count() const = 0;
  virtual const std::string& ledger_id() const = 0;

  // Appends `events` (each a FlatBuffers Envelope, checked against the schema) to one partition
  // in order; returns once durable. Errc::invalid_argument for an empty batch, an unknown
  // partition or an event that fails schema verification (nothing is written then).
  virtual Result<AppendResult> append(Partition partition, std::span<const ByteView> events) = 0;

  // Makes this process the partition's writer before a command reads state to decide, so that
  // no other writer can append behind its back (Kafka: fencing). No-op for the embedded log.
  virtual Result<void> claim(Partition partition) {
    (void)partition;
    return boost::outcome_v2::success();
  }

  virtual Head head(Partition partition) const = 0;

  // Up to `max` records with seq in [from, to); fewer at the end of the partition.
  virtual Result<std::vector<Record>> read_range(Partition partition, Seq from, Seq to,
                                                 std::size_t max = SIZE_MAX) const = 0;
  // Tail: waits until the partition has records at or after `from` (or `timeout`), then
  // returns up to `max` of them.
  virtual Result<std::vector<Record>> wait_for(Partition partition, Seq from,
                                               std::chrono::milliseconds timeout,
                                               std::size_t max = 1024) const = 0;

  // Writes a signed checkpoint for every partition that is due (or all with `force`).
  virtual Result<std::size_t> checkpoint_due(bool force = false) = 0;
  // The newest checkpoint of a partition as signed-note text, or nullopt when none yet.
  virtual Result<std::optional<std::string>> latest_checkpoint(Partition partition) const = 0;

  virtual LogStats stats() const = 0;

  // Retention: where the partition's payloads start (seq 0 and time 0 when nothing was pruned).
  // Readers that start below the cut get Errc::pruned and should say "pruned before ...".
  virtual RetentionCut retention_cut(Partition partition) const {
    (void)partition;
    return {};
  }

  // Retention (retention.h): removes the payloads of records [cut, below) of `partition`,
  // keeping what verification and proofs need (each record's hash, event digest and Merkle
  // leaf), then moves the cut; `before_micros` is the time every pruned record precedes.
  // Errc::invalid_argument when `below` is past the head; Errc::not_supported for a log that
  // cannot prune. One prune at a time per log.
  virtual Result<PruneResult> prune(Partition partition, Seq below, std::int64_t before_micros) {
    (void)partition;
    (void)below;
    (void)before_micros;
    return Errc::not_supported;
  }

  // The stored hash of one record, pruned or not (Errc::not_found past the head).
  virtual Result<Hash> record_hash(Partition partition, Seq seq) const {
    SECHEX_TRY(auto records, read_range(partition, seq, Seq{seq.value + 1}, 1));
    if (records.empty()) return Errc::not_found;
    return records.front().hash;
  }

  // Merkle tree (merkle.h) over the partition's records: the perfect subtree (level, index),
  // level 0 being a record's leaf hash. Errc::not_found past the tree; Errc::not_supported
  // for a log that keeps no tree.
  virtual Result<Hash> tree_node(Partition partition, unsigned level, std::uint64_t index) const {
    (void)partition;
    (void)level;
    (void)index;
    return Errc::not_supported;
  }
  // The signed checkpoint of exactly `size` records, or nullopt when none was written at it.
  virtual Result<std::optional<std::string>> checkpoint_at(Partition partition,
                                                           std::uint64_t size) const {
    (void)partition;
    (void)size;
    return Errc::not_supported;
  }
};

}  // namespace sechex::ledger
