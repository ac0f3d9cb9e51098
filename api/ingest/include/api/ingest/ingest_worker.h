// IngestWorker: the chaining writer's side of `ledger.ingest` (ARCHITECTURE.md "Kafka mode").
// Applications produce events straight to the ingest topic; for each partition this node owns,
// the worker turns a batch of records into ledger events through the command path and commits
// the consumed offsets in the same Kafka transaction (ledger/kafka_ingest.h), exactly once.
//
// Record format (one event per record):
//   value    the JSON object of one event of POST /v1/events (API.md): subject, type, payload,
//            personal; checked by the same validator (parse_ingest_event)
//   key      anything (the subject is a good choice); not interpreted
//   headers  optional "application": recorded as the event's actor and application (default
//            "kafka-ingest"). Who may produce is Kafka's business (ACLs on the topic).
// The event's request id is "kafka:<topic>/<partition>@<offset>" of the record as produced (a
// forwarded record keeps its origin), so every chained event names the record it came from.
//
// Each record of ingest partition p ends in exactly one place, in the transaction that commits
// its offset:
//   - chained into ledger partition p, when partition_for(subject) == p;
//   - forwarded to ingest partition partition_for(subject) (header "sechex-hops" = 1), when a
//     producer used another partitioner (Kafka's default murmur2 does not know ours); a record
//     already forwarded once is dead-lettered instead, so nothing loops;
//   - dead-lettered to `<topic>.rejected` with headers "sechex-reason" (why) and
//     "sechex-source" (topic/partition@offset): malformed JSON, a failed check, an erased
//     subject. Nothing is silently dropped.
//
// Lifecycle: start() after the projections caught up; stop() (or destruction) before the
// command path, key store and log go. Thread-safety: stats() from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "api/app/commands.h"
#include "ledger/clock.h"
#include "ledger/kafka_ingest.h"
#include "ledger/kafka_log.h"
#include "ledger/key_store.h"

namespace sechex::api {

struct IngestWorkerOptions {
  std::string topic = "ledger.ingest";
  std::string group_id = "ledger-ingest";
  std::size_t max_batch = 512;
  std::function<void(const std::string&)> log;
};

struct IngestWorkerStats {
  std::uint64_t chained = 0;
  std::uint64_t forwarded = 0;
  std::uint64_t rejected = 0;
  std::uint64_t failed_batches = 0;  // retried from the committed offset
};

class IngestWorker {
 public:
  // Creates the ingest topic (as many partitions as the ledger) and its dead-letter topic when
  // missing and starts consuming the partitions `commands` owns. Errc::corruption when an
  // existing ingest topic's partition count differs from the ledger's.
  static Result<std::unique_ptr<IngestWorker>> start(ledger::KafkaLog& log, CommandPath& commands,
                                                     ledger::KeyStore& keys, const Clock& clock,
                                                     IngestWorkerOptions options);
  ~IngestWorker();
  void stop();
  IngestWorkerStats stats() const;

 private:
  IngestWorker(ledger::KafkaLog& log, CommandPath& commands, ledger::KeyStore& keys,
               const Clock& clock, IngestWorkerOptions options);
  Result<void> handle(ledger::Partition p, std::span<const ledger::IngestRecord> records,
                      const ledger::ConsumedOffsets& consumed);

  ledger::KafkaLog& log_;
  CommandPath& commands_;
  ledger::KeyStore& keys_;
  const Clock& clock_;
  IngestWorkerOptions opts_;
  std::string rejected_topic_;
  std::unique_ptr<ledger::KafkaIngest> ingest_;
  std::atomic<std::uint64_t> chained_{0}, forwarded_{0}, rejected_{0};
};

}  // namespace sechex::api
