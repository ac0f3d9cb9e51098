#include "ledger/kafka_keys.h"

#include <array>

namespace sechex::ledger {
namespace {

constexpr std::string_view kDekPrefix = "dek/";
constexpr std::string_view kErasedPrefix = "erased/";
constexpr std::string_view kErasedValue = "erased";

}  // namespace

KafkaKeys::KafkaKeys(KafkaLog& log, bool read_only, std::chrono::milliseconds max_staleness)
    : log_(log), read_only_(read_only || log.read_only()), max_staleness_(max_staleness) {}

void KafkaKeys::apply(std::string_view key, const std::string* value) {
  if (key.starts_with(kDekPrefix)) {
    std::string subject(key.substr(kDekPrefix.size()));
    if (value == nullptr) {
      deks_.erase(subject);
    } else {
      deks_[std::move(subject)] = *value;
    }
  } else if (key.starts_with(kErasedPrefix) && value != nullptr) {
    if (erased_.emplace(key.substr(kErasedPrefix.size())).second) {
      epoch_.fetch_add(1, std::memory_order_acq_rel);
    }
  }
}

Result<void> KafkaKeys::refresh(std::chrono::steady_clock::time_point needed_after) {
  std::lock_guard serial(refresh_mu_);
  // Read before scanning: a writer that becomes ready during the scan forces another one.
  const auto generation = log_.writer_generation();
  const auto started = std::chrono::steady_clock::now();
  std::int64_t from;
  {
    std::shared_lock lock(mu_);
    if (refreshed_once_ && refreshed_generation_ == generation && refreshed_at_ >= needed_after) {
      return boost::outcome_v2::success();  // somebody refreshed while we waited
    }
    from = next_offset_;
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> seen;
  SECHEX_TRY(const auto next, log_.read_keys(from, [&](std::string_view key, const std::string* v) {
    seen.emplace_back(std::string(key), v ? std::optional<std::string>(*v) : std::nullopt);
  }));
  std::unique_lock lock(mu_);
  for (const auto& [k, v] : seen) apply(k, v ? &*v : nullptr);
  next_offset_ = next;
  refreshed_generation_ = generation;
  refreshed_once_ = true;
  refreshed_at_ = started;
  return boost::outcome_v2::success();
}

std::optional<KeyBackend::Stored> KafkaKeys::lookup(const std::string& subject) const {
  if (erased_.contains(subject)) return Stored{State::erased, {}};
  if (auto it = deks_.find(subject); it != deks_.end()) return Stored{State::present, it->second};
  return std::nullopt;
}

Result<KeyBackend::Stored> KafkaKeys::get(std::string_view subject_view) {
  const std::string subject(subject_view);
  const auto p = partition_for(subject, log_.partition_count());
  const bool owned = log_.writes(p);
  std::optional<Stored> known;
  bool fresh = false;
  {
    std::shared_lock lock(mu_);
    known = lookup(subject);
    fresh = refreshed_once_ && refreshed_generation_ == log_.writer_generation() &&
            (owned || std::chrono::steady_clock::now() - refreshed_at_ < max_staleness_);
  }
  // Owned partition: our copy is exact once refreshed after our writer fenced the last one.
  // Otherwise an unknown subject may have been created elsewhere since the last read.
  if (fresh && (owned || known)) return known ? *known : Stored{};
  SECHEX_TRYV(refresh(std::chrono::steady_clock::now()));
  std::shared_lock lock(mu_);
  known = lookup(subject);
  return known ? *known : Stored{};
}

Result<void> KafkaKeys::refresh_if_stale() {
  const auto now = std::chrono::steady_clock::now();
  {
    std::shared_lock lock(mu_);
    if (refreshed_once_ && now - refreshed_at_ < max_staleness_) {
      return boost::outcome_v2::success();
    }
  }
  return refresh(now - max_staleness_);
}

Result<void> KafkaKeys::put(std::string_view subject, std::string_view wrapped) {
  if (read_only_) return Errc::invalid_argument;
  const KafkaLog::KeyRecord rec{std::string(kDekPrefix) + std::string(subject),
                                std::string(wrapped)};
  SECHEX_TRYV(log_.write_keys(partition_for(subject, log_.partition_count()),
                              std::span<const KafkaLog::KeyRecord>(&rec, 1)));
  std::unique_lock lock(mu_);
  deks_[std::string(subject)] = std::string(wrapped);
  return boost::outcome_v2::success();
}

Result<AppendResult> KafkaKeys::erase(std::string_view subject, ByteView erased_event) {
  if (read_only_) return Errc::invalid_argument;
  const std::array<KafkaLog::KeyRecord, 2> recs{
      KafkaLog::KeyRecord{std::string(kDekPrefix) + std::string(subject), std::nullopt},
      KafkaLog::KeyRecord{std::string(kErasedPrefix) + std::string(subject),
                          std::string(kErasedValue)}};
  SECHEX_TRY(auto appended,
             log_.append_with_keys(partition_for(subject, log_.partition_count()),
                                   std::span<const ByteView>(&erased_event, 1), recs));
  std::unique_lock lock(mu_);
  for (const auto& r : recs) apply(r.key, r.value ? &*r.value : nullptr);
  return appended;
}

Result<std::optional<std::string>> KafkaKeys::meta_check(std::string_view name,
                                                         std::string_view candidate) {
  const std::string c(candidate);
  return log_.meta_first(name, read_only_ ? nullptr : &c);
}

}  // namespace sechex::ledger
