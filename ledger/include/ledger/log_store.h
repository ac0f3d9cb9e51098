// LogStore: the embedded, hash-chained, append-only event log on RocksDB.
//
// On-disk layout (one RocksDB database under LogOptions::path):
//   column family `log`          key be32(partition) || be64(seq) -> record (see record.h)
//   column family `meta`         "format"      -> "sechex-ledger/v1"
//                                "ledger_id"   -> 32 hex chars, random at creation
//                                "partitions"  -> decimal partition count P (fixed at creation)
//                                "head/" be32(p) -> be64(next seq) || hash of the last record
//   column family `checkpoints`  key be32(partition) || be64(size) -> C2SP signed note text
//   column family `keys`         subject -> wrapped data key (see key_store.h)
//   column family `merkle`       be32(partition) || u8(level) || be64(index) -> 32-byte hash of
//                                every perfect subtree of level >= kMerkleStoredLevel of the
//                                partition's RFC 6962 tree (merkle.h); lower nodes are hashed
//                                from the records (at most 32 leaves, one range read) when a
//                                proof needs them, like the bottom rows of a C2SP tlog tile
//   meta "tree"                  "rfc6962/v2" once `merkle` covers every record (v1: stores
//                                that kept nodes from level 4 up; they hold every node v2
//                                reads, and a writer re-marks them v2 so that builds expecting
//                                the lower levels refuse the store instead of missing nodes)
//   meta "cut/" be32(p)          be64(seq) || be64(time micros): the retention cut (log.h)
// The `head/` entry is written in the same WriteBatch as the records it covers, so a log whose
// last records were removed (a truncated tail) disagrees with it and `verify` reports it.
//
// Lifecycle: open() restores every partition's chain head and re-checks the records written
// since the partition's latest checkpoint; a record that does not link makes a read-write open
// fail (the writer never appends onto a broken chain) and is described in `*fault_out`.
// Destroying the store waits for in-flight appends.
//
// Thread-safety: all methods are safe to call concurrently. append() is the only writer path:
// concurrent callers form a group; one leader assigns seqs, computes hashes in partition order,
// writes one WriteBatch with sync=true and wakes the others (group commit, as in LevelDB's
// DBImpl::Write). An append returns only after its records are durable. If a durable write
// fails, the store refuses every later append (Errc::writer_failed): in-memory heads may no
// longer match the disk, and only a reopen can tell.
//
// Merkle tree: every append writes the stored subtree nodes its records complete in the same
// WriteBatch (amortised 1/8 of a 32-byte value per record), so the tree never lags the chain, and
// checkpoints sign its root. A store written before the tree existed gets it built on its first
// read-write open; checkpoints signed before that keep their legacy form (checkpoint.h).
//
// Retention: prune() replaces the payloads below a cut by stubs (record.h), in synced batches
// that each move the stored cut, so a crash leaves every record below the cut a stub and every
// record above it whole.
//
// Read-only mode opens the database as a RocksDB secondary instance, so `ledgerctl` can read
// while `ledgerd` is running on the same directory; catch_up() pulls in newer writes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ledger/clock.h"
#include "ledger/log.h"
#include "ledger/record.h"
#include "ledger/result.h"
#include "ledger/types.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace sechex::ledger {

class CheckpointSigner;

struct CheckpointPolicy {
  std::uint64_t every_records = 1000;                         // 0 = never by count
  std::chrono::microseconds every{std::chrono::seconds(60)};  // 0 = never by time
};

struct LogOptions {
  std::string path;
  enum class Mode { read_write, read_only } mode = Mode::read_write;
  bool create_if_missing = false;
  std::uint32_t partitions = 8;  // used only when creating
  CheckpointPolicy checkpoints;
  // Signs checkpoints; may be null (no checkpoints written). Must outlive the store.
  const CheckpointSigner* signer = nullptr;
  const Clock* clock = &SystemClock::instance();
  // Scratch directory for the secondary instance in read-only mode; empty = a fresh temp dir.
  std::string secondary_path;
};

// A fault found while walking the chain: where and why.
struct Fault {
  Position position;
  std::string reason;  // stable snake_case identifier, e.g. "event_hash_mismatch"
  std::string detail;  // human-readable explanation
};

