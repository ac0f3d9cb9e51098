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
// parallel. Reads are safe at any time.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "ledger/log_store.h"
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
  Result<std::uint64_t> catch_up(const ledger::LogStore& log, std::size_t batch = 1024);
  // Records the log has that the projections have not applied yet (for /readyz and metrics).
  std::uint64_t lag(const ledger::LogStore& log) const;

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
  // SHA-256 (hex) over every projection column family (name, then each key and value,
  // length-prefixed), in name order. Positions are excluded: two stores with equal state agree
  // even if one applied in more, smaller batches.
  Result<std::string> digest() const;

 private:
  ProjectionStore() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The projections ledgerd maintains, in a fixed order.
std::vector<std::unique_ptr<Projection>> default_projections();

}  // namespace sechex::projections
