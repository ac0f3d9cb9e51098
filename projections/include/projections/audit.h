// Audit index: who did what when, pointing back into the log.
//
//   audit_by_subject  be32(len) || subject || be64(time + 2^63) || be32(partition) || be64(seq)
//                     -> event type name
//   audit_by_time     be64(time + 2^63) || be32(partition) || be64(seq)
//                     -> event type name || "\0" || subject
//   audit_by_position be32(partition) || be64(seq) -> be64(time + 2^63) || subject
//                     (so retention can find the entries of the records it removed)
// Times are the events' own (microseconds, biased so that signed times sort as unsigned). The
// (partition, seq) suffix makes keys unique and lets readers fetch the record and its hash.
#pragma once

#include <functional>
#include <optional>

#include "ledger/retention.h"
#include "projections/projection.h"

namespace sechex::projections {

inline constexpr const char* kAuditBySubjectCf = "audit_by_subject";
inline constexpr const char* kAuditByTimeCf = "audit_by_time";
inline constexpr const char* kAuditByPositionCf = "audit_by_position";

std::string audit_subject_prefix(std::string_view subject);
std::string audit_time_key(std::int64_t time_micros);
struct AuditKey {
  std::string subject;  // empty for audit_by_time keys
  std::int64_t time_micros = 0;
  ledger::Position position;
};
std::optional<AuditKey> decode_audit_subject_key(std::string_view key);
std::optional<AuditKey> decode_audit_time_key(std::string_view key);

class ProjectionStore;

// One entry of the audit index, as readers outside projections/ see it.
struct AuditEntry {
  std::string_view cursor;  // opaque: AuditScan::after resumes strictly after this entry
  std::int64_t time_micros = 0;
  ledger::Position position;
  std::string_view type;  // the event type's name
};

// A walk over the index in time order: one subject's entries, or everyone's.
struct AuditScan {
  std::optional<std::string> subject;
  std::int64_t from_micros = INT64_MIN;  // the first time included
  std::string after;                     // a cursor to resume after ("" = from from_micros)
};

// Visits the entries of `scan` in time order until `visit` returns false (the views live for
// the call only). Errc::corruption for an index key that does not decode (the walk stops).
Result<void> for_each_audit_entry(const ProjectionStore& store, const AuditScan& scan,
                                  const std::function<bool(const AuditEntry&)>& visit);

class AuditProjection final : public Projection {
 public:
  std::string name() const override { return "audit"; }
  std::vector<std::string> column_families() const override {
    return {kAuditBySubjectCf, kAuditByTimeCf, kAuditByPositionCf};
  }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
};

}  // namespace sechex::projections
