#include "ledger/retention.h"

#include <algorithm>

#include "ledger/checkpoint.h"
#include "ledger/event_builder.h"
#include "schemas/events.h"

namespace sechex::ledger {

std::string retention_subject(Partition partition, std::uint32_t partitions) {
  std::string subject(kRetentionSubject);
  for (std::uint64_t n = 0; partition_for(subject, partitions) != partition; ++n) {
    subject = std::string(kRetentionSubject) + ":" + std::to_string(n);
  }
  return subject;
}

bool is_retention_subject(std::string_view subject) {
  if (subject == kRetentionSubject) return true;
  if (!subject.starts_with(kRetentionSubject) || subject.size() <= kRetentionSubject.size() + 1 ||
      subject[kRetentionSubject.size()] != ':') {
    return false;
  }
  const auto n = subject.substr(kRetentionSubject.size() + 1);
  return n.size() <= 20 &&
         std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Result<std::vector<RetentionStep>> plan_retention(const Log& log, const RetentionOptions& options) {
  std::vector<RetentionStep> steps;
  for (std::uint32_t i = 0; i < log.partition_count(); ++i) {
    const Partition p{i};
    const auto from = log.retention_cut(p).below;
    SECHEX_TRY(auto note, log.latest_checkpoint(p));
    std::uint64_t cap = 0;
    if (note) {
      const auto cp = parse_checkpoint_body(*note);
      if (!cp) return Errc::corruption;
      cap = cp->size;
    }
    if (options.limit) cap = std::min(cap, options.limit(p).value);
    auto end = from.value;
    bool stop = false;
    while (!stop && end < cap) {
      SECHEX_TRY(auto batch, log.read_range(p, Seq{end}, Seq{cap}, 4096));
      if (batch.empty()) break;
      for (const auto& r : batch) {
        // A record we cannot read the time of is left for verify to explain, never pruned.
        if (r.position.seq.value != end ||
            schemas::check_envelope(r.event.data(), r.event.size()) != schemas::CheckResult::ok ||
            schemas::envelope_of(r.event.data())->time_micros() >= options.before_micros) {
          stop = true;
          break;
        }
        ++end;
      }
    }
    for (auto s = from.value; s < end; s += kMaxRetentionStep) {
      steps.push_back({p, Seq{s}, Seq{std::min(end, s + kMaxRetentionStep)}});
    }
  }
  return steps;
}

std::vector<ArchiveRange> archive_ranges(const std::vector<RetentionStep>& steps) {
  std::vector<ArchiveRange> ranges;
  for (const auto& s : steps) {
    if (!ranges.empty() && ranges.back().partition == s.partition &&
        ranges.back().below == s.from) {
      ranges.back().below = s.below;
    } else {
      ranges.push_back({s.partition, s.from, s.below});
    }
  }
  return ranges;
}

Result<Bytes> retention_event(const RetentionStep& step, const RetentionOptions& options,
                              std::uint32_t partitions, std::int64_t now_micros) {
  if (step.partition.value >= partitions) return Errc::invalid_argument;
  EventBuilder b(nullptr, {retention_subject(step.partition, partitions),
                           options.actor,
                           "retention:" + options.run_id,
                           now_micros,
                           {},
                           {}});
  auto body = schema::CreateRetentionApplied(
      b.fbb(), b.fbb().CreateString(options.run_id), step.partition.value, step.from.value,
      step.below.value, options.before_micros, options.window_days);
  return b.finish(body);
}

Result<RetentionReport> run_retention(Log& log, const RetentionOptions& options,
                                      const ChainStep& chain) {
  RetentionReport report;
  SECHEX_TRY(auto steps, plan_retention(log, options));
  if (options.before && !steps.empty()) SECHEX_TRYV(options.before(steps));
  for (const auto& step : steps) {
    SECHEX_TRYV(chain(step));
    SECHEX_TRY(auto pruned, log.prune(step.partition, step.below, options.before_micros));
    report.steps.push_back(step);
    report.records += pruned.pruned;
    report.bytes_freed += pruned.bytes_freed;
  }
  return report;
}

}  // namespace sechex::ledger
