// KafkaIngest: exactly-once consumption of `ledger.ingest` (ARCHITECTURE.md "Kafka mode"):
// applications produce raw events to an ingest topic; the chaining writer of each partition
// consumes them, chains them into the ledger and commits the consumed offsets in the same
// transaction (KafkaLog::append_consumed), so every ingest record is processed exactly once
// even across crashes and writer changes.
//
// The ingest topic has as many partitions as the ledger; ingest partition p is consumed by the
// node that owns ledger partition p. Offsets are those of the consumer group `group_id`,
// committed only through the writers' transactions (never auto-committed). The consumer is
// read_committed, with explicit assignment of the owned partitions.
//
// What a record becomes is the handler's business (api/ingest_worker.h: chained, forwarded to
// its subject's partition, or dead-lettered); it must either commit the batch through
// append_consumed with the given ConsumedOffsets, or fail. After a failure the partition is
// rewound to the group's committed offset and retried after `retry_pause`: the transaction may
// have committed or not, and the committed offset says which.
//
// Lifecycle: start() runs one thread until stop() or destruction; the KafkaLog must outlive
// it. Thread-safety: stop() and stats() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ledger/kafka_log.h"
#include "ledger/result.h"
#include "ledger/types.h"

namespace sechex::ledger {

struct IngestRecord {
  std::int64_t offset = 0;
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct KafkaIngestOptions {
  std::string topic = "ledger.ingest";
  std::string group_id = "ledger-ingest";
  std::vector<Partition> partitions;  // the ingest partitions this node consumes (it owns)
  std::size_t max_batch = 512;        // records per handler call (one transaction)
  std::chrono::milliseconds poll{50};
  std::chrono::milliseconds retry_pause{500};
  std::function<void(const std::string&)> log;  // one line per problem
};

struct KafkaIngestStats {
  std::uint64_t records = 0;         // handed to a handler call that succeeded
  std::uint64_t batches = 0;         // successful handler calls
  std::uint64_t failed_batches = 0;  // handler failures (each followed by a rewind)
};

class KafkaIngest {
 public:
  using Handler =
      std::function<Result<void>(Partition, std::span<const IngestRecord>, const ConsumedOffsets&)>;
  // Creates the consumer, reads the committed offsets and starts consuming. Errc::io_error (see
  // log.last_error()) when the cluster cannot be reached.
  static Result<std::unique_ptr<KafkaIngest>> start(KafkaLog& log, KafkaIngestOptions options,
                                                    Handler handler);
  ~KafkaIngest();
  KafkaIngest(const KafkaIngest&) = delete;
  KafkaIngest& operator=(const KafkaIngest&) = delete;

  void stop();
  KafkaIngestStats stats() const;

  struct Impl;

 private:
  explicit KafkaIngest(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sechex::ledger
