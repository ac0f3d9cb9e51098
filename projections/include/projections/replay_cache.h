// Replay cache: DPoP proof ids (`jti`) already presented by a user, for 5 minutes (RFC 9449
// section 11.1: a proof is single-use; its `iat` is only accepted within that window, so an
// older jti cannot be replayed anyway and need not be remembered).
//
//   replay_jti   lp(user) || jti -> be64(first seen, micros)
//
// Recorded from ExclusiveActionValidated and also ExclusiveRequestRejected: a proof that was
// presented once must never be accepted later, whatever the first request's fate. (A forged
// proof could name someone else's jti only by guessing a random value.) The first sighting
// wins: a repeat within the TTL keeps the original time, so retrying a replay does not extend
// it. The user is the envelope subject. Entries expire kJtiTtlMicros after the first sighting.
#pragma once

#include "projections/projection.h"

namespace sechex::projections {

class ProjectionStore;

inline constexpr const char* kReplayJtiCf = "replay_jti";
inline constexpr std::int64_t kJtiTtlMicros = 5LL * 60 * 1'000'000;

class ReplayCacheProjection final : public Projection {
 public:
  std::string name() const override { return "replay"; }
  std::vector<std::string> column_families() const override { return {kReplayJtiCf}; }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
  std::vector<std::string> expiring_column_families() const override { return {kReplayJtiCf}; }
  bool expired(std::string_view cf, std::string_view key, std::string_view value,
               std::int64_t now_micros) const override;
};

std::string jti_key(std::string_view user, std::string_view jti);
// Whether `user` presented `jti` within kJtiTtlMicros before `now_micros`.
Result<bool> seen_jti(const ProjectionStore& store, std::string_view user, std::string_view jti,
                      std::int64_t now_micros);

}  // namespace sechex::projections
