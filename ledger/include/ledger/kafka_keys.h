// KafkaKeys: the key store's backend in Kafka mode (key_store.h, ARCHITECTURE.md "Kafka mode":
// data keys live in a compacted topic).
//
// Format, in the topic <topic>.keys of a KafkaLog (one partition, compacted):
//   key "dek/<subject>"     value = the wrapped DEK (key_store.h); a null value (tombstone)
//                           once the subject is erased, so compaction deletes the key material
//                           from the brokers (within max.compaction.lag.ms, 1 day).
//   key "erased/<subject>"  value "erased": survives compaction, so "erased" is never confused
//                           with "never had a key" once the tombstone itself is cleaned away.
// The meta checks (key_store.h: the KEK check, the lookup-key check) are the first record of
// their name ("kek_check", "lookup_key_check") in <topic>.meta (KafkaLog::meta_first): the
// first node to start stores it, every later one, on any machine, compares with it.
//
// Writes go through the transactional writer of the subject's partition: a new key is its own
// small transaction, an erasure is one transaction with its SubjectErased record. So only the
// partition's owner writes a subject's keys, and an erasure is all or nothing.
//
// Reads come from an in-memory copy of the topic, brought up to date before answering when
//   - a writer of this process became ready since the last read (it fenced another writer,
//     whose last keys must be seen before deciding anything), or
//   - the partition is not written by this process and the subject is unknown, or the copy is
//     older than `max_staleness` (another node may have created or erased it).
// For partitions this process writes, nothing else can change their subjects' keys, so the
// copy is exact without a round trip.
//
// Limits: the copy holds every subject's wrapped key in memory (~100 bytes each).
//
// Lifecycle: the KafkaLog must outlive it. Thread-safety: all methods may be called
// concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "ledger/kafka_log.h"
#include "ledger/key_store.h"

namespace sechex::ledger {

class KafkaKeys final : public KeyBackend {
 public:
  explicit KafkaKeys(KafkaLog& log, bool read_only = false,
                     std::chrono::milliseconds max_staleness = std::chrono::seconds(1));

  bool read_only() const override { return read_only_; }
  std::uint32_t partition_count() const override { return log_.partition_count(); }
  Result<Stored> get(std::string_view subject) override;
  Result<void> put(std::string_view subject, std::string_view wrapped) override;
  Result<AppendResult> erase(std::string_view subject, ByteView erased_event) override;
  Result<std::optional<std::string>> meta_check(std::string_view name,
                                                std::string_view candidate) override;
  // No I/O: request threads call it on every key lookup. See refresh_if_stale().
  std::uint64_t erasure_epoch() override { return epoch_.load(std::memory_order_acquire); }
  // Brings a copy older than max_staleness up to date. A long-running process calls it
  // periodically off the request path (ledgerd's follower thread), so that keys it caches
  // unwrapped are dropped within about that bound after another node erases their subject.
  Result<void> refresh_if_stale();

 private:
  std::optional<Stored> lookup(const std::string& subject) const;
  // Reads the topic up to its end, unless another caller did so after `needed_after` with the
  // same writer generation.
  Result<void> refresh(std::chrono::steady_clock::time_point needed_after);
  void apply(std::string_view key, const std::string* value);

  KafkaLog& log_;
  const bool read_only_;
  const std::chrono::milliseconds max_staleness_;

  std::mutex refresh_mu_;  // one reader of the topic at a time
  mutable std::shared_mutex mu_;
  std::int64_t next_offset_ = 0;
  std::uint64_t refreshed_generation_ = 0;
  bool refreshed_once_ = false;
  std::chrono::steady_clock::time_point refreshed_at_{};
  std::unordered_map<std::string, std::string> deks_;
  std::unordered_set<std::string> erased_;
  std::atomic<std::uint64_t> epoch_{0};
};

}  // namespace sechex::ledger
