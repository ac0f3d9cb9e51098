// ProjectionStore: the RocksDB database (<data-dir>/projections) holding every projection's
// column families plus `positions` (be32 partition -> be64 next seq to apply).
//
// Lifecycle: open() with the projections to maintain; catch_up() brings every partition to the
// log's head (ledgerd does this before /readyz reports ready); apply() takes records right after
// they were appended. State and position commit in one WriteBatch, so after a crash the store
// resumes from its stored position and never applies a record twice or skips one.
//
// Thread-safety: apply() for one partition must not run concurrently with apply() for the same
// partition (ledgerd serialises commands per partition); different partitions may proceed in
// parallel. Reads are safe at any time. cleanup() may run on any thread at any time (ledgerd
// calls it from a timer thread, never on the request path).
//
// Expiry and cleanup. Entries of expiring column families (Projection::expired) stay on disk
// after they are over; readers compare them with their own clock, and cleanup(now) deletes them
// in batches. Two guarantees keep this correct:
//  - No lost or resurrected update: apply() holds a shared lock from its first read to its
//    write; each cleanup batch takes the lock exclusively, re-reads its candidates and deletes
//    only those still expired. So a delete never lands between an apply()'s read and its write,
//    and a value apply() just renewed (a refreshed session) is re-checked and kept. Apply
//    batches for different partitions still run in parallel with each other; cleanup pauses
//    them only for one batch (kCleanupBatch keys) at a time.
//  - Rebuild equivalence: apply() treats entries expired at the event's time as absent
//    (projection.h), so deleting them changes no later result provided every event applied
//    after cleanup(now) has a time >= now. Events carry their decision time and ledgerd applies
//    them right after deciding, so ledgerd passes its clock minus a margin for clock skew and
//    lag (kCleanupSafetyMargin). Then a cleaned live store and a store rebuilt from the log
//    have equal digest(t) for every t >= now: digest(t) compares live entries only.
// Cost of cleanup: one full iteration of every expiring column family per call (sequential
// reads; tens of thousands of entries per second on one core), plus one point read and delete
// per expired entry; memory is bounded by one batch.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "ledger/log.h"
#include "projections/projection.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace sechex::projections {

class ProjectionStore {
 public:
  static Result<std::unique_ptr<ProjectionStore>> open(
      const std::string& path, std::uint32_t partitions,
      std::vector<std::unique_ptr<Projection>> projections);
  ~ProjectionStore();

  ledger::Seq position(ledger::Partition p) const;
  // Applies `records` (consecutive, starting at position(p)) and stores the new position, in
  // one write. Errc::invalid_argument when the records do not start at the position.
  Result<void> apply(ledger::Partition p, std::span<const ledger::Record> records);
  // Applies everything the log has beyond the stored positions, `batch` records per write.
  Result<std::uint64_t> catch_up(const ledger::Log& log, std::size_t batch = 1024);
  // Records the log has that the projections have not applied yet (for /readyz and metrics).
  std::uint64_t lag(const ledger::Log& log) const;

  Result<std::optional<std::string>> get(std::string_view cf, std::string_view key) const;
  // Keys and values of one column family with keys starting with `prefix`, in key order.
  Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view cf,
                                                                std::string_view prefix,
                                                                std::size_t max = SIZE_MAX) const;
  // The same, starting at the first key >= `start` (cursor paging: pass the last key seen plus
  // a zero byte). `start` sorting before `prefix` means "from the beginning of the prefix".
  Result<std::vector<std::pair<std::string, std::string>>> scan_from(
      std::string_view cf, std::string_view prefix, std::string_view start,
      std::size_t max = SIZE_MAX) const;
  // Visits keys >= `start` with `prefix` in order, without copying, until `visit` returns false
  // or the prefix ends. The views are valid only during the call.
  Result<void> for_each(
      std::string_view cf, std::string_view prefix, std::string_view start,
      const std::function<bool(std::string_view key, std::string_view value)>& visit) const;
  // SHA-256 (hex) over every projection column family (name, then each key and value,
  // length-prefixed), in name order. Positions are excluded: two stores with equal state agree
  // even if one applied in more, smaller batches.
  Result<std::string> digest() const;
  // The same over live entries only: entries of expiring column families that are expired at
  // `now_micros` are skipped, so a store cleaned at any time <= now and an uncleaned rebuild
  // agree. Positions are excluded as above.
  Result<std::string> digest(std::int64_t now_micros) const;

  // Deletes up to `max_deletes` entries that are expired at `now_micros`, `kCleanupBatch` per
  // write; returns how many it deleted (fewer than max_deletes: nothing expired is left).
  // `now_micros` must not be later than the time of any event applied afterwards (see above).
  // With `by_family`, also how many of each column family (added to what it holds).
  Result<std::uint64_t> cleanup(std::int64_t now_micros, std::uint64_t max_deletes = UINT64_MAX,
                                std::map<std::string, std::uint64_t>* by_family = nullptr);
  static constexpr std::size_t kCleanupBatch = 256;

  // A consistent copy of the store at `path` in `to` (which must not exist), made while a
  // ledgerd may be using it: the store is opened as a RocksDB secondary instance (no lock
  // taken; its own files in `scratch`, removed afterwards), brought to the primary's latest
  // write, and every column family copied from that one state, positions included (apply()
  // writes them with the data). A node whose projections start below a retention cut is seeded
  // with such a copy (README "Retention and proofs on Kafka"); opened in its place, it catches
  // up from the positions it holds. Errc::invalid_argument when `to` exists.
  struct Copied {
    std::uint64_t entries = 0;
    std::map<std::uint32_t, std::uint64_t> positions;  // partition -> next seq, as copied
  };
  static Result<Copied> copy(const std::string& path, const std::string& to,
                             const std::string& scratch);
  // What ledgerd subtracts from its clock before calling cleanup(): covers events decided a
  // little earlier but applied after the cleanup started, and modest clock skew between nodes.
  static constexpr std::int64_t kCleanupSafetyMargin = 10LL * 60 * 1'000'000;  // 10 minutes

 private:
  ProjectionStore() = default;
  Result<std::string> digest_impl(std::optional<std::int64_t> now_micros) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The projections ledgerd maintains, in a fixed order.
std::vector<std::unique_ptr<Projection>> default_projections();

}  // namespace sechex::projections
