#include "projections/replay_cache.h"

#include "codec.h"
#include "projections/store.h"

namespace sechex::projections {
namespace {

bool live_at(std::string_view value, std::int64_t now_micros) {
  return value.size() == 8 && now_micros < codec::get_be64(value) + kJtiTtlMicros;
}

}  // namespace

std::string jti_key(std::string_view user, std::string_view jti) {
  return codec::lp(user) + std::string(jti);
}

Result<bool> seen_jti(const ProjectionStore& store, std::string_view user, std::string_view jti,
                      std::int64_t now_micros) {
  SECHEX_TRY(auto stored, store.get(kReplayJtiCf, jti_key(user, jti)));
  return stored && live_at(*stored, now_micros);
}

bool ReplayCacheProjection::expired(std::string_view cf, std::string_view, std::string_view value,
                                    std::int64_t now_micros) const {
  return cf == kReplayJtiCf && value.size() == 8 && !live_at(value, now_micros);
}

Result<void> ReplayCacheProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                          Txn& txn) {
  const flatbuffers::String* jti = nullptr;
  if (const auto* e = env.event_as_ExclusiveActionValidated()) jti = e->dpop_jti();
  if (const auto* e = env.event_as_ExclusiveRequestRejected()) jti = e->dpop_jti();
  if (jti == nullptr || jti->size() == 0) return boost::outcome_v2::success();
  const auto key = jti_key(env.subject()->string_view(), jti->string_view());
  SECHEX_TRY(auto stored, txn.get(kReplayJtiCf, key));
  // An entry over at this event's time counts as absent (projection.h): start a new window.
  if (stored && live_at(*stored, env.time_micros())) return boost::outcome_v2::success();
  txn.put(kReplayJtiCf, key, codec::be64(env.time_micros()));
  return boost::outcome_v2::success();
}

}  // namespace sechex::projections
