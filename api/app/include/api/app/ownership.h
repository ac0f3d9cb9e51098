// Partition ownership for multi-node deployments (ARCHITECTURE.md, "Kafka mode").
//
// Each ledger partition has exactly one chaining writer, a transactional producer with
// transactional.id ledger-<p>; two nodes appending to one partition would keep fencing each
// other. So a node runs commands (appends) only for the partitions it owns, answers 421
// `misdirected` naming the owner for the others, and still reads and projects every partition.
//
// Ownership is static configuration (assignment through a consumer group is not implemented):
//
//   --owns-partitions LIST         the partitions this node writes (default: all)
//   --partition-owner LIST=URL     repeatable: where partitions this node does not own are served
//
//   LIST := "all" | "none" | ITEM ("," ITEM)*      ITEM := N | N "-" M   (inclusive, N <= M)
//   N, M := decimal partition numbers; blanks around items and around "-" are ignored, and items
//           may overlap. URL := "http://" or "https://", then a host, then anything without
//           blanks or control characters (at most 2048 bytes). Split at the first "=".
//
// Checks, once the log's partition count P is known (resolve()): every partition named is < P;
// no partition is both owned and assigned an owner URL (with the default "all", any
// --partition-owner conflicts: a node must say which partitions it owns); no partition is
// assigned two different URLs. A partition neither owned nor assigned is allowed: it is refused
// without naming an owner.
//
// Writers are created only by appends, and CommandPath::run refuses non-owned partitions, so no
// writer (and so no checkpoint: KafkaLog::checkpoint_due only signs for live writers) is ever
// created for a partition another node owns. The embedded LogStore has one process for all
// partitions and nothing to fence: the flags still restrict which commands a node runs, but its
// checkpoints cover every partition.
//
// Lifecycle and thread-safety: PartitionOwnership is immutable after construction and a value
// type; every method is const and may be called concurrently. The parse functions are pure.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "ledger/result.h"
#include "ledger/types.h"

namespace sechex::api {

enum class OwnershipErrc {
  ok = 0,
  bad_syntax = 1,  // a list, item, number or URL that does not parse
  out_of_range,    // a partition >= the log's partition count
  conflict,        // a partition both owned and assigned an owner, or assigned two owners
  not_owner,       // a command for a partition this node does not own (CommandPath::run)
};

const std::error_category& ownership_category() noexcept;
inline std::error_code make_error_code(OwnershipErrc e) noexcept {
  return {static_cast<int>(e), ownership_category()};
}

// Inclusive range of partition numbers.
struct PartitionRange {
  std::uint32_t first = 0;
  std::uint32_t last = 0;
  bool operator==(const PartitionRange&) const = default;
};

// A parsed LIST, not yet checked against a partition count.
struct PartitionList {
  bool all = false;                    // "all"
  std::vector<PartitionRange> ranges;  // empty with all = false: "none"
  bool operator==(const PartitionList&) const = default;
};

// One --partition-owner value.
struct OwnerAssignment {
  PartitionList partitions;
  std::string url;
};

// A refused flag: its code and what is wrong, in words for the operator.
struct OwnershipError {
  OwnershipErrc code = OwnershipErrc::bad_syntax;
  std::string why;
  bool operator==(OwnershipErrc c) const { return code == c; }
};
template <typename T>
using OwnershipResult = ResultOf<T, OwnershipError>;

// bad_syntax, saying what is wrong.
OwnershipResult<PartitionList> parse_partition_list(std::string_view text);
OwnershipResult<OwnerAssignment> parse_partition_owner(std::string_view text);

// The flags as given, syntax-checked (before anything is opened or written).
struct OwnershipFlags {
  PartitionList owned{.all = true, .ranges = {}};
  std::vector<OwnerAssignment> owners;

  // `owns` is --owns-partitions (nullopt: not given, meaning all); `owners` the
  // --partition-owner values. bad_syntax, its `why` naming the flag and the value.
  static OwnershipResult<OwnershipFlags> parse(std::optional<std::string_view> owns,
                                               std::span<const std::string> owners);
};

class PartitionOwnership {
 public:
  // Owns every one of `partitions`: a single node, the embedded log.
  static PartitionOwnership all(std::uint32_t partitions);
  // Checks `flags` against the log's partition count (out_of_range, conflict; `why` says which
  // partition and flag).
  static OwnershipResult<PartitionOwnership> resolve(std::uint32_t partitions,
                                                     const OwnershipFlags& flags);

  std::uint32_t partition_count() const { return static_cast<std::uint32_t>(owned_.size()); }
  // False for a partition beyond partition_count(): a mismatch refuses, never fences.
  bool owns(ledger::Partition p) const;
  bool owns_all() const;
  // The URL serving a partition this node does not own; nullopt when owned, unknown, or beyond
  // partition_count().
  std::optional<std::string> owner_of(ledger::Partition p) const;
  // The owned partitions as a LIST ("all", "none", "0-3,6"), for start-up logs.
  std::string describe() const;

 private:
  explicit PartitionOwnership(std::uint32_t partitions);
  std::vector<bool> owned_;                // by partition
  std::vector<std::int32_t> owner_index_;  // by partition: index into urls_, -1 when none
  std::vector<std::string> urls_;
};

}  // namespace sechex::api

template <>
struct std::is_error_code_enum<sechex::api::OwnershipErrc> : std::true_type {};
