#include "projections/rate_limits.h"

#include <algorithm>

#include "codec.h"
#include "projections/store.h"

namespace sechex::projections {
namespace {

std::string bytes_of(const flatbuffers::Vector<std::uint8_t>* v) {
  return v == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(v->data()), v->size());
}

std::vector<std::int64_t> decode(std::string_view value) {
  std::vector<std::int64_t> out;
  if (value.size() % 8 != 0) return out;
  for (std::size_t i = 0; i < value.size(); i += 8) out.push_back(codec::get_be64(value.substr(i)));
  return out;
}

std::string partition_key(std::string_view scope, std::string_view key,
                          const ledger::Position& pos) {
  auto k = rate_key(scope, key);
  for (int i = 3; i >= 0; --i) k.push_back(static_cast<char>(pos.partition.value >> (8 * i)));
  return k;
}

Result<void> record(Txn& txn, std::string_view scope, std::string_view key, std::int64_t at,
                    const ledger::Position& pos) {
  if (key.empty()) return boost::outcome_v2::success();  // nothing to count under
  const auto k = partition_key(scope, key, pos);
  SECHEX_TRY(auto stored, txn.get(kRateLimitsCf, k));
  auto times = stored ? decode(*stored) : std::vector<std::int64_t>();
  // Times at or before at - window count for no window a reader may ask about at `at` or later.
  std::erase_if(times, [&](std::int64_t t) { return t <= at - kRateWindowMaxMicros; });
  // Sorted insert: a partition's event times may step back (ingested events, clock steps).
  times.insert(std::upper_bound(times.begin(), times.end(), at), at);
  if (times.size() > kRateMaxSamples) {
    times.erase(times.begin(), times.end() - static_cast<std::ptrdiff_t>(kRateMaxSamples));
  }
  std::string value;
  for (const auto t : times) codec::put_be64(value, t);
  txn.put(kRateLimitsCf, k, value);
  return boost::outcome_v2::success();
}

}  // namespace

std::string rate_key(std::string_view scope, std::string_view key) {
  return codec::lp(scope) + codec::lp(key);
}

Result<std::uint32_t> rate_count(const ProjectionStore& store, std::string_view scope,
                                 std::string_view key, TimePoint now, Micros window) {
  SECHEX_TRY(auto w, rate_window(store, scope, key, now, window, 0));
  return w.count;
}

Result<RateWindow> rate_window(const ProjectionStore& store, std::string_view scope,
                               std::string_view key, TimePoint now, Micros window,
                               std::uint32_t limit) {
  const auto now_micros = micros_of(now);
  const auto window_micros = window.count();
  if (window_micros <= 0 || window_micros > kRateWindowMaxMicros) {
    return make_error_code(ledger::Errc::invalid_argument);
  }
  SECHEX_TRY(auto rows, store.scan(kRateLimitsCf, rate_key(scope, key)));
  std::vector<std::int64_t> in_window;
  for (const auto& [k, v] : rows) {
    for (const auto t : decode(v)) {
      if (t > now_micros - window_micros && t <= now_micros) in_window.push_back(t);
    }
  }
  RateWindow w;
  w.count = static_cast<std::uint32_t>(in_window.size());
  if (limit > 0 && w.count >= limit) {
    // Partitions' entries interleave in time: merge them before picking the k-th oldest.
    const auto k = static_cast<std::ptrdiff_t>(w.count - limit);
    std::nth_element(in_window.begin(), in_window.begin() + k, in_window.end());
    w.below_limit_at = time_from_micros(in_window[static_cast<std::size_t>(k)]) + window;
  }
  return w;
}

bool RateLimitsProjection::expired(std::string_view cf, std::string_view, std::string_view value,
                                   std::int64_t now_micros) const {
  if (cf != kRateLimitsCf || value.empty() || value.size() % 8 != 0) return false;
  const auto newest = codec::get_be64(value.substr(value.size() - 8));
  return now_micros >= newest + kRateWindowMaxMicros;
}

Result<void> RateLimitsProjection::apply(const schema::Envelope& env, const ledger::Position& pos,
                                         Txn& txn) {
  const auto user = env.subject()->string_view();
  const auto at = env.time_micros();
  const auto ip = env.source() != nullptr ? bytes_of(env.source()->ip_hash()) : std::string();
  switch (env.event_type()) {
    case schema::Event::LoginFailed:
      SECHEX_TRYV(record(txn, kScopeLoginFailureEmail,
                         bytes_of(env.event_as_LoginFailed()->email_hash()), at, pos));
      SECHEX_TRYV(record(txn, kScopeLoginFailureUser, user, at, pos));
      SECHEX_TRYV(record(txn, kScopeLoginAttemptIp, ip, at, pos));
      break;
    case schema::Event::LoginSucceeded:
      SECHEX_TRYV(record(txn, kScopeLoginAttemptIp, ip, at, pos));
      break;
    case schema::Event::OtpIssued:
      SECHEX_TRYV(record(txn, kScopeOtpRequestUser, user, at, pos));
      break;
    case schema::Event::OtpFailed:
      SECHEX_TRYV(record(txn, kScopeOtpFailureUser, user, at, pos));
      SECHEX_TRYV(record(txn, kScopeOtpValidationUser, user, at, pos));
      break;
    case schema::Event::OtpVerified:
      SECHEX_TRYV(record(txn, kScopeOtpValidationUser, user, at, pos));
      break;
    case schema::Event::AccountUnlocked:
      // A user's events are all on its partition, so this one entry is all of its failures.
      if (!user.empty()) txn.del(kRateLimitsCf, partition_key(kScopeOtpFailureUser, user, pos));
      break;
    case schema::Event::PasswordResetRequested:
      SECHEX_TRYV(record(txn, kScopeResetRequestUser, user, at, pos));
      break;
    case schema::Event::EmailVerificationIssued:
      SECHEX_TRYV(record(txn, kScopeVerifyRequestUser, user, at, pos));
      break;
    case schema::Event::ExclusiveActionValidated:
      SECHEX_TRYV(record(txn, kScopeExclusiveUser, user, at, pos));
      break;
    case schema::Event::ExclusiveRequestRejected: {
      const auto* reason = env.event_as_ExclusiveRequestRejected()->reason();
      const bool over_rate = reason != nullptr && reason->string_view() == kExclusiveOverRate;
      SECHEX_TRYV(
          record(txn, over_rate ? kScopeExclusiveOverRate : kScopeExclusiveUser, user, at, pos));
      break;
    }
    case schema::Event::RateLimited: {
      const auto* e = env.event_as_RateLimited();
      const auto scope = std::string(kScopeLimitedPrefix) + (e->scope() ? e->scope()->str() : "");
      SECHEX_TRYV(record(txn, scope, bytes_of(e->key_hash()), at, pos));
      break;
    }
    default:
      break;
  }
  return boost::outcome_v2::success();
}

}  // namespace sechex::projections
