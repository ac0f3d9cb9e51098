// Exclusive mode (specs 000, 001; API.md "Exclusive mode"): each user's outstanding activation
// challenge, enrolled devices and exclusive sessions.
//
//   exclusive_challenge   user -> JSON {hash, sealed, event_id, expires_at, used}
//       The newest ExclusiveChallengeIssued of the user; a newer one replaces it. Used up by the
//       ExclusiveActivated or ExclusiveRequestRejected that names its hash (single use, whatever
//       the attempt's fate). Over kChallengeKeptMicros after its expiry.
//   exclusive_devices     lp(user) || device id -> JSON {thumbprint, key_sealed, name_sealed,
//                         event_id, format, attestation_type, aaguid, chain_fingerprint,
//                         created_at, state "active" | "removed", removed_at}
//       From ExclusiveActivated (the first activation of a device id) and ExclusiveDeviceRemoved.
//       Sealed values are under the user's data key, sealed by the event `event_id`.
//   exclusive_sessions    session id -> JSON {user, device_id, jkt, started_at, expires_at,
//                         last_validated, state "active" | "locked" | "ended", end_reason}
//       From ExclusiveActivated, ExclusiveActionValidated (last_validated), ExclusiveLocked,
//       ExclusiveEnded, and ExclusiveDeviceRemoved (every session of the device ends). Over
//       kExclusiveSessionKeptMicros after it ended or expired.
//   exclusive_by_user     lp(user) || session id -> "" (the user's sessions, for status and
//                         device removal); deleted with the session row.
//
// The subject of every event is the user. Thread-safety: as every projection (projection.h).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "projections/projection.h"
#include "projections/users.h"

namespace sechex::projections {

class ProjectionStore;

inline constexpr const char* kExclusiveChallengeCf = "exclusive_challenge";
inline constexpr const char* kExclusiveDevicesCf = "exclusive_devices";
inline constexpr const char* kExclusiveSessionsCf = "exclusive_sessions";
inline constexpr const char* kExclusiveByUserCf = "exclusive_by_user";
inline constexpr std::int64_t kChallengeKeptMicros = 3600LL * 1'000'000;
inline constexpr std::int64_t kExclusiveSessionKeptMicros = 24LL * 3600 * 1'000'000;

class ExclusiveProjection final : public Projection {
 public:
  std::string name() const override { return "exclusive"; }
  std::vector<std::string> column_families() const override {
    return {kExclusiveChallengeCf, kExclusiveDevicesCf, kExclusiveSessionsCf, kExclusiveByUserCf};
  }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
  std::vector<std::string> expiring_column_families() const override {
    return {kExclusiveChallengeCf, kExclusiveSessionsCf, kExclusiveByUserCf};
  }
  bool expired(std::string_view cf, std::string_view key, std::string_view value,
               std::int64_t now_micros) const override;
};

// The user's outstanding challenge: live (not used, not expired) at `now`, else nullopt.
struct ChallengeRow {
  ledger::Bytes hash;  // the keyed hash the event recorded
  SealedValue sealed;  // the challenge bytes, sealed under the user's key (field "challenge")
  std::int64_t expires_at = 0;
};
Result<std::optional<ChallengeRow>> live_challenge(const ProjectionStore& store,
                                                   std::string_view user, TimePoint now);

struct DeviceRow {
  std::string id;
  std::string thumbprint;  // RFC 7638, of the key that signs the proofs
  SealedValue key;         // SEC1 point (field "device_key")
  SealedValue name;        // the deviceName given at activation (field "device_name")
  std::string format;
  std::string attestation_type;
  std::string aaguid_hex;
  std::string chain_fingerprint;
  std::int64_t created_at = 0;
  bool active = true;
};
// The user's enrolled devices (removed ones left out), oldest first; corruption for a row that
// does not decode.
Result<std::vector<DeviceRow>> active_devices(const ProjectionStore& store, std::string_view user);
Result<std::optional<DeviceRow>> device_row(const ProjectionStore& store, std::string_view user,
                                            std::string_view device_id);

struct ExclusiveSessionRow {
  std::string id;
  std::string user;
  std::string device_id;
  std::string jkt;
  std::int64_t started_at = 0;
  std::int64_t expires_at = 0;
  std::int64_t last_validated = 0;
  std::string state;  // "active" | "locked" | "ended"
  std::string end_reason;
  bool active_at(TimePoint now) const { return state == "active" && micros_of(now) < expires_at; }
};
Result<std::optional<ExclusiveSessionRow>> exclusive_session(const ProjectionStore& store,
                                                             std::string_view id);
// The user's sessions active at `now`, newest first.
Result<std::vector<ExclusiveSessionRow>> active_exclusive_sessions(const ProjectionStore& store,
                                                                   std::string_view user,
                                                                   TimePoint now);

}  // namespace sechex::projections
