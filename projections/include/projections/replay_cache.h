// Replay cache (000 FR-03, RFC 9449 §11.1): the DPoP proofs already accepted, for 5 minutes. A
// proof's `iat` is only accepted within 30 s of the server's clock, so an older proof cannot be
// replayed anyway and need not be remembered.
//
//   replay_jti   SHA-256(jkt || jti) -> be64(first accepted, micros)
//
// where jkt is the RFC 7638 thumbprint of the key that signed the proof (the session's cnf.jkt)
// and jti the proof's id, as ExclusiveActionValidated.replay_key (and ExclusiveEnded's, for the
// proof of an /end) records them: a proof is
// recorded only once every other check passed (a forged or refused request spends nothing, so a
// forger cannot fill the cache). The first acceptance wins; entries expire kJtiTtlMicros after it.
//
// Capacity: nothing is evicted before it expires. One validation records one entry and
// validations are limited per user (--exclusive-rate, default 100/s), so a user has at most
// rate x 300 live entries (30,000 at 100/s; plus one per session ended), all kept by RocksDB; when
// the store cannot write, the validation's append fails and the request is refused (503) before it
// is served, so a proof is never accepted without being remembered. Derived from the chain, the
// cache survives a restart and every node that replays the partition agrees.
//
// Events written before replay_key existed are not recorded (their 5 minutes are long over).
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

// SHA-256(jkt || jti), 32 bytes: the cache key of a proof.
std::string replay_key(std::string_view jkt, std::string_view jti);
// Whether the proof with this key was accepted within kJtiTtlMicros before `now_micros`.
Result<bool> seen_proof(const ProjectionStore& store, std::string_view key,
                        std::int64_t now_micros);

}  // namespace sechex::projections