// The lowest tree level whose nodes are stored: one node per 64 records (and the levels above,
// 1/32 of a value per record in all). Storing every node cost 2.9x raw writes at batch 512,
// from level 4 up 1.4x at batch 64 against 1.1x without a tree; from level 6 up the appends
// are within the runs' spread, and a proof rehashes at most 63 leaves below it
// (bench/README.md "Compliance").
inline constexpr unsigned kMerkleStoredLevel = 6;

// Key of a Merkle node in the `merkle` column family (layout above).
std::string merkle_node_key(Partition partition, unsigned level, std::uint64_t index);

class LogStore final : public Log {
 public:
  static Result<std::unique_ptr<LogStore>> open(const LogOptions& options,
                                                Fault* fault_out = nullptr);
  ~LogStore();
  LogStore(const LogStore&) = delete;
  LogStore& operator=(const LogStore&) = delete;

  std::uint32_t partition_count() const override;
  const std::string& ledger_id() const override;
  bool read_only() const;

  // Log::append. (Plain `append` of Log, and this overload for the key store.)
  Result<AppendResult> append(Partition partition, std::span<const ByteView> events) override {
    return append(partition, events, {});
  }
  // The same, with `key_writes` written to the `keys` column family in the same WriteBatch, so
  // that recording an erasure and destroying the data key happen atomically (KeyStore::erase).
  struct KeyWrite {
    std::string subject;
    std::string value;
  };
  Result<AppendResult> append(Partition partition, std::span<const ByteView> events,
                              std::span<const KeyWrite> key_writes);

  // Writes a signed checkpoint for every partition whose newest record is not yet covered and
  // whose previous checkpoint is older than the policy's time interval (or `force`).
  Result<std::size_t> checkpoint_due(bool force = false) override;

  Head head(Partition partition) const override;

  // Up to `max` records with seq in [from, to); fewer at the end of the partition.
  Result<std::vector<Record>> read_range(Partition partition, Seq from, Seq to,
                                         std::size_t max = SIZE_MAX) const override;
  // Records whose envelope time lies in [from_micros, to_micros), in seq order.
  Result<std::vector<Record>> read_by_time(Partition partition, std::int64_t from_micros,
                                           std::int64_t to_micros) const;
  // Tail: waits until the partition has records at or after `from` (or `timeout`), then
  // returns up to `max` of them. In read-only mode it polls the primary for new writes.
  Result<std::vector<Record>> wait_for(Partition partition, Seq from,
                                       std::chrono::milliseconds timeout,
                                       std::size_t max = 1024) const override;

  // Read-only mode: pull in writes the primary made since open. No-op in read-write mode.
  Result<void> catch_up();

  // All checkpoints of a partition, oldest first, as stored signed-note text.
  Result<std::vector<std::string>> checkpoints(Partition partition) const;
  // The newest checkpoint of a partition (one seek, for the API), or nullopt when none yet.
  Result<std::optional<std::string>> latest_checkpoint(Partition partition) const override;

  LogStats stats() const override;

  RetentionCut retention_cut(Partition partition) const override;
  Result<Hash> record_hash(Partition partition, Seq seq) const override;
  Result<Hash> tree_node(Partition partition, unsigned level, std::uint64_t index) const override;
  Result<std::optional<std::string>> checkpoint_at(Partition partition,
                                                   std::uint64_t size) const override;
  // False only for a read-only open of a store written before the tree existed.
  bool has_tree() const;

  // Retention: turns the records of `partition` in [current cut, below) into stubs and moves
  // the cut to `below` (never backwards: a lower `below` is a no-op). `before_micros` is the
  // time every pruned record precedes. Errc::invalid_argument when `below` is past the head.
  // Safe to run while appends go on; one prune at a time.
  Result<PruneResult> prune(Partition partition, Seq below, std::int64_t before_micros) override;

  // For components that keep their own column families in the same database (key store,
  // verifier, tests). Not for application code.
  rocksdb::DB* raw_db() const;
  rocksdb::ColumnFamilyHandle* cf_log() const;
  rocksdb::ColumnFamilyHandle* cf_meta() const;
  rocksdb::ColumnFamilyHandle* cf_checkpoints() const;
  rocksdb::ColumnFamilyHandle* cf_keys() const;
  rocksdb::ColumnFamilyHandle* cf_merkle() const;  // null when has_tree() is false

  struct Impl;

 private:
  explicit LogStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sechex::ledger
