// KafkaLog: the hash-chained log on an Apache Kafka cluster (ARCHITECTURE.md, "Kafka mode"),
// through librdkafka. Same guarantees as LogStore (log.h): per partition, seq = 0, 1, 2, ...
// with no gaps, each hash linking to the previous one; append() returns only once its
// transaction has committed; a failed append is not visible to read_committed readers.
//
// Topics (created by open() when missing and `create_if_missing`):
//   <topic>               P partitions (ledger partition p = Kafka partition p), cleanup.policy
//                         delete, retention.ms -1 (the ledger prunes itself: prune() below
//                         deletes records under the retention cut with DeleteRecords). One
//                         Kafka record per ledger record:
//                           key     = the envelope's subject
//                           value   = the record bytes of record.h (format, partition, seq,
//                                     hash, event), so a dump of the topic verifies on its own
//                           headers = "seq" (be64) and "hash" (32 bytes), equal to the value's
//                         The chain's seq is the ledger's own, never the Kafka offset:
//                         transaction markers and aborted records leave gaps in offsets.
//   <topic>.meta          1 partition, never compacted or expired. The first record with key
//                         "ledger" is authoritative (value "sechex-ledger/v1\nledger_id=<32
//                         hex>\npartitions=<P>\n"); the first open() writes it. Two concurrent
//                         first opens may both write one: everybody takes the lowest offset.
//   <topic>.checkpoints   1 partition, compacted, key = be32(partition) || be64(size), value =
//                         the C2SP signed note (checkpoint.h) committing to the chain head and
//                         the Merkle root (merkle.h) at that size, header "tree" = the compact
//                         range at that size (its perfect subtree roots, largest first, 32 bytes
//                         each), from which a new writer continues the tree. Written in the same
//                         Kafka transaction as the records it covers, so it never covers an
//                         uncommitted record. One key per checkpoint, so compaction keeps them
//                         all (proofs against older checkpoints); ledgers written before the
//                         tree keyed them be32(partition) alone (only the newest kept, 3-line
//                         notes without a root), which are still read.
//                         Also key "cut" || be32(partition): the retention cut, value
//                         be64(below) || be64(before micros) || be64(offset in <topic>.stubs of
//                         stub chunk k) for k = 0, 1, ... (the newest with the highest `below`
//                         counts).
//   <topic>.stubs         1 partition, compacted, created by the first prune(): key
//                         be32(partition) || be64(k), value = the stubs (record.h's pruned form:
//                         seq, hash, event digest, Merkle leaf) of seqs [4096 k, ...) below the
//                         cut, rewritten whole when a later cut extends the chunk.
//   <topic>.keys          1 partition, compacted (max.compaction.lag.ms 1 day): wrapped data
//                         keys and erasure markers (kafka_keys.h). Written only in transactions
//                         of the subject's partition writer, so only that partition's owner
//                         writes them and an erasure commits with its SubjectErased record.
//
// Merkle tree: each writer keeps the compact range of its partition's RFC 6962 tree (leaf =
// the record bytes, as in LogStore), moved only when a transaction commits, and recovered at
// writer start from the latest checkpoint's "tree" header plus the records after it (from seq 0,
// once, when no checkpoint carries a tree). Nothing else of the tree is stored in Kafka:
// tree_node() computes nodes from the records for proofs (see there).
//
// Writers: one transactional producer per partition, transactional.id =
// "<transactional_id_prefix>ledger-<p>", idempotent, acks=all, message.timeout.ms <
// transaction.timeout.ms. It is created on the partition's first append (never by open() or
// by readers: creating it fences any other writer of the partition). After
// init_transactions() it reads the committed tail with a read_committed consumer to recover
// (next seq, head hash). append() is serialised per partition: begin, produce all records,
// commit; the in-memory head moves only after the commit succeeded.
//   - abortable error: abort_transaction(), the mapped error (mostly Errc::io_error), head
//     unchanged; the producer is recreated (and the tail re-recovered) on the next append,
//     since some aborted idempotent states keep failing otherwise.
//   - fenced (another writer took the transactional.id): Errc::writer_failed, and every later
//     append and checkpoint of that partition fails with it too: the chain never forks.
//   - fatal (not fenced) or an outcome that is unknown (commit timed out): the producer is
//     destroyed, a new one is created and the tail re-recovered; if the tail then ends with
//     exactly the records of this append, it is acknowledged, otherwise Errc::io_error (and
//     the records are not there). If recovery itself fails (cluster unreachable) the outcome
//     is unknown to the caller: Errc::io_error, and the next append recovers first.
//
// Readers: read_range() and wait_for() keep one read_committed consumer per partition,
// created by its first read, explicitly assigned (no consumer group offsets), with the seq and
// Kafka offset it is at. Projection catch-up and tails read on from where the previous read
// ended: they continue from the consumer's prefetched records instead of paying a consumer
// start and a fetch round trip per batch. A read further on skips up to its `from` (a seek
// would cost a fetch round trip), unless the seq -> offset index knows a start thousands of
// seqs past the consumer; a read further back seeks. The index is sparse and in memory (one
// entry per ~256 seqs, filled by appends and reads); a seq below its first entry is found by
// scanning from the partition's start, so the first random read of an old seq in a fresh
// process costs a scan of the partition up to it.
//   - The end of a partition: librdkafka reports an EOF once per end reached, never again to a
//     consumer already there, so a read never waits for one. With nothing queued, read_range()
//     compares the consumer's position (past markers too) with the last stable offset, asked
//     of the broker through a separate client that never fetches (on the reader's connection
//     the question would queue behind its long poll): one round trip per read that reaches the
//     end, and every record committed when the read began is returned. Records of this log's
//     own appends are waited for even when the last stable offset does not cover them yet (the
//     coordinator writes the commit markers after commit_transaction() returned), so a read
//     after an append returned sees it.
//   - wait_for() returns as soon as it has a record at or after `from`, else at `timeout`.
//   - A reader left at the end of its partition or past the `to` it was asked for is paused
//     until its next read: an idle reader would otherwise long-poll the broker forever, and a
//     point read would prefetch up to librdkafka's queued.max.messages.kbytes it never uses.
//     The next read resumes it with a fetch round trip.
//   - Errors: transient ones are waited out (up to request_timeout without progress); a
//     consumer that hit a fatal error is destroyed and the next read creates a new one; after
//     any other error the next read seeks.
// Reads of one partition are serialised on its reader; partitions are read in parallel. The
// readers' clients live until ~KafkaLog, which destroys them (joining their threads); no other
// threads are involved.
// head() is the writer's state when this process writes the partition, else recovered from
// the tail on each call (a watermark query and a short-lived consumer, like a writer's
// recovery, which must be exact and so never relies on a reader's state).
//
// Errors: librdkafka errors map to Errc (errc_from_kafka); the Kafka error text of the last
// failure is kept in last_error() and passed to KafkaLogOptions::log.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ledger/clock.h"
#include "ledger/log.h"
#include "ledger/log_store.h"  // CheckpointPolicy
#include "ledger/result.h"
#include "ledger/types.h"

