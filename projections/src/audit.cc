#include "projections/audit.h"

#include <algorithm>

#include "projections/store.h"

namespace sechex::projections {
namespace {

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
}
std::uint64_t get_be(std::string_view s, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(s[i]);
  return v;
}
constexpr std::uint64_t kBias = 1ULL << 63;

std::string position_suffix(const ledger::Position& pos) {
  std::string s;
  put_be(s, pos.partition.value, 4);
  put_be(s, pos.seq.value, 8);
  return s;
}

}  // namespace

std::string audit_subject_prefix(std::string_view subject) {
  std::string k;
  put_be(k, subject.size(), 4);
  k.append(subject);
  return k;
}

std::string audit_time_key(std::int64_t time_micros) {
  std::string k;
  put_be(k, static_cast<std::uint64_t>(time_micros) + kBias, 8);
  return k;
}

std::optional<AuditKey> decode_audit_subject_key(std::string_view key) {
  if (key.size() < 4) return std::nullopt;
  const auto len = get_be(key, 4);
  if (key.size() != 4 + len + 8 + 12) return std::nullopt;
  AuditKey k;
  k.subject = std::string(key.substr(4, len));
  const auto rest = key.substr(4 + len);
  k.time_micros = static_cast<std::int64_t>(get_be(rest, 8) - kBias);
  k.position = {ledger::Partition{static_cast<std::uint32_t>(get_be(rest.substr(8), 4))},
                ledger::Seq{get_be(rest.substr(12), 8)}};
  return k;
}

std::optional<AuditKey> decode_audit_time_key(std::string_view key) {
  if (key.size() != 8 + 12) return std::nullopt;
  AuditKey k;
  k.time_micros = static_cast<std::int64_t>(get_be(key, 8) - kBias);
  k.position = {ledger::Partition{static_cast<std::uint32_t>(get_be(key.substr(8), 4))},
                ledger::Seq{get_be(key.substr(12), 8)}};
  return k;
}

Result<void> for_each_audit_entry(const ProjectionStore& store, const AuditScan& scan,
                                  const std::function<bool(const AuditEntry&)>& visit) {
  const auto* cf = scan.subject ? kAuditBySubjectCf : kAuditByTimeCf;
  const auto prefix = scan.subject ? audit_subject_prefix(*scan.subject) : std::string();
  auto start = scan.from_micros == INT64_MIN ? prefix : prefix + audit_time_key(scan.from_micros);
  if (!scan.after.empty()) start = std::max(start, scan.after + std::string(1, '\0'));
  bool corrupt = false;
  SECHEX_TRYV(store.for_each(cf, prefix, start, [&](std::string_view key, std::string_view value) {
    const auto k = scan.subject ? decode_audit_subject_key(key) : decode_audit_time_key(key);
    if (!k) {
      corrupt = true;
      return false;
    }
    return visit(AuditEntry{key, k->time_micros, k->position, value.substr(0, value.find('\0'))});
  }));
  if (corrupt) return ledger::Errc::corruption;
  return boost::outcome_v2::success();
}

namespace {

// RetentionApplied: the entries of the records whose payloads were removed go too.
Result<void> forget_pruned(const schema::RetentionApplied& r, Txn& txn) {
  const auto from = r.from_seq();
  const auto below = r.below_seq();
  // A step larger than any writer makes is refused rather than stalling apply().
  if (below < from || below - from > ledger::kMaxRetentionStep)
    return ledger::Errc::invalid_argument;
  for (auto seq = from; seq < below; ++seq) {
    const auto suffix = position_suffix({ledger::Partition{r.partition()}, ledger::Seq{seq}});
    SECHEX_TRY(auto found, txn.get(kAuditByPositionCf, suffix));
    if (!found || found->size() < 8) continue;
    const auto when = found->substr(0, 8);
    const auto subject = std::string_view(*found).substr(8);
    txn.del(kAuditBySubjectCf, audit_subject_prefix(subject) + when + suffix);
    txn.del(kAuditByTimeCf, when + suffix);
    txn.del(kAuditByPositionCf, suffix);
  }
  return boost::outcome_v2::success();
}

}  // namespace

Result<void> AuditProjection::apply(const schema::Envelope& env, const ledger::Position& pos,
                                    Txn& txn) {
  const auto subject = env.subject()->string_view();
  const std::string type = schemas::event_type_name(env.event_type());
  const auto when = audit_time_key(env.time_micros());
  const auto suffix = position_suffix(pos);
  txn.put(kAuditBySubjectCf, audit_subject_prefix(subject) + when + suffix, type);
  std::string value = type;
  value.push_back('\0');
  value.append(subject);
  txn.put(kAuditByTimeCf, when + suffix, value);
  txn.put(kAuditByPositionCf, suffix, when + std::string(subject));
  if (const auto* r = env.event_as_RetentionApplied();
      r != nullptr && ledger::is_retention_subject(subject)) {
    SECHEX_TRYV(forget_pruned(*r, txn));
  }
  return boost::outcome_v2::success();
}

}  // namespace sechex::projections
