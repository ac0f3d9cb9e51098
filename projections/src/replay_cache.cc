#include "projections/replay_cache.h"

#include "codec.h"
#include "ledger/crypto.h"
#include "projections/store.h"

namespace sechex::projections {
namespace {

bool live_at(std::string_view value, std::int64_t now_micros) {
  return value.size() == 8 && now_micros < codec::get_be64(value) + kJtiTtlMicros;
}

}  // namespace

std::string replay_key(std::string_view jkt, std::string_view jti) {
  std::string input(jkt);
  input.append(jti);
  const auto h = ledger::crypto::sha256(
      ledger::ByteView(reinterpret_cast<const std::uint8_t*>(input.data()), input.size()));
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

Result<bool> seen_proof(const ProjectionStore& store, std::string_view key,
                        std::int64_t now_micros) {
  SECHEX_TRY(auto stored, store.get(kReplayJtiCf, key));
  return stored && live_at(*stored, now_micros);
}

bool ReplayCacheProjection::expired(std::string_view cf, std::string_view, std::string_view value,
                                    std::int64_t now_micros) const {
  return cf == kReplayJtiCf && value.size() == 8 && !live_at(value, now_micros);
}

Result<void> ReplayCacheProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                          Txn& txn) {
  const flatbuffers::Vector<std::uint8_t>* recorded = nullptr;
  if (const auto* e = env.event_as_ExclusiveActionValidated()) recorded = e->replay_key();
  if (const auto* e = env.event_as_ExclusiveEnded()) recorded = e->replay_key();
  if (recorded == nullptr || recorded->size() != 32) return boost::outcome_v2::success();
  const std::string_view key(reinterpret_cast<const char*>(recorded->data()), recorded->size());
  SECHEX_TRY(auto stored, txn.get(kReplayJtiCf, key));
  // An entry over at this event's time counts as absent (projection.h): start a new window.
  if (stored && live_at(*stored, env.time_micros())) return boost::outcome_v2::success();
  txn.put(kReplayJtiCf, key, codec::be64(env.time_micros()));
  return boost::outcome_v2::success();
}

}  // namespace sechex::projections