// librdkafka types, declared here so users of this header need not include rdkafka.h.
struct rd_kafka_conf_s;
struct rd_kafka_consumer_group_metadata_s;

namespace sechex::ledger {

class CheckpointSigner;

// Offsets of an input topic partition consumed by a transaction: committed for `group` in the
// same transaction as what it produced (send_offsets_to_transaction), so input is processed
// exactly once.
struct ConsumedOffsets {
  const rd_kafka_consumer_group_metadata_s* group_metadata = nullptr;
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t next_offset = 0;  // the first offset not yet processed
};

struct KafkaLogOptions {
  std::string brokers;  // bootstrap.servers, e.g. "127.0.0.1:9092,127.0.0.1:9093"
  std::string topic = "ledger.events";
  // Used only when creating the topic; an existing topic's partition count is used as is (and
  // must equal the count recorded in <topic>.meta).
  std::uint32_t partitions = 8;
  std::int16_t replication_factor = -1;  // -1: the broker's default.replication.factor
  bool create_if_missing = true;         // else a missing topic is Errc::store_missing
  // A read-only log never creates producers (ledgerctl next to a running ledgerd): append()
  // and checkpoint_due() fail with Errc::invalid_argument / return 0.
  bool read_only = false;
  std::string transactional_id_prefix;  // transactional.id = prefix + "ledger-" + partition
  CheckpointPolicy checkpoints;
  const CheckpointSigner* signer = nullptr;  // may be null: no checkpoints. Must outlive the log.
  const Clock* clock = &SystemClock::instance();
  // Bound on each blocking Kafka call: metadata, admin, init/commit/abort, idle reads.
  std::chrono::milliseconds request_timeout{30'000};
  std::chrono::milliseconds transaction_timeout{60'000};  // transaction.timeout.ms
  std::chrono::milliseconds message_timeout{30'000};      // must be < transaction_timeout
  // Extra librdkafka settings for every client (security.protocol, sasl.*, debug, ...).
  std::vector<std::pair<std::string, std::string>> client_config;
  // Called with a line of text for every Kafka error the log handles (may be empty).
  std::function<void(const std::string&)> log;
};

// The transactional id prefix every writer of `topic` uses unless told otherwise: "" for the
// default topic "ledger.events", else "<topic>.", so that ledgers sharing a cluster never fence
// each other while ledgerd and ledgerctl writing the same topic always do (one chain, one
// writer). One function so that the programs cannot disagree.
std::string default_transactional_id_prefix(const std::string& topic);
// "KEY=VALUE" of a --kafka-config flag (ledgerd and ledgerctl), or nullopt when malformed (no
// '=' or an empty key). librdkafka itself checks the key and value when the client is made.
std::optional<std::pair<std::string, std::string>> parse_kafka_setting(std::string_view kv);

// Maps a librdkafka error code (rd_kafka_resp_err_t, as int) to the ledger's code:
// fencing -> writer_failed, __DESTROY -> closed, unknown topic/partition -> store_missing,
// invalid arguments/config -> invalid_argument, bad messages -> corruption, unsupported
// versions -> unsupported_version, everything else (transport, timeouts, leaders, ...) ->
// io_error. 0 maps to Errc::ok.
Errc errc_from_kafka(int rd_kafka_resp_err);
// True for the codes that mean another writer owns the transactional.id.
bool kafka_error_is_fencing(int rd_kafka_resp_err);

class KafkaLog final : public Log {
 public:
  static Result<std::unique_ptr<KafkaLog>> open(const KafkaLogOptions& options);
  ~KafkaLog() override;
  KafkaLog(const KafkaLog&) = delete;
  KafkaLog& operator=(const KafkaLog&) = delete;

  std::uint32_t partition_count() const override;
  const std::string& ledger_id() const override;
  const std::string& topic() const;
  bool read_only() const;

  Result<AppendResult> append(Partition partition, std::span<const ByteView> events) override;
  // The writer's head if this process writes `partition`, else the committed tail (zeros and
  // 0 when it cannot be read: see last_error()).
  Head head(Partition partition) const override;
  Result<std::vector<Record>> read_range(Partition partition, Seq from, Seq to,
                                         std::size_t max = SIZE_MAX) const override;
  Result<std::vector<Record>> wait_for(Partition partition, Seq from,
                                       std::chrono::milliseconds timeout,
                                       std::size_t max = 1024) const override;
  // Only partitions this process writes (whose producer exists and is not fenced): creating
  // a producer for another partition would fence its owner.
  Result<std::size_t> checkpoint_due(bool force = false) override;
  // Another writer's checkpoints are seen up to a second late (the checkpoints topic is read
  // again at most once a second for these; this process's own are seen as written). A size
  // not seen yet makes checkpoint_at() read the topic before it answers none.
  Result<std::optional<std::string>> latest_checkpoint(Partition partition) const override;
  Result<std::optional<std::string>> checkpoint_at(Partition partition,
                                                   std::uint64_t size) const override;
  // Every checkpoint of a partition still in the topic, oldest first (one per size). Reads the
  // whole checkpoints topic: for tools, not for request paths.
  Result<std::vector<std::string>> checkpoints(Partition partition) const;
  // Computed from the records (kept nowhere in Kafka): a node below level 8 hashes its at most
  // 256 records read in one range; nodes from level 8 up are cached in memory once computed
  // (about 80 bytes per 256 records), so the first proof over a long partition reads it all.
  Result<Hash> tree_node(Partition partition, unsigned level, std::uint64_t index) const override;
  LogStats stats() const override;

  // Retention (see the stubs topic above). prune() writes the stubs of [cut, below), then the
  // new cut, each in a transaction of the partition's writer (so, like append, only its owner
  // may call it), then deletes the records below the cut with DeleteRecords. Re-running it
  // finishes a run that stopped after its cut (the deletion is idempotent). Other processes
  // learn the cut at open(), from refresh_retention(), or at once when a read finds the gap.
  Result<PruneResult> prune(Partition partition, Seq below, std::int64_t before_micros) override;
  // The cut as this process last saw it: never waits on the cluster (request paths call it).
  RetentionCut retention_cut(Partition partition) const override;
  // Reads cuts (and checkpoints) written since; ledgerd's follower calls it every second.
  Result<void> refresh_retention() const;
  Result<Hash> record_hash(Partition partition, Seq seq) const override;

  // Records of the keys topic (kafka_keys.h). `value` nullopt is a tombstone.
  struct KeyRecord {
    std::string key;
    std::optional<std::string> value;
  };
  // append() with `keys` written to the keys topic in the same transaction: all or nothing.
  Result<AppendResult> append_with_keys(Partition partition, std::span<const ByteView> events,
                                        std::span<const KeyRecord> keys);
  // Writes `keys` in a transaction of `partition`'s writer, creating the writer if needed (so,
  // like append, only the partition's owner may call it).
  Result<void> write_keys(Partition partition, std::span<const KeyRecord> keys);
  // Calls `on` for each committed record of the keys topic from `offset` (0 = the start) to
  // its current end; returns the offset to continue from next time.
  using OnKeyRecord = std::function<void(std::string_view key, const std::string* value)>;
  Result<std::int64_t> read_keys(std::int64_t offset, const OnKeyRecord& on) const;
  // The first value stored under `key` in <topic>.meta; when there is none it stores
  // `value_if_absent` (unless null or read-only) and returns whatever is first after that
  // (another process may have won the race). nullopt: none stored and none written.
  Result<std::optional<std::string>> meta_first(std::string_view key,
                                                const std::string* value_if_absent);

  // Log::claim: creates the partition's writer now (init_transactions fences any other writer
  // and settles its open transaction), so state read after it is final until we write.
  Result<void> claim(Partition partition) override;
  // For shutdown: from now on, blocking reads (read_range, wait_for, head of a partition this
  // process does not write, the key topic) give up within about a second with Errc::closed,
  // also while the cluster is unreachable. Appends are not affected.
  void interrupt();
  // True while this process is `partition`'s ready, unfenced writer.
  bool writes(Partition partition) const;
  // Moves each time a writer becomes ready (after fencing whoever wrote before): state cached
  // from the cluster before that may miss the previous writer's last transactions.
  std::uint64_t writer_generation() const;

  // Exactly-once processing of an input topic (kafka_ingest.h). A record produced alongside:
  struct SideRecord {
    std::string topic;
    std::int32_t partition = 0;
    std::string key;
    std::string value;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  // One transaction of `partition`'s writer: `events` chained (may be empty; then the result
  // has no hashes and first = last + 1 = the head's next seq), `side` records produced, and
  // `consumed` committed. All or nothing. On an error other than fencing, the caller must
  // rewind its input to the group's committed offset: the transaction may or may not have
  // committed.
  Result<AppendResult> append_consumed(Partition partition, std::span<const ByteView> events,
                                       std::span<const SideRecord> side,
                                       const ConsumedOffsets& consumed);
  // A librdkafka configuration with this log's shared settings (brokers, client_config) plus
  // `extra`, for clients built elsewhere (kafka_ingest.cc). The caller owns it (rd_kafka_new
  // or rd_kafka_conf_destroy).
  Result<rd_kafka_conf_s*> client_conf(
      const std::string& client_id,
      const std::vector<std::pair<std::string, std::string>>& extra) const;
  // Creates `topic` with `partitions` partitions (replication as configured) unless it exists;
  // returns its partition count.
  Result<int> ensure_topic(const std::string& topic, int partitions,
                           const std::vector<std::pair<std::string, std::string>>& config);

  // The committed tail of `partition` read from Kafka now (ignores the writer's state).
  Result<Head> recover_head(Partition partition) const;
  // True once `partition`'s writer was fenced by another one; appends to it fail for good.
  bool fenced(Partition partition) const;
  // Text of the last Kafka error handled (for logs), or empty.
  std::string last_error() const;

  struct Impl;

 private:
  explicit KafkaLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sechex::ledger
